//! Training: configs, in-memory data, the optimiser with resumable state, checkpoints, stages.

pub mod autoencoder;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dynamics;
pub mod optim;

pub use config::{StageConfig, TrainConfig};
pub use optim::{AdamW, AdamWConfig};
