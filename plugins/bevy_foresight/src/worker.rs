//! The inference worker: a dedicated thread with its own rayon pool, fed by a bounded crossbeam
//! channel, that batches the requests that arrived together into one model call. No Bevy here:
//! the plugin's systems only submit and collect, so the game never waits for the model.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, unbounded, Receiver, Sender, TryRecvError, TrySendError};
use foresight::model::diffusion::SamplerConfig;
use foresight::generate::Generate;
use foresight::world_model::{Prediction, Query, WorldModel, WorldModelError};

/// What the worker runs: the world model, or a stand-in wrapped around it (a deliberately slow
/// model for benchmarks, a failing one for tests).
pub trait Predictor: Send + Sync + 'static {
    /// Answers queries in one batched call.
    fn predict_batch(&self, queries: &[Query], sampler: &SamplerConfig) -> Result<Vec<Prediction>, WorldModelError>;
    /// Answers generation requests (image to video, edit, interpolation, extension) in one call.
    fn generate(&self, reqs: &[Generate], sampler: &SamplerConfig) -> Result<Vec<Prediction>, WorldModelError>;
    /// The sampler used when the plugin is given none (a checkpoint's: the one it was trained
    /// and measured with).
    fn default_sampler(&self) -> SamplerConfig {
        SamplerConfig::default()
    }
}

impl Predictor for WorldModel {
    fn predict_batch(&self, queries: &[Query], sampler: &SamplerConfig) -> Result<Vec<Prediction>, WorldModelError> {
        WorldModel::predict_batch(self, queries, sampler)
    }
    fn generate(&self, reqs: &[Generate], sampler: &SamplerConfig) -> Result<Vec<Prediction>, WorldModelError> {
        WorldModel::generate(self, reqs, sampler)
    }
    fn default_sampler(&self) -> SamplerConfig {
        self.meta.sampler
    }
}

/// What a request asks the model to do.
#[derive(Debug, Clone)]
pub enum Job {
    /// Roll the world forward under actions.
    Predict(Query),
    /// Generate a video (caption, single image, edit, interpolation, extension).
    Generate(Generate),
}

impl Job {
    /// Frames the job produces per sample, times samples.
    pub fn frames(&self) -> usize {
        match self {
            Job::Predict(q) => q.actions.len() * q.samples,
            Job::Generate(g) => g.horizon * g.samples,
        }
    }
}

/// Runs jobs in at most two batched calls (predictions, generations), answers in job order.
fn run_jobs(model: &dyn Predictor, jobs: &[&Job], sampler: &SamplerConfig) -> Result<Vec<Prediction>, WorldModelError> {
    let queries: Vec<Query> = jobs.iter().filter_map(|j| if let Job::Predict(q) = j { Some(q.clone()) } else { None }).collect();
    let gens: Vec<Generate> = jobs.iter().filter_map(|j| if let Job::Generate(g) = j { Some(g.clone()) } else { None }).collect();
    let mut p = if queries.is_empty() { Vec::new() } else { model.predict_batch(&queries, sampler)? }.into_iter();
    let mut g = if gens.is_empty() { Vec::new() } else { model.generate(&gens, sampler)? }.into_iter();
    jobs.iter()
        .map(|j| match j {
            Job::Predict(_) => p.next(),
            Job::Generate(_) => g.next(),
        }
        .ok_or_else(|| WorldModelError::Query("the model answered fewer requests than it was asked".into())))
        .collect()
}

/// What to do with a request when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullQueue {
    /// Refuse the new request (it fails at once with a reason).
    #[default]
    Reject,
    /// Drop the oldest queued request (it fails with a reason) and queue the new one.
    DropOldest,
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Threads of the worker's own rayon pool (the model's CPU budget).
    pub threads: usize,
    /// Requests that may wait.
    pub queue_capacity: usize,
    /// Policy for a full queue.
    pub full_queue: FullQueue,
    /// Most requests answered in one batched call.
    pub max_batch: usize,
    /// Sampler (None: the checkpoint's own, from its JSON).
    pub sampler: Option<SamplerConfig>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig { threads: 1, queue_capacity: 64, full_queue: FullQueue::Reject, max_batch: 16, sampler: None }
    }
}

/// One question for the worker.
#[derive(Debug, Clone)]
pub struct Request {
    /// Caller's id, echoed in the response.
    pub id: u64,
    /// Who asked: a newer request from the same requester supersedes an older one still queued.
    pub requester: u64,
    /// What to compute.
    pub job: Job,
    /// Answer only if it can start before this instant.
    pub deadline: Option<Instant>,
}

/// The worker's answer.
#[derive(Debug)]
pub enum Response {
    /// Predicted futures.
    Done {
        /// Request id.
        id: u64,
        /// Requester.
        requester: u64,
        /// Frames and latents.
        prediction: Prediction,
        /// From submission to answer.
        latency: Duration,
        /// Requests answered in the same call.
        batch: usize,
    },
    /// No prediction, and why.
    Failed {
        /// Request id.
        id: u64,
        /// Requester.
        requester: u64,
        /// The reason.
        reason: String,
    },
}

/// Counters and recent latencies.
#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    /// Requests answered.
    pub answered: u64,
    /// Requests that failed (any reason).
    pub failed: u64,
    /// Requests refused because the queue was full.
    pub rejected: u64,
    /// Requests dropped to make room (drop-oldest policy).
    pub dropped: u64,
    /// Requests superseded by a newer one from the same requester.
    pub superseded: u64,
    /// Requests past their deadline.
    pub expired: u64,
    /// Requests cancelled.
    pub cancelled: u64,
    /// Panics caught inside the model.
    pub panics: u64,
    /// Frames predicted.
    pub frames: u64,
    /// Seconds spent inside the model.
    pub busy_seconds: f64,
    /// Sizes of recent batches (last 256).
    pub batch_sizes: VecDeque<usize>,
    /// Recent latencies in seconds (last 256).
    pub latencies: VecDeque<f64>,
}

impl WorkerStats {
    /// Latency percentile `p` in [0, 1] over recent answers, seconds.
    pub fn latency_percentile(&self, p: f64) -> Option<f64> {
        let mut v: Vec<f64> = self.latencies.iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[((v.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize])
    }

    /// Predicted frames per second of model time.
    pub fn frames_per_second(&self) -> f64 {
        if self.busy_seconds > 0.0 { self.frames as f64 / self.busy_seconds } else { 0.0 }
    }

    fn push_recent(q: &mut VecDeque<f64>, v: f64) {
        if q.len() >= 256 {
            q.pop_front();
        }
        q.push_back(v);
    }
}

struct Queued {
    req: Request,
    at: Instant,
}

/// A running worker. Dropping it stops the thread.
pub struct Worker {
    tx: Option<Sender<Queued>>,
    evict: Receiver<Queued>,
    responses: Receiver<Response>,
    fail_tx: Sender<Response>,
    cancelled: Arc<Mutex<HashSet<u64>>>,
    stats: Arc<Mutex<WorkerStats>>,
    config: WorkerConfig,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker thread with its own rayon pool of `config.threads` threads.
    pub fn spawn(model: Arc<dyn Predictor>, config: WorkerConfig) -> Result<Self, String> {
        let sampler = config.sampler.unwrap_or_else(|| model.default_sampler());
        sampler.validate()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads.max(1))
            .thread_name(|i| format!("foresight-model-{i}"))
            .build()
            .map_err(|e| format!("cannot start the model's thread pool: {e}"))?;
        let (tx, rx) = bounded::<Queued>(config.queue_capacity.max(1));
        let (resp_tx, responses) = unbounded();
        let cancelled = Arc::new(Mutex::new(HashSet::new()));
        let stats = Arc::new(Mutex::new(WorkerStats::default()));
        let cfg = WorkerConfig { sampler: Some(sampler), ..config.clone() };
        let (c2, s2, out) = (cancelled.clone(), stats.clone(), resp_tx.clone());
        let evict = rx.clone();
        let handle = std::thread::Builder::new()
            .name("foresight-worker".into())
            .spawn(move || run(model, pool, rx, out, c2, s2, cfg))
            .map_err(|e| format!("cannot start the worker thread: {e}"))?;
        Ok(Worker { tx: Some(tx), evict, responses, fail_tx: resp_tx, cancelled, stats, config, handle: Some(handle) })
    }

    /// Queues a request; a full queue applies the configured policy. Refusals come back as
    /// [`Response::Failed`] too, so the caller has one place to look.
    pub fn submit(&self, req: Request) -> bool {
        let Some(tx) = &self.tx else { return false };
        let mut item = Queued { req, at: Instant::now() };
        loop {
            match tx.try_send(item) {
                Ok(()) => return true,
                Err(TrySendError::Full(back)) => match self.config.full_queue {
                    FullQueue::Reject => {
                        self.fail(&back.req, format!("the prediction queue is full ({} waiting)", self.config.queue_capacity), |s| s.rejected += 1);
                        return false;
                    }
                    FullQueue::DropOldest => {
                        if let Ok(old) = self.evict.try_recv() {
                            self.fail(&old.req, "dropped: the queue was full and a newer request came".into(), |s| s.dropped += 1);
                        }
                        item = back;
                    }
                },
                Err(TrySendError::Disconnected(back)) => {
                    self.fail(&back.req, "the worker has stopped".into(), |_| {});
                    return false;
                }
            }
        }
    }

    fn fail(&self, req: &Request, reason: String, count: impl FnOnce(&mut WorkerStats)) {
        if let Ok(mut s) = self.stats.lock() {
            s.failed += 1;
            count(&mut s);
        }
        let _ = self.fail_tx.send(Response::Failed { id: req.id, requester: req.requester, reason });
    }

    /// Cancels a request that has not started.
    pub fn cancel(&self, id: u64) {
        if let Ok(mut c) = self.cancelled.lock() {
            c.insert(id);
        }
    }

    /// The next response, if any (never blocks).
    pub fn try_recv(&self) -> Option<Response> {
        self.responses.try_recv().ok()
    }

    /// Waits up to `timeout` for a response (tests, tools; systems use `try_recv`).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Response> {
        self.responses.recv_timeout(timeout).ok()
    }

    /// Requests waiting.
    pub fn queue_depth(&self) -> usize {
        self.tx.as_ref().map_or(0, |t| t.len())
    }

    /// A copy of the counters.
    pub fn stats(&self) -> WorkerStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(model: Arc<dyn Predictor>, pool: rayon::ThreadPool, rx: Receiver<Queued>, out: Sender<Response>, cancelled: Arc<Mutex<HashSet<u64>>>, stats: Arc<Mutex<WorkerStats>>, cfg: WorkerConfig) {
    let sampler = cfg.sampler.unwrap_or_else(|| model.default_sampler());
    let fail = |q: &Queued, reason: String, count: &dyn Fn(&mut WorkerStats)| {
        if let Ok(mut s) = stats.lock() {
            s.failed += 1;
            count(&mut s);
        }
        let _ = out.send(Response::Failed { id: q.req.id, requester: q.req.requester, reason });
    };
    let answer = |q: Queued, prediction: Prediction, batch: usize| {
        let latency = q.at.elapsed();
        if let Ok(mut s) = stats.lock() {
            s.answered += 1;
            s.frames += prediction.frames.iter().map(|f| f.len() as u64).sum::<u64>();
            WorkerStats::push_recent(&mut s.latencies, latency.as_secs_f64());
        }
        let _ = out.send(Response::Done { id: q.req.id, requester: q.req.requester, prediction, latency, batch });
    };
    // Blocks for the first request; then takes what else is already waiting.
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < cfg.max_batch.max(1) {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        // The newest request of each requester wins.
        let mut newest: HashMap<u64, u64> = HashMap::new();
        for q in &batch {
            newest.insert(q.req.requester, q.req.id);
        }
        let now = Instant::now();
        let mut live = Vec::new();
        for q in batch {
            let was_cancelled = cancelled.lock().map(|mut c| c.remove(&q.req.id)).unwrap_or(false);
            if was_cancelled {
                fail(&q, "cancelled".into(), &|s| s.cancelled += 1);
            } else if newest.get(&q.req.requester) != Some(&q.req.id) {
                fail(&q, "superseded by a newer request from the same requester".into(), &|s| s.superseded += 1);
            } else if q.req.deadline.is_some_and(|d| d < now) {
                fail(&q, "the deadline passed before the model could start".into(), &|s| s.expired += 1);
            } else {
                live.push(q);
            }
        }
        if live.is_empty() {
            continue;
        }
        let jobs: Vec<&Job> = live.iter().map(|q| &q.req.job).collect();
        let t0 = Instant::now();
        let result = pool.install(|| std::panic::catch_unwind(AssertUnwindSafe(|| run_jobs(model.as_ref(), &jobs, &sampler))));
        let busy = t0.elapsed().as_secs_f64();
        match result {
            Ok(Ok(preds)) => {
                let n = live.len();
                for (q, p) in live.into_iter().zip(preds) {
                    answer(q, p, n);
                }
                if let Ok(mut s) = stats.lock() {
                    s.busy_seconds += busy;
                    if s.batch_sizes.len() >= 256 {
                        s.batch_sizes.pop_front();
                    }
                    s.batch_sizes.push_back(n);
                }
            }
            Ok(Err(_)) => {
                // One bad query must not sink the others: answer them one by one.
                for q in live {
                    let one = pool.install(|| std::panic::catch_unwind(AssertUnwindSafe(|| run_jobs(model.as_ref(), &[&q.req.job], &sampler).map(|mut v| v.remove(0)))));
                    match one {
                        Ok(Ok(p)) => answer(q, p, 1),
                        Ok(Err(e)) => fail(&q, e.to_string(), &|_| {}),
                        Err(_) => fail(&q, "the model panicked; the worker carries on".into(), &|s| s.panics += 1),
                    }
                }
            }
            Err(panic) => {
                let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "unknown panic".into());
                if let Ok(mut s) = stats.lock() {
                    s.panics += 1;
                }
                for q in live {
                    fail(&q, format!("the model panicked ({msg}); the worker carries on"), &|_| {});
                }
            }
        }
    }
}
