//! Environments that agents cannot tell apart: the world model ([`WorldModelEnv`]) and the
//! simulator (`foresight_sim::env::SimEnv`) both implement [`Env`]. Policies see frames only, and
//! the reward of both is computed by the same code from bodies located by colour in the frame
//! ([`frame_reward`]), so returns in the two worlds can be compared.

use crate::eval::metrics::locate;
use crate::model::diffusion::SamplerConfig;
use crate::plan::cost::GoalGeometry;
use crate::scene::Scene;
use crate::world_model::{Query, WorldModel, WorldModelError};

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
/// and actions (one sample, seeded per step), entirely in imagination.
pub struct WorldModelEnv<'a> {
    model: &'a WorldModel,
    scene: Scene,
    sampler: SamplerConfig,
    frames: Vec<Vec<u8>>,
    actions: Vec<Vec<f32>>,
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
        let actions = past_actions.unwrap_or_default();
        Ok(WorldModelEnv { model, scene, sampler: model.meta.sampler, frames, actions, seed, t: 0 })
    }

    /// Uses another sampler.
    pub fn with_sampler(mut self, sampler: SamplerConfig) -> Self {
        self.sampler = sampler;
        self
    }
}

impl Env for WorldModelEnv<'_> {
    type Error = WorldModelError;

    fn frame(&self) -> &[u8] {
        self.frames.last().map(|f| f.as_slice()).unwrap_or(&[])
    }

    fn step(&mut self, action: &[f32]) -> Result<Step, WorldModelError> {
        let k = self.model.meta.context;
        let n = self.frames.len().min(k);
        let context: Vec<Vec<u8>> = self.frames[self.frames.len() - n..].to_vec();
        // The actions between the context frames, when all of them are known.
        let past = (self.actions.len() + 1 >= self.frames.len()).then(|| self.actions[self.actions.len() + 1 - n..].to_vec());
        let q = Query { context, past_actions: past.filter(|p| p.len() + 1 == n), actions: vec![action.to_vec()], samples: 1, seed: self.seed ^ crate::rng::mix64(self.t) };
        let p = self.model.predict(&q, &self.sampler)?;
        let frame = p.frames.into_iter().next().and_then(|s| s.into_iter().next()).unwrap_or_default();
        self.frames.push(frame.clone());
        if self.frames.len() > k {
            self.frames.remove(0);
        }
        self.actions.push(action.to_vec());
        if self.actions.len() > k {
            self.actions.remove(0);
        }
        self.t += 1;
        let (reward, done) = frame_reward(&self.scene, &frame);
        Ok(Step { frame, reward, done })
    }
}
