//! The physics oracle: from any state, clone the world and replay actions, returning the true
//! future frames and states. Every prediction is judged against it.

use std::sync::Arc;

use foresight::data::Episode;
use foresight::scene::Scene;

use crate::episode::{record_batch, Driver, RunError};
use crate::physics::SimWorld;
use crate::render::{RenderError, Renderer};

/// A renderer plus the replay logic.
pub struct Oracle {
    renderer: Renderer,
}

impl Oracle {
    /// An oracle for `scene` that replays up to `envs` futures per call.
    pub fn new(scene: Arc<Scene>, envs: usize) -> Result<Self, RenderError> {
        Ok(Oracle { renderer: Renderer::new(scene, envs)? })
    }

    /// The scene.
    pub fn scene(&self) -> &Arc<Scene> {
        self.renderer.scene()
    }

    /// Draws the current frame of each world.
    pub fn observe(&mut self, worlds: &[&SimWorld]) -> Result<Vec<Vec<u8>>, RenderError> {
        self.renderer.render(worlds)
    }

    /// Replays `actions` from a clone of `start`; the result holds the start frame and one frame
    /// per action (`actions.len() + 1` frames) and states. `start` is left untouched.
    pub fn replay(&mut self, start: &SimWorld, actions: &[Vec<f32>]) -> Result<Episode, RunError> {
        Ok(self.replay_many(&[start], &[actions.to_vec()])?.remove(0))
    }

    /// Replays one action sequence per start world, in batches of the renderer's slots.
    pub fn replay_many(&mut self, starts: &[&SimWorld], actions: &[Vec<Vec<f32>>]) -> Result<Vec<Episode>, RunError> {
        let scene = self.renderer.scene().clone();
        let mut out = Vec::with_capacity(starts.len());
        let slots = self.renderer.slots();
        for (chunk, acts) in starts.chunks(slots).zip(actions.chunks(slots)) {
            let steps = acts.iter().map(|a| a.len()).max().unwrap_or(0);
            if acts.iter().any(|a| a.len() != steps) {
                return Err(RunError::Sim(crate::physics::SimError::Action("every replay in a batch needs the same number of actions".into())));
            }
            let worlds: Vec<SimWorld> = chunk.iter().map(|w| (*w).clone()).collect();
            let seeds = vec![0; worlds.len()];
            let drivers = acts.iter().map(|a| Driver::Actions(a.clone())).collect();
            out.extend(record_batch(&mut self.renderer, &scene, worlds, &seeds, drivers, "replay", steps)?);
        }
        Ok(out)
    }
}
