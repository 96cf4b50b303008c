//! # bevy_foresight: predicted futures for Bevy agents
//!
//! Work in progress (issue 4). What exists: the inference [`worker`]: a dedicated thread with its
//! own rayon pool, fed by a bounded crossbeam channel, batching requests that arrive together,
//! applying a full-queue policy, superseding, deadlines, cancellation, catching model panics, and
//! keeping the counters a `ForesightDiagnostics` resource will expose. The Bevy plugin
//! (`WorldModelPlugin`, system sets, messages, views) is built on it next.
#![warn(missing_docs)]

pub mod worker;

pub use worker::{FullQueue, Request, Response, Worker, WorkerConfig, WorkerStats};
