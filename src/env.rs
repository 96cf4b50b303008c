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

/// Several episodes imagined together by the world model: every step advances the chosen
/// episodes in one batched call. Each episode's window is kept in latent space, as in a rollout:
/// a predicted frame goes on as its latent, and is re-encoded from its image only where the
/// sampler's `reencode` / `reencode_every` say so (the true start frames are encoded once). A
/// pixel window, re-encoded at every step, would blur the bodies away within a few dozen steps.
pub struct WorldModelEnvs<'a> {
    model: &'a WorldModel,
    scene: Scene,
    sampler: SamplerConfig,
    episodes: Vec<Imagined>,
}

/// One imagined episode.
struct Imagined {
    frame: Vec<u8>,
    /// The last K latents `(1, C, h, w)`, oldest first.
    latents: Vec<Tensor>,
    /// The actions between consecutive latents (`None` before the start when unknown).
    actions: Vec<Option<Vec<f32>>>,
    seed: u64,
    t: u64,
}

/// One episode's start: 1 to K true frames (oldest first), the actions between them if known,
/// and its noise seed.
pub struct EnvStart {
    /// Frames, `H*W*3` bytes each.
    pub frames: Vec<Vec<u8>>,
    /// `frames.len() - 1` actions, if known.
    pub past_actions: Option<Vec<Vec<f32>>>,
    /// Noise seed (each step draws from it and the episode's step count).
    pub seed: u64,
}

impl<'a> WorldModelEnvs<'a> {
    /// Starts every episode (their frames are encoded in one batch).
    pub fn reset(model: &'a WorldModel, scene: Scene, starts: Vec<EnvStart>) -> Result<Self, WorldModelError> {
        if model.meta.scene_hash != scene.content_hash() && model.meta.scene != scene.name {
            return Err(WorldModelError::Query(format!("the model was trained on scene `{}`, not `{}`", model.meta.scene, scene.name)));
        }
        let mut all: Vec<&[u8]> = Vec::new();
        for (e, s) in starts.iter().enumerate() {
            if s.frames.is_empty() || s.frames.len() > model.meta.context {
                return Err(WorldModelError::Query(format!("episode {e}: reset with {} frames; the model takes 1 to {}", s.frames.len(), model.meta.context)));
            }
            if let Some(p) = s.past_actions.as_ref().filter(|p| p.len() + 1 != s.frames.len()) {
                return Err(WorldModelError::Query(format!("episode {e}: {} past actions for {} start frames; give one fewer than frames", p.len(), s.frames.len())));
            }
            all.extend(s.frames.iter().map(|f| f.as_slice()));
        }
        let z = if all.is_empty() { None } else { Some(model.encode(&all)?) };
        let mut at = 0;
        let mut episodes = Vec::new();
        for s in starts {
            let n = s.frames.len();
            let latents = match &z {
                Some(z) => (at..at + n).map(|i| z.narrow(0, i, 1)).collect::<Result<Vec<_>, _>>()?,
                None => Vec::new(),
            };
            at += n;
            let actions = match s.past_actions {
                Some(p) => p.into_iter().map(Some).collect(),
                None => vec![None; n - 1],
            };
            episodes.push(Imagined { frame: s.frames.into_iter().last().unwrap_or_default(), latents, actions, seed: s.seed, t: 0 });
        }
        Ok(WorldModelEnvs { model, scene, sampler: model.meta.sampler, episodes })
    }

    /// Uses another sampler.
    pub fn with_sampler(mut self, sampler: SamplerConfig) -> Self {
        self.sampler = sampler;
        self
    }

    /// Episodes.
    pub fn len(&self) -> usize {
        self.episodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.episodes.is_empty()
    }

    /// Episode `i`'s current frame.
    pub fn frame(&self, i: usize) -> &[u8] {
        &self.episodes[i].frame
    }

    /// The latent window `(n, C, h, w)` episode `i`'s next step starts from (oldest first).
    pub fn window(&self, i: usize) -> Result<Tensor, WorldModelError> {
        Ok(Tensor::cat(&self.episodes[i].latents, 0)?)
    }

    /// Applies `actions[j]` to episode `which[j]` (each at most once), all in one batched call;
    /// returns their steps in the same order.
    pub fn step(&mut self, which: &[usize], actions: &[Vec<f32>]) -> Result<Vec<Step>, WorldModelError> {
        self.sampler.validate().map_err(WorldModelError::Query)?;
        if which.len() != actions.len() {
            return Err(WorldModelError::Query(format!("{} episodes but {} actions", which.len(), actions.len())));
        }
        if let Some(&bad) = which.iter().find(|&&i| i >= self.episodes.len()) {
            return Err(WorldModelError::Query(format!("episode {bad} of {}", self.episodes.len())));
        }
        if which.iter().enumerate().any(|(j, i)| which[..j].contains(i)) {
            return Err(WorldModelError::Query("an episode is stepped twice in one call".into()));
        }
        if which.is_empty() {
            return Ok(Vec::new());
        }
        let mut queries = Vec::new();
        let mut windows = Vec::new();
        for (&i, a) in which.iter().zip(actions) {
            let e = &self.episodes[i];
            // The actions between the window's latents, when all of them are known.
            let past = e.actions.iter().cloned().collect::<Option<Vec<_>>>();
            queries.push(Query { context: Vec::new(), past_actions: past, actions: vec![a.clone()], samples: 1, seed: e.seed ^ crate::rng::mix64(e.t) });
            windows.push(self.window(i)?);
        }
        let z = self.model.rollout_latent(&queries, &windows, &self.sampler)?;
        let z = Tensor::cat(&z, 0)?;
        let (n, _, c, h, w) = z.dims5()?;
        let z = z.reshape((n, c, h, w))?;
        let frames = self.model.decode(&z)?;
        let every = self.sampler.reencode_every.max(1) as u64;
        let again: Vec<usize> = (0..n).filter(|&j| self.sampler.reencode && (self.episodes[which[j]].t + 1) % every == 0).collect();
        let reencoded = if again.is_empty() { None } else { Some(self.model.encode(&again.iter().map(|&j| frames[j].as_slice()).collect::<Vec<_>>())?) };
        let k = self.model.meta.context;
        let mut out = Vec::new();
        for (j, (&i, frame)) in which.iter().zip(frames).enumerate() {
            let next = match (&reencoded, again.iter().position(|&x| x == j)) {
                (Some(r), Some(at)) => r.narrow(0, at, 1)?,
                _ => z.narrow(0, j, 1)?,
            };
            let e = &mut self.episodes[i];
            e.latents.push(next);
            e.actions.push(Some(actions[j].clone()));
            if e.latents.len() > k {
                e.latents.remove(0);
                e.actions.remove(0);
            }
            e.t += 1;
            let (reward, done) = frame_reward(&self.scene, &frame);
            e.frame = frame.clone();
            out.push(Step { frame, reward, done });
        }
        Ok(out)
    }
}

/// The world model as one environment: each step predicts the next frame from the last K frames
/// and actions (one sample, seeded per step), entirely in imagination, with the window in latent
/// space ([`WorldModelEnvs`] of one episode).
pub struct WorldModelEnv<'a>(WorldModelEnvs<'a>);

impl<'a> WorldModelEnv<'a> {
    /// Starts from 1 to K true frames (oldest first) and the actions between them, if known.
    pub fn reset(model: &'a WorldModel, scene: Scene, frames: Vec<Vec<u8>>, past_actions: Option<Vec<Vec<f32>>>, seed: u64) -> Result<Self, WorldModelError> {
        Ok(WorldModelEnv(WorldModelEnvs::reset(model, scene, vec![EnvStart { frames, past_actions, seed }])?))
    }

    /// Uses another sampler.
    pub fn with_sampler(self, sampler: SamplerConfig) -> Self {
        WorldModelEnv(self.0.with_sampler(sampler))
    }

    /// The latent window `(n, C, h, w)` the next step starts from (oldest first).
    pub fn window(&self) -> Result<Tensor, WorldModelError> {
        self.0.window(0)
    }
}

impl Env for WorldModelEnv<'_> {
    type Error = WorldModelError;

    fn frame(&self) -> &[u8] {
        self.0.frame(0)
    }

    fn step(&mut self, action: &[f32]) -> Result<Step, WorldModelError> {
        Ok(self.0.step(&[0], &[action.to_vec()])?.remove(0))
    }
}
