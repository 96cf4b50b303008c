//! # Foresight core
//!
//! A learned world simulator: a Sora-style video diffusion model conditioned on an agent's
//! actions. This crate has no Bevy dependency; it holds the scene format, the dataset format and
//! (from issue 3 on) the model, training, evaluation and planning.
//!
//! - [`scene`]: the RON scene format read by the simulator and by evaluation.
//! - [`camera`]: projecting world points into frame pixels.
//! - [`data`]: episodes, dataset directories (manifest + safetensors shards), the importer.
//! - [`rng`]: deterministic seeds and random numbers.
//! - [`model`]: the autoencoder (video compression network), the spacetime-patch diffusion
//!   transformer, rectified flow and the few-step sampler.
//! - [`world_model`]: load a checkpoint, predict futures (batched, autoregressive).
//! - [`train`]: two-stage training with exact resume.
//! - [`alloc`]: keep freed memory in the process (training loops reuse their pages).
//! - [`bench`]: speed figures against the measured matmul peak.
//! - [`env`]: the `Env` interface (world model or simulator) and the frame-based reward.
//! - [`eval`]: the measurement protocol (PSNR, SSIM, body positions, baselines, controllability).
//! - [`plan`]: CEM / MPPI model-predictive control over any [`plan::Imagination`].
#![warn(missing_docs)]

pub mod alloc;
pub mod bench;
pub mod camera;
pub mod data;
pub mod env;
pub mod eval;
pub mod generate;
pub mod media;
pub mod model;
pub mod plan;
pub mod rng;
pub mod scene;
pub mod train;
pub mod world_model;
