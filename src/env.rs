//! Environments that agents cannot tell apart: the world model ([`WorldModelEnv`]) and the
//! simulator (`foresight_sim::env::SimEnv`) both implement [`Env`]. Policies see frames only, and
//! the reward of both is computed by the same code from bodies located by colour in the frame
//! ([`frame_reward`]), so returns in the two worlds can be compared.

use crate::eval::metrics::locate;
use crate::model::diffusion::SamplerConfig;
use crate::plan::cost::GoalGeometry;
use crate::scene::Scene;
use crate::world_model::{Query, WorldModel, WorldModelError};
use candle_core::Tensor;

/// What one step returns.
#[derive(Debug, Clone)]
pub struct Step {
    /// The next frame, `H*W*3` bytes.
    pub frame: Vec<u8>,
    /// Reward of the transition.
    pub reward: f32,
    /// Whether the goal is reached.
    pub done: bool,
}

/// A world an agent acts in.
pub trait Env {
    /// The error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The current frame.
    fn frame(&self) -> &[u8];
    /// Applies one action and returns the next frame, the reward and whether the goal is reached.
    fn step(&mut self, action: &[f32]) -> Result<Step, Self::Error>;
}

/// The scene's goal read from a frame: the goal body is located by its colour, the goal region
/// is projected into pixels. Returns `(reward, success)`: `-distance_weight` times the distance
/// in metres (pixels times metres per pixel at the look-at plane) plus `success_bonus` when the
/// body's centre is inside the region's projected box. A body that cannot be found earns the
/// distance of half the frame's diagonal. Scenes without a goal give `(0, false)`.
pub fn frame_reward(scene: &Scene, frame: &[u8]) -> (f32, bool) {
    let Some(g) = GoalGeometry::new(scene) else { return (0.0, false) };
    g.reward(locate(frame, g.width, g.colour))
}

/// The world model as an environment: each step predicts the next frame from the last K frames
/// and actions (one sample, seeded per step), entirely in imagination. The window is kept in
/// latent space, as in a rollout: a predicted frame goes on as its latent, and is re-encoded from
/// its image only where the sampler's `reencode` / `reencode_every` say so (the true start frames
/// are encoded once). A pixel window, re-encoded at every step, would blur the bodies away within
/// a few dozen steps.
pub struct WorldModelEnv<'a> {
    model: &'a WorldModel,
    scene: Scene,
    sampler: SamplerConfig,
    frame: Vec<u8>,
    /// The last K latents `(1, C, h, w)`, oldest first.
    latents: Vec<Tensor>,
    /// The actions between consecutive latents (`None` before the start when unknown).
    actions: Vec<Option<Vec<f32>>>,
    seed: u64,
    t: u64,
}

impl<'a> WorldModelEnv<'a> {
    /// Starts from 1 to K true frames (oldest first) and the actions between them, if known.
    pub fn reset(model: &'a WorldModel, scene: Scene, frames: Vec<Vec<u8>>, past_actions: Option<Vec<Vec<f32>>>, seed: u64) -> Result<Self, WorldModelError> {
        if frames.is_empty() || frames.len() > model.meta.context {
            return Err(WorldModelError::Query(format!("reset with {} frames; the model takes 1 to {}", frames.len(), model.meta.context)));
        }
        if model.meta.scene_hash != scene.content_hash() && model.meta.scene != scene.name {
            return Err(WorldModelError::Query(format!("the model was trained on scene `{}`, not `{}`", model.meta.scene, scene.name)));
        }
        let actions = match past_actions {
            Some(p) if p.len() + 1 == frames.len() => p.into_iter().map(Some).collect(),
            Some(p) => return Err(WorldModelError::Query(format!("{} past actions for {} start frames; give one fewer than frames", p.len(), frames.len()))),
            None => vec![None; frames.len() - 1],
        };
        let z = model.encode(&frames.iter().map(|f| f.as_slice()).collect::<Vec<_>>())?;
        let latents = (0..frames.len()).map(|i| z.narrow(0, i, 1)).collect::<Result<Vec<_>, _>>()?;
        let frame = frames.into_iter().last().unwrap_or_default();
        Ok(WorldModelEnv { model, scene, sampler: model.meta.sampler, frame, latents, actions, seed, t: 0 })
    }

    /// Uses another sampler.
    pub fn with_sampler(mut self, sampler: SamplerConfig) -> Self {
        self.sampler = sampler;
        self
    }

    /// The latent window `(n, C, h, w)` the next step starts from (oldest first).
    pub fn window(&self) -> Result<Tensor, WorldModelError> {
        Ok(Tensor::cat(&self.latents, 0)?)
    }
}

impl Env for WorldModelEnv<'_> {
    type Error = WorldModelError;

    fn frame(&self) -> &[u8] {
        &self.frame
    }

    fn step(&mut self, action: &[f32]) -> Result<Step, WorldModelError> {
        self.sampler.validate().map_err(WorldModelError::Query)?;
        let k = self.model.meta.context;
        // The actions between the window's latents, when all of them are known.
        let past = self.actions.iter().cloned().collect::<Option<Vec<_>>>();
        let q = Query { context: Vec::new(), past_actions: past, actions: vec![action.to_vec()], samples: 1, seed: self.seed ^ crate::rng::mix64(self.t) };
        let z = self.model.rollout_latent(std::slice::from_ref(&q), &[self.window()?], &self.sampler)?.remove(0);
        let (_, _, c, h, w) = z.dims5()?;
        let z = z.reshape((1, c, h, w))?;
        let frame = self.model.decode(&z)?.remove(0);
        let every = self.sampler.reencode_every.max(1) as u64;
        let next = if self.sampler.reencode && (self.t + 1) % every == 0 { self.model.encode(&[frame.as_slice()])? } else { z };
        self.latents.push(next);
        self.actions.push(Some(action.to_vec()));
        if self.latents.len() > k {
            self.latents.remove(0);
            self.actions.remove(0);
        }
        self.t += 1;
        self.frame = frame.clone();
        let (reward, done) = frame_reward(&self.scene, &frame);
        Ok(Step { frame, reward, done })
    }
}
