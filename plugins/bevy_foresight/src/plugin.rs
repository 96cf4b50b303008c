//! `WorldModelPlugin`: requests in as messages, predicted futures out as messages, inference on
//! the worker thread so that the game never waits for the model.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy::ecs::schedule::ScheduleLabel;
use bevy::prelude::*;
use foresight::model::diffusion::SamplerConfig;
use foresight::world_model::{Query, WorldModel};

use crate::worker::{FullQueue, Request, Response, Worker, WorkerConfig};

/// The plugin's stages, chained in the chosen schedule (`Update` by default).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForesightSystems {
    /// Capture observations (camera frames into rolling contexts).
    Observe,
    /// Validate `PredictFutures` requests and hand them to the worker (never waits).
    Dispatch,
    /// Collect the worker's answers as `FuturesPredicted` / `PredictionFailed` messages and
    /// update `ForesightDiagnostics`.
    Receive,
}

/// Ask for futures. The answer comes back later as [`FuturesPredicted`] or [`PredictionFailed`]
/// with the same `request_id`.
#[derive(Message, Debug, Clone)]
pub struct PredictFutures {
    /// Caller-chosen id, echoed back.
    pub request_id: u64,
    /// The asking entity: a newer request from it supersedes an older queued one.
    pub requester: Entity,
    /// 1 to K context frames (`H*W*3` bytes), oldest first.
    pub context: Vec<Vec<u8>>,
    /// Actions between the context frames, if known.
    pub past_actions: Option<Vec<Vec<f32>>>,
    /// One action per predicted step.
    pub actions: Vec<Vec<f32>>,
    /// Futures to draw.
    pub samples: usize,
    /// Noise seed.
    pub seed: u64,
    /// Give up if the model cannot start within this long.
    pub deadline: Option<Duration>,
    /// The frame (game tick) the context ends at, echoed back.
    pub from_frame: u64,
}

/// Cancel a request that has not started.
#[derive(Message, Debug, Clone, Copy)]
pub struct CancelPrediction {
    /// The request's id.
    pub request_id: u64,
}

/// Predicted futures.
#[derive(Message, Debug, Clone)]
pub struct FuturesPredicted {
    /// The request's id.
    pub request_id: u64,
    /// Who asked.
    pub requester: Entity,
    /// `frames[sample][step]`, `H*W*3` bytes each.
    pub frames: Arc<Vec<Vec<Vec<u8>>>>,
    /// The frame (game tick) the context ended at.
    pub from_frame: u64,
    /// From request to answer.
    pub latency: Duration,
}

/// A request that produced no prediction, and why.
#[derive(Message, Debug, Clone)]
pub struct PredictionFailed {
    /// The request's id.
    pub request_id: u64,
    /// Who asked.
    pub requester: Entity,
    /// The reason.
    pub reason: String,
}

/// Queue depth, batch sizes, latency percentiles and throughput of the worker.
#[derive(Resource, Debug, Clone, Default)]
pub struct ForesightDiagnostics {
    /// Requests waiting.
    pub queue_depth: usize,
    /// Mean size of recent batches.
    pub mean_batch: f64,
    /// Median latency of recent answers, seconds.
    pub latency_p50: Option<f64>,
    /// 95th percentile latency, seconds.
    pub latency_p95: Option<f64>,
    /// Predicted frames per second of model time.
    pub frames_per_second: f64,
    /// Answers, failures, rejections, drops, panics so far.
    pub answered: u64,
    /// Failed requests.
    pub failed: u64,
    /// Refused because the queue was full.
    pub rejected: u64,
    /// Dropped for newer requests.
    pub dropped: u64,
    /// Panics caught in the model.
    pub panics: u64,
    /// Why the model is unavailable, if it is.
    pub unavailable: Option<String>,
}

/// The loaded model and its worker.
#[derive(Resource)]
pub struct Foresight {
    /// The model (metadata for validating queries).
    pub model: Arc<WorldModel>,
    worker: Worker,
    requests: std::collections::HashMap<u64, (Entity, u64, Instant)>,
}

/// Where the model comes from.
enum Source {
    Path(PathBuf),
    Model(Arc<WorldModel>),
}

/// Adds a world model to the app. Built with [`WorldModelPlugin::new`] (a checkpoint path) or
/// [`WorldModelPlugin::from_model`], then the builder methods.
pub struct WorldModelPlugin {
    source: std::sync::Mutex<Option<Source>>,
    worker: WorkerConfig,
    schedule: bevy::ecs::intern::Interned<dyn ScheduleLabel>,
}

impl WorldModelPlugin {
    /// Loads the checkpoint (`NAME.safetensors` beside `NAME.json`) when the plugin is built; a
    /// load error is reported in [`ForesightDiagnostics::unavailable`] and as a log error, and
    /// every request then fails with it.
    pub fn new(checkpoint: impl Into<PathBuf>) -> Self {
        Self::with_source(Source::Path(checkpoint.into()))
    }

    /// Uses a model already in memory.
    pub fn from_model(model: Arc<WorldModel>) -> Self {
        Self::with_source(Source::Model(model))
    }

    fn with_source(s: Source) -> Self {
        WorldModelPlugin { source: std::sync::Mutex::new(Some(s)), worker: WorkerConfig::default(), schedule: Update.intern() }
    }

    /// Threads of the model's own pool (its CPU budget, apart from Bevy's task pools).
    pub fn with_threads(mut self, n: usize) -> Self {
        self.worker.threads = n.max(1);
        self
    }

    /// Requests that may wait.
    pub fn with_queue_capacity(mut self, n: usize) -> Self {
        self.worker.queue_capacity = n.max(1);
        self
    }

    /// What a full queue does.
    pub fn with_full_queue(mut self, policy: FullQueue) -> Self {
        self.worker.full_queue = policy;
        self
    }

    /// Sampler settings (steps, temperature, guidance).
    pub fn with_sampler(mut self, sampler: SamplerConfig) -> Self {
        self.worker.sampler = sampler;
        self
    }

    /// Most requests answered in one call.
    pub fn with_max_batch(mut self, n: usize) -> Self {
        self.worker.max_batch = n.max(1);
        self
    }

    /// Runs the systems in another schedule.
    pub fn in_schedule(mut self, schedule: impl ScheduleLabel) -> Self {
        self.schedule = schedule.intern();
        self
    }
}

impl Plugin for WorldModelPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<PredictFutures>()
            .add_message::<CancelPrediction>()
            .add_message::<FuturesPredicted>()
            .add_message::<PredictionFailed>()
            .init_resource::<ForesightDiagnostics>()
            .configure_sets(self.schedule, (ForesightSystems::Observe, ForesightSystems::Dispatch, ForesightSystems::Receive).chain())
            .add_systems(self.schedule, dispatch.in_set(ForesightSystems::Dispatch))
            .add_systems(self.schedule, receive.in_set(ForesightSystems::Receive));
        let source = self.source.lock().ok().and_then(|mut s| s.take());
        let model = match source {
            Some(Source::Path(p)) => WorldModel::load(&p).map(Arc::new).map_err(|e| e.to_string()),
            Some(Source::Model(m)) => Ok(m),
            None => Err("the plugin was built twice".to_string()),
        };
        match model.and_then(|m| Worker::spawn(m.clone(), self.worker.clone()).map(|w| (m, w))) {
            Ok((model, worker)) => {
                app.insert_resource(Foresight { model, worker, requests: Default::default() });
            }
            Err(e) => {
                error!("foresight: the world model is unavailable: {e}");
                app.insert_resource(ForesightDiagnostics { unavailable: Some(e), ..default() });
            }
        }
    }
}

fn dispatch(
    foresight: Option<ResMut<Foresight>>,
    diagnostics: Res<ForesightDiagnostics>,
    mut requests: MessageReader<PredictFutures>,
    mut cancels: MessageReader<CancelPrediction>,
    mut failed: MessageWriter<PredictionFailed>,
) {
    let Some(mut fs) = foresight else {
        let reason = diagnostics.unavailable.clone().unwrap_or_else(|| "no world model".into());
        for r in requests.read() {
            failed.write(PredictionFailed { request_id: r.request_id, requester: r.requester, reason: reason.clone() });
        }
        return;
    };
    for c in cancels.read() {
        fs.worker.cancel(c.request_id);
    }
    for r in requests.read() {
        // Refuse at once what the checkpoint cannot answer.
        let meta = &fs.model.meta;
        let [h, w] = meta.resolution;
        let problem = if r.context.is_empty() || r.context.len() > meta.context {
            Some(format!("{} context frames; the model takes 1 to {}", r.context.len(), meta.context))
        } else if let Some(f) = r.context.iter().find(|f| f.len() != h * w * 3) {
            Some(format!("a context frame has {} bytes; the model takes {h}x{w}x3", f.len()))
        } else if let Some(a) = r.actions.iter().find(|a| a.len() != meta.action_spec.dim) {
            Some(format!("an action has {} values; the model takes {}", a.len(), meta.action_spec.dim))
        } else {
            None
        };
        if let Some(reason) = problem {
            failed.write(PredictionFailed { request_id: r.request_id, requester: r.requester, reason });
            continue;
        }
        let now = Instant::now();
        fs.requests.insert(r.request_id, (r.requester, r.from_frame, now));
        let req = Request {
            id: r.request_id,
            requester: r.requester.to_bits(),
            query: Query { context: r.context.clone(), past_actions: r.past_actions.clone(), actions: r.actions.clone(), samples: r.samples, seed: r.seed },
            deadline: r.deadline.map(|d| now + d),
        };
        fs.worker.submit(req);
    }
}

fn receive(foresight: Option<ResMut<Foresight>>, mut diagnostics: ResMut<ForesightDiagnostics>, mut done: MessageWriter<FuturesPredicted>, mut failed: MessageWriter<PredictionFailed>) {
    let Some(mut fs) = foresight else { return };
    while let Some(resp) = fs.worker.try_recv() {
        match resp {
            Response::Done { id, prediction, latency, .. } => {
                let (requester, from_frame, _) = fs.requests.remove(&id).unwrap_or((Entity::PLACEHOLDER, 0, Instant::now()));
                done.write(FuturesPredicted { request_id: id, requester, frames: Arc::new(prediction.frames), from_frame, latency });
            }
            Response::Failed { id, reason, .. } => {
                let (requester, _, _) = fs.requests.remove(&id).unwrap_or((Entity::PLACEHOLDER, 0, Instant::now()));
                failed.write(PredictionFailed { request_id: id, requester, reason });
            }
        }
    }
    let s = fs.worker.stats();
    let d = &mut *diagnostics;
    d.queue_depth = fs.worker.queue_depth();
    d.mean_batch = if s.batch_sizes.is_empty() { 0.0 } else { s.batch_sizes.iter().sum::<usize>() as f64 / s.batch_sizes.len() as f64 };
    d.latency_p50 = s.latency_percentile(0.5);
    d.latency_p95 = s.latency_percentile(0.95);
    d.frames_per_second = s.frames_per_second();
    (d.answered, d.failed, d.rejected, d.dropped, d.panics) = (s.answered, s.failed, s.rejected, s.dropped, s.panics);
}
