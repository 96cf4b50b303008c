//! The simulator as an [`Env`]: the same interface as `foresight::env::WorldModelEnv`, so a
//! policy (which sees frames only) runs in either without knowing which. The reward is computed
//! from the rendered frame by the same code as in the world model.

use std::sync::Arc;

use foresight::env::{frame_reward, Env, Step};
use foresight::scene::Scene;

use crate::episode::RunError;
use crate::physics::SimWorld;
use crate::render::Renderer;

/// One true environment, rendered after every step.
pub struct SimEnv {
    scene: Arc<Scene>,
    world: SimWorld,
    renderer: Renderer,
    frame: Vec<u8>,
}

impl SimEnv {
    /// A renderer for `scene` and a first episode from `seed`.
    pub fn new(scene: Arc<Scene>, seed: u64) -> Result<Self, RunError> {
        let renderer = Renderer::new(scene.clone(), 1)?;
        let world = SimWorld::new(scene.clone(), seed)?;
        let mut env = SimEnv { scene, world, renderer, frame: Vec::new() };
        env.frame = env.draw()?;
        Ok(env)
    }

    /// Starts a new episode from `seed` (the renderer is kept).
    pub fn reset(&mut self, seed: u64) -> Result<&[u8], RunError> {
        self.world = SimWorld::new(self.scene.clone(), seed)?;
        self.frame = self.draw()?;
        Ok(&self.frame)
    }

    /// The physics world (for the oracle: clone it to imagine).
    pub fn world(&self) -> &SimWorld {
        &self.world
    }

    fn draw(&mut self) -> Result<Vec<u8>, RunError> {
        Ok(self.renderer.render(&[&self.world])?.remove(0))
    }
}

impl Env for SimEnv {
    type Error = RunError;

    fn frame(&self) -> &[u8] {
        &self.frame
    }

    fn step(&mut self, action: &[f32]) -> Result<Step, RunError> {
        self.world.step(action)?;
        self.frame = self.draw()?;
        let (reward, done) = frame_reward(&self.scene, &self.frame);
        Ok(Step { frame: self.frame.clone(), reward, done })
    }
}
