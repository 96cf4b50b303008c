//! # bevy_foresight: predicted futures for Bevy agents
//!
//! Work in progress (issue 4). The pipeline, stage by stage:
//!
//! 1. [`ForesightSystems::Observe`]: (next) camera frames into rolling contexts.
//! 2. [`ForesightSystems::Dispatch`]: [`PredictFutures`] messages are checked against the
//!    checkpoint's metadata (a misfit fails at once as [`PredictionFailed`]) and handed to the
//!    [`worker`], which never blocks the frame.
//! 3. The worker (its own thread and rayon pool, bounded crossbeam queue) batches requests that
//!    arrived together into one model call, applies the full-queue policy, supersedes older
//!    requests from the same requester, honours deadlines and cancellation, and survives panics.
//! 4. [`ForesightSystems::Receive`]: answers come back as [`FuturesPredicted`] or
//!    [`PredictionFailed`]; [`ForesightDiagnostics`] holds queue depth, batch sizes, latency
//!    percentiles and throughput.
//!
//! Views of futures, camera observation, checkpoints as assets and the examples come next.
#![warn(missing_docs)]

pub mod asset;
pub mod observe;
pub mod planner;
pub mod plugin;
pub mod recorder;
pub mod view;
pub mod worker;

pub use asset::{WorldModelAsset, WorldModelAssetPlugin, WorldModelLoader};
pub use observe::ForesightCamera;
pub use plugin::{
    frame_image, CancelPrediction, ContextSource, ForesightDiagnostics, ForesightSystems, FuturesPredicted, GenerateVideo, PredictFutures, PredictedFutures, PredictionFailed, WorldModelPlugin,
};
pub use planner::{PlannerAgent, PlannerAgentPlugin};
pub use recorder::{CutEpisode, RecordedAction, RecorderCamera, RecorderConfig, RecorderPlugin, RecorderStatus};
pub use view::{FuturesView, FuturesViewParts, FuturesViewPlugin, Ghost, FUTURES_LAYER};
pub use worker::{FullQueue, Job, Predictor, Request, Response, Worker, WorkerConfig, WorkerStats};
