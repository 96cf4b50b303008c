//! Training: the optimiser with resumable state, and the stages.

pub mod optim;

pub use optim::{AdamW, AdamWConfig};
