//! # foresight_sim: ground truth for Foresight
//!
//! rapier3d scenes, stepped at a fixed step and rendered offscreen by Bevy in lock-step, so that
//! frame t is exactly the state after action t-1.
//!
//! - [`physics`]: a scene's rapier world ([`physics::SimWorld`]), built from a seed, cloneable.
//! - [`render`]: headless Bevy rendering of many environments per view, pixels read back.
//! - [`policy`]: data-collection policies (random OU, scripted goal-seeking, zero).
//! - [`episode`]: stepping environments with their policies or action lists and recording them.
//! - [`env`]: the simulator behind the same `Env` interface as the world model.
//! - [`datagen`]: `foresight-sim datagen`, episodes into a dataset directory.
//! - [`keys`]: keyboard to action vectors (the `sim` example).
//! - [`oracle`]: the physics oracle: clone a world, replay actions, get true frames and states.
#![warn(missing_docs)]

pub mod control;
pub mod datagen;
pub mod env;
pub mod episode;
pub mod evaluate;
pub mod generative;
pub mod keys;
pub mod oracle;
pub mod physics;
pub mod policy;
pub mod render;

pub use oracle::Oracle;
pub use physics::SimWorld;
pub use render::Renderer;
