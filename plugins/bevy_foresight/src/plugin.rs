//! `WorldModelPlugin`: requests in as messages, predicted futures out as messages, inference on
//! the worker thread so that the game never waits for the model.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy::asset::RenderAssetUsages;
use bevy::ecs::schedule::ScheduleLabel;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use foresight::model::diffusion::SamplerConfig;
use foresight::generate::{spread_image, spread_map, Generate};
use foresight::world_model::{Query as ModelQuery, WorldModel};

use crate::asset::{WorldModelAsset, WorldModelAssetPlugin};
use crate::observe::{start_capture, ForesightCamera};
use crate::worker::{FullQueue, Job, Predictor, Request, Response, Worker, WorkerConfig};

/// Where a request's context frames come from.
#[derive(Debug, Clone)]
pub enum ContextSource {
    /// Frames given by the caller (`H*W*3` bytes each, oldest first).
    Frames(Vec<Vec<u8>>),
    /// The last K frames captured by the [`ForesightCamera`] on this entity.
    Camera(Entity),
}

impl From<Vec<Vec<u8>>> for ContextSource {
    fn from(frames: Vec<Vec<u8>>) -> Self {
        ContextSource::Frames(frames)
    }
}

/// The latest futures predicted for an entity, inserted on the requester when they arrive (with
/// the [`FuturesPredicted`] message); frames are `Image` assets when the app has `Assets<Image>`.
#[derive(Component, Debug, Clone)]
pub struct PredictedFutures {
    /// The request that produced them.
    pub request_id: u64,
    /// The frame (game tick) the context ended at.
    pub from_frame: u64,
    /// `images[sample][step]`: RGBA images at the model's resolution (empty without `Assets<Image>`).
    pub images: Vec<Vec<Handle<Image>>>,
    /// `frames[sample][step]`: the same frames as RGB bytes.
    pub frames: Arc<Vec<Vec<Vec<u8>>>>,
    /// Normalised latents, row-major with shape [`PredictedFutures::latent_shape`].
    pub latents: Arc<Vec<f32>>,
    /// `(samples, steps, channels, height, width)` of `latents`.
    pub latent_shape: [usize; 5],
    /// With several samples: per step, the per-pixel spread across them as a heat image (black:
    /// the samples agree; yellow-white: they differ by 64 levels or more). Empty otherwise.
    pub spread: Vec<Handle<Image>>,
}

/// An RGB frame as an RGBA `Image` (sRGB) that Bevy can draw.
pub fn frame_image(rgb: &[u8], height: usize, width: usize) -> Image {
    let rgba: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    let mut image = Image::new(Extent3d { width: width as u32, height: height as u32, depth_or_array_layers: 1 }, TextureDimension::D2, rgba, TextureFormat::Rgba8UnormSrgb, RenderAssetUsages::default());
    // Crisp pixels when shown enlarged.
    image.sampler = bevy::image::ImageSampler::nearest();
    image
}

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
    /// 1 to K context frames, given or taken from a [`ForesightCamera`].
    pub context: ContextSource,
    /// Actions between the context frames, if known.
    pub past_actions: Option<Vec<Vec<f32>>>,
    /// One action per predicted step.
    pub actions: Vec<Vec<f32>>,
    /// Futures to draw (each in `frames[sample]`).
    pub samples: usize,
    /// Noise seed.
    pub seed: u64,
    /// Give up if the model cannot start within this long.
    pub deadline: Option<Duration>,
    /// The frame (game tick) the context ends at, echoed back.
    pub from_frame: u64,
}

/// Ask for a generated video: a video from one image (the camera's frame or a given one) with a
/// caption and/or actions, an SDEdit of a video, an interpolation between two videos, or an
/// extension forwards or backwards ([`Generate`]'s constructors). Answered like
/// [`PredictFutures`]: a [`FuturesPredicted`] message and a [`PredictedFutures`] component on
/// the requester (frames as `Image` assets, spread maps when several samples), or a
/// [`PredictionFailed`] with the reason; a request the checkpoint cannot take fails at once.
#[derive(Message, Debug, Clone)]
pub struct GenerateVideo {
    /// Caller-chosen id, echoed back.
    pub request_id: u64,
    /// The asking entity (a newer request from it supersedes an older queued one).
    pub requester: Entity,
    /// What to generate.
    pub request: Generate,
    /// Take the request's context from this [`ForesightCamera`] instead: its last `n` frames.
    pub camera: Option<(Entity, usize)>,
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
    /// Normalised latents, shape `latent_shape` (for planners).
    pub latents: Arc<Vec<f32>>,
    /// `(samples, steps, channels, height, width)`.
    pub latent_shape: [usize; 5],
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
    Asset(String),
}

/// The checkpoint asset being loaded (with [`WorldModelPlugin::from_asset`]).
#[derive(Resource)]
struct PendingModel(Handle<WorldModelAsset>, WorkerConfig, Option<PredictorWrapper>);

/// Wraps the loaded model into what the worker runs (see [`WorldModelPlugin::with_predictor`]).
pub type PredictorWrapper = Arc<dyn Fn(Arc<WorldModel>) -> Arc<dyn Predictor> + Send + Sync>;

/// Adds a world model to the app. Built with [`WorldModelPlugin::new`] (a checkpoint path),
/// [`WorldModelPlugin::from_asset`] or [`WorldModelPlugin::from_model`], then the builder methods.

pub struct WorldModelPlugin {
    source: std::sync::Mutex<Option<Source>>,
    wrap: Option<PredictorWrapper>,
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

    /// Loads the checkpoint through the `AssetServer` (add `AssetPlugin` first), for example
    /// `"push.safetensors"` from the `assets/` folder; requests fail with "still loading" until it
    /// is ready, and a load failure is reported as [`WorldModelPlugin::new`] does.
    pub fn from_asset(path: impl Into<String>) -> Self {
        Self::with_source(Source::Asset(path.into()))
    }

    /// Uses a model already in memory.
    pub fn from_model(model: Arc<WorldModel>) -> Self {
        Self::with_source(Source::Model(model))
    }

    fn with_source(s: Source) -> Self {
        WorldModelPlugin { source: std::sync::Mutex::new(Some(s)), wrap: None, worker: WorkerConfig::default(), schedule: Update.intern() }
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

    /// Sampler settings (steps, temperature, guidance, re-encoding); without this call the
    /// checkpoint's own sampler (its JSON's `sampler`) is used.
    pub fn with_sampler(mut self, sampler: SamplerConfig) -> Self {
        self.worker.sampler = Some(sampler);
        self
    }

    /// Most requests answered in one call.
    pub fn with_max_batch(mut self, n: usize) -> Self {
        self.worker.max_batch = n.max(1);
        self
    }

    /// Runs a stand-in around the loaded model (for benchmarks and tests: a deliberately slow or
    /// failing model); requests are still validated against the loaded model's metadata.
    pub fn with_predictor(mut self, wrap: impl Fn(Arc<WorldModel>) -> Arc<dyn Predictor> + Send + Sync + 'static) -> Self {
        self.wrap = Some(Arc::new(wrap));
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
            .add_message::<GenerateVideo>()
            .add_message::<CancelPrediction>()
            .add_message::<FuturesPredicted>()
            .add_message::<PredictionFailed>()
            .init_resource::<ForesightDiagnostics>()
            .configure_sets(self.schedule, (ForesightSystems::Observe, ForesightSystems::Dispatch, ForesightSystems::Receive).chain())
            .add_systems(self.schedule, start_capture.in_set(ForesightSystems::Observe))
            .add_systems(self.schedule, dispatch.in_set(ForesightSystems::Dispatch))
            .add_systems(self.schedule, receive.in_set(ForesightSystems::Receive));
        let source = self.source.lock().ok().and_then(|mut s| s.take());
        let model = match source {
            Some(Source::Asset(path)) => {
                app.add_plugins(WorldModelAssetPlugin);
                let handle = app.world().resource::<AssetServer>().load::<WorldModelAsset>(path);
                app.insert_resource(PendingModel(handle, self.worker.clone(), self.wrap.clone()))
                    .insert_resource(ForesightDiagnostics { unavailable: Some("the world model is still loading".into()), ..default() })
                    .add_systems(self.schedule, await_model.before(ForesightSystems::Dispatch));
                return;
            }
            Some(Source::Path(p)) => WorldModel::load(&p).map(Arc::new).map_err(|e| e.to_string()),
            Some(Source::Model(m)) => Ok(m),
            None => Err("the plugin was built twice".to_string()),
        };
        let wrap = self.wrap.clone();
        let runner = move |m: &Arc<WorldModel>| -> Arc<dyn Predictor> {
            match &wrap {
                Some(f) => f(m.clone()),
                None => m.clone(),
            }
        };
        match model.and_then(|m| Worker::spawn(runner(&m), self.worker.clone()).map(|w| (m, w))) {
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

/// Starts the worker once the checkpoint asset has loaded, or reports why it did not.
fn await_model(mut commands: Commands, pending: Option<Res<PendingModel>>, server: Res<AssetServer>, assets: Res<Assets<WorldModelAsset>>, mut diagnostics: ResMut<ForesightDiagnostics>) {
    let Some(pending) = pending else { return };
    if let Some(asset) = assets.get(&pending.0) {
        let runner: Arc<dyn Predictor> = match &pending.2 {
            Some(f) => f(asset.model.clone()),
            None => asset.model.clone(),
        };
        match Worker::spawn(runner, pending.1.clone()) {
            Ok(worker) => {
                commands.insert_resource(Foresight { model: asset.model.clone(), worker, requests: Default::default() });
                diagnostics.unavailable = None;
            }
            Err(e) => diagnostics.unavailable = Some(e),
        }
        commands.remove_resource::<PendingModel>();
    } else if let Some(bevy::asset::LoadState::Failed(e)) = server.get_load_state(&pending.0) {
        let reason = format!("the world model failed to load: {e}");
        error!("foresight: {reason}");
        diagnostics.unavailable = Some(reason);
        commands.remove_resource::<PendingModel>();
    }
}

fn dispatch(
    foresight: Option<ResMut<Foresight>>,
    diagnostics: Res<ForesightDiagnostics>,
    cameras: Query<&ForesightCamera>,
    mut requests: MessageReader<PredictFutures>,
    mut generations: MessageReader<GenerateVideo>,
    mut cancels: MessageReader<CancelPrediction>,
    mut failed: MessageWriter<PredictionFailed>,
) {
    let Some(mut fs) = foresight else {
        let reason = diagnostics.unavailable.clone().unwrap_or_else(|| "no world model".into());
        for (request_id, requester) in requests.read().map(|r| (r.request_id, r.requester)).chain(generations.read().map(|r| (r.request_id, r.requester))) {
            failed.write(PredictionFailed { request_id, requester, reason: reason.clone() });
        }
        return;
    };
    for r in generations.read() {
        let mut request = r.request.clone();
        if let Some((cam, n)) = r.camera {
            match camera_context(&cameras, cam, &fs.model, n) {
                Ok(frames) => request.context = frames,
                Err(reason) => {
                    failed.write(PredictionFailed { request_id: r.request_id, requester: r.requester, reason });
                    continue;
                }
            }
        }
        if let Err(e) = fs.model.validate_generate(&request) {
            failed.write(PredictionFailed { request_id: r.request_id, requester: r.requester, reason: e.to_string() });
            continue;
        }
        let now = Instant::now();
        fs.requests.insert(r.request_id, (r.requester, r.from_frame, now));
        fs.worker.submit(Request { id: r.request_id, requester: r.requester.to_bits(), job: Job::Generate(request), deadline: r.deadline.map(|d| now + d) });
    }
    for c in cancels.read() {
        fs.worker.cancel(c.request_id);
    }
    for r in requests.read() {
        // Refuse at once what the checkpoint cannot answer.
        let meta = &fs.model.meta;
        let [h, w] = meta.resolution;
        let context = match &r.context {
            ContextSource::Frames(f) => f.clone(),
            ContextSource::Camera(e) => match camera_context(&cameras, *e, &fs.model, meta.context) {
                Ok(f) => f,
                Err(reason) => {
                    failed.write(PredictionFailed { request_id: r.request_id, requester: r.requester, reason });
                    continue;
                }
            },
        };
        let problem = if context.is_empty() || context.len() > meta.context {
            Some(format!("{} context frames; the model takes 1 to {}", context.len(), meta.context))
        } else if let Some(f) = context.iter().find(|f| f.len() != h * w * 3) {
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
            job: Job::Predict(ModelQuery { context, past_actions: r.past_actions.clone(), actions: r.actions.clone(), samples: r.samples, seed: r.seed }),
            deadline: r.deadline.map(|d| now + d),
        };
        fs.worker.submit(req);
    }
}

/// The last `n` frames of a [`ForesightCamera`], or why not.
fn camera_context(cameras: &Query<&ForesightCamera>, e: Entity, model: &WorldModel, n: usize) -> Result<Vec<Vec<u8>>, String> {
    match cameras.get(e) {
        Ok(cam) if cam.resolution != model.meta.resolution => Err(format!("camera {e} captures {:?} frames; the model takes {:?}", cam.resolution, model.meta.resolution)),
        Ok(cam) => Ok(cam.context(n)),
        Err(_) => Err(format!("entity {e} has no ForesightCamera")),
    }
}

fn receive(
    mut commands: Commands,
    foresight: Option<ResMut<Foresight>>,
    mut images: Option<ResMut<Assets<Image>>>,
    mut diagnostics: ResMut<ForesightDiagnostics>,
    mut done: MessageWriter<FuturesPredicted>,
    mut failed: MessageWriter<PredictionFailed>,
) {
    let Some(mut fs) = foresight else { return };
    let [h, w] = fs.model.meta.resolution;
    while let Some(resp) = fs.worker.try_recv() {
        match resp {
            Response::Done { id, prediction, latency, .. } => {
                let (requester, from_frame, _) = fs.requests.remove(&id).unwrap_or((Entity::PLACEHOLDER, 0, Instant::now()));
                let latent_shape: [usize; 5] = prediction.latents.dims().try_into().unwrap_or([0; 5]);
                let latents = match prediction.latents.flatten_all().and_then(|t| t.to_vec1::<f32>()) {
                    Ok(v) => Arc::new(v),
                    Err(e) => {
                        failed.write(PredictionFailed { request_id: id, requester, reason: format!("latents unreadable: {e}") });
                        continue;
                    }
                };
                let frames = Arc::new(prediction.frames);
                let (image_handles, spread) = match images.as_deref_mut() {
                    Some(assets) => {
                        let handles = frames.iter().map(|s| s.iter().map(|f| assets.add(frame_image(f, h, w))).collect()).collect();
                        let steps = if frames.len() > 1 { frames[0].len() } else { 0 };
                        let spread = (0..steps)
                            .map(|t| {
                                let s = spread_map(&frames.iter().map(|f| f[t].as_slice()).collect::<Vec<_>>());
                                assets.add(frame_image(&spread_image(&s, 64.0), h, w))
                            })
                            .collect();
                        (handles, spread)
                    }
                    None => (Vec::new(), Vec::new()),
                };
                if let Ok(mut e) = commands.get_entity(requester) {
                    e.try_insert(PredictedFutures { request_id: id, from_frame, images: image_handles, frames: frames.clone(), latents: latents.clone(), latent_shape, spread });
                }
                done.write(FuturesPredicted { request_id: id, requester, frames, latents, latent_shape, from_frame, latency });
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
