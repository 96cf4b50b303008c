//! Load benchmarks of the plugin (figures, not pass/fail): `cargo bench -p bevy_foresight --bench load`.
//!
//! 1. Within capacity: 16 agents each ask for 8 frames 5 times a second.
//! 2. Overload: 64 agents × 16 frames × 10 Hz (the queue's policy must account for every request).
//! 3. A deliberately slow model (the shipped model plus 250 ms of sleep per call, 8 sampler steps,
//!    one thread): the game's frame rate must hold while every answer takes many frames.
//!
//! The game is a `MinimalPlugins` app updated at 60 Hz; each scenario runs `FORESIGHT_BENCH_SECONDS`
//! (default 30) seconds with the checkpoint `FORESIGHT_BENCH_CHECKPOINT` (default
//! `assets/push.safetensors`). Every request must end in exactly one message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_foresight::{ForesightDiagnostics, ForesightSystems, FullQueue, FuturesPredicted, PredictFutures, PredictionFailed, WorldModelPlugin};
use foresight::model::diffusion::SamplerConfig;
use foresight::world_model::WorldModel;

#[derive(Resource, Default)]
struct Seen {
    done: Vec<(u64, Duration, usize)>,
    failed: Vec<(u64, String)>,
}

fn collect(mut seen: ResMut<Seen>, mut done: MessageReader<FuturesPredicted>, mut failed: MessageReader<PredictionFailed>) {
    for d in done.read() {
        seen.done.push((d.request_id, d.latency, d.frames.len()));
    }
    for f in failed.read() {
        seen.failed.push((f.request_id, f.reason.clone()));
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The model, made slow on purpose.
struct Slow(std::sync::Arc<WorldModel>);

impl bevy_foresight::Predictor for Slow {
    fn predict_batch(&self, q: &[foresight::world_model::Query], s: &SamplerConfig) -> Result<Vec<foresight::world_model::Prediction>, foresight::world_model::WorldModelError> {
        std::thread::sleep(Duration::from_millis(250));
        self.0.predict_batch(q, s)
    }
    fn generate(&self, g: &[foresight::generate::Generate], s: &SamplerConfig) -> Result<Vec<foresight::world_model::Prediction>, foresight::world_model::WorldModelError> {
        std::thread::sleep(Duration::from_millis(250));
        bevy_foresight::Predictor::generate(self.0.as_ref(), g, s)
    }
}

struct Scenario {
    name: &'static str,
    agents: usize,
    frames: usize,
    hz: f64,
    threads: usize,
    sampler: Option<SamplerConfig>,
    queue: usize,
    slow: bool,
}

fn run(model: &std::sync::Arc<WorldModel>, s: &Scenario, seconds: f64) {
    let mut plugin = WorldModelPlugin::from_model(model.clone()).with_threads(s.threads).with_queue_capacity(s.queue).with_full_queue(FullQueue::DropOldest);
    if let Some(sampler) = s.sampler {
        plugin = plugin.with_sampler(sampler);
    }
    if s.slow {
        plugin = plugin.with_predictor(|m| std::sync::Arc::new(Slow(m)));
    }
    let mut app = App::new();
    app.add_plugins(MinimalPlugins).add_plugins(plugin).init_resource::<Seen>().add_systems(Update, collect.after(ForesightSystems::Receive));
    let agents: Vec<Entity> = (0..s.agents).map(|_| app.world_mut().spawn_empty().id()).collect();
    let [h, w] = model.meta.resolution;
    let frame = std::fs::read("assets/push_start.png").ok().and_then(|_| foresight::media::read_image("assets/push_start.png".as_ref()).ok()).map(|(f, _, _)| f).filter(|f| f.len() == h * w * 3).unwrap_or_else(|| vec![60u8; h * w * 3]);
    let dim = model.meta.action_spec.dim;
    let period = Duration::from_secs_f64(1.0 / s.hz);
    let frame_time = Duration::from_secs_f64(1.0 / 60.0);
    let start = Instant::now();
    let mut next_ask: Vec<Instant> = (0..s.agents).map(|i| start + period.mul_f64(i as f64 / s.agents as f64)).collect();
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let mut id = 0u64;
    let mut update_ms = Vec::new();
    let mut frames = 0u64;
    let mut tick = start;
    while start.elapsed().as_secs_f64() < seconds {
        let now = Instant::now();
        for (a, due) in next_ask.iter_mut().enumerate() {
            if now >= *due {
                *due += period;
                id += 1;
                sent.insert(id, now);
                app.world_mut().write_message(PredictFutures {
                    request_id: id,
                    requester: agents[a],
                    context: vec![frame.clone()].into(),
                    past_actions: None,
                    actions: vec![vec![0.5; dim]; s.frames],
                    samples: 1,
                    seed: id,
                    deadline: Some(Duration::from_secs(5)),
                    from_frame: frames,
                });
            }
        }
        let u = Instant::now();
        app.update();
        update_ms.push(u.elapsed().as_secs_f64() * 1e3);
        frames += 1;
        tick += frame_time;
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
    }
    let game_seconds = start.elapsed().as_secs_f64();
    // Drain: every request must end in one message.
    let drain = Instant::now();
    loop {
        app.update();
        let seen = app.world().resource::<Seen>();
        if seen.done.len() + seen.failed.len() >= sent.len() || drain.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let seen = app.world().resource::<Seen>();
    let diag = app.world().resource::<ForesightDiagnostics>();
    let mut answered_ids: Vec<u64> = seen.done.iter().map(|d| d.0).chain(seen.failed.iter().map(|f| f.0)).collect();
    answered_ids.sort();
    let unique = { let mut u = answered_ids.clone(); u.dedup(); u.len() };
    let mut lat: Vec<f64> = seen.done.iter().map(|d| d.1.as_secs_f64() * 1e3).collect();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for (_, r) in &seen.failed {
        let key = r.split(':').next().unwrap_or(r).chars().take(48).collect::<String>();
        *reasons.entry(key).or_default() += 1;
    }
    let predicted: usize = seen.done.iter().map(|d| d.2 * s.frames).sum();
    println!("== {}: {} agents x {} frames x {} Hz, {} model threads, {:.0} s", s.name, s.agents, s.frames, s.hz, s.threads, game_seconds);
    println!("  requests {}: answered {}, failed with a message {}, without any message {}, duplicates {}", sent.len(), seen.done.len(), seen.failed.len(), sent.len() - unique.min(sent.len()), answered_ids.len() - unique);
    for (r, n) in &reasons {
        println!("    {n} x {r}");
    }
    println!("  latency p50 {:.0} ms, p99 {:.0} ms; mean batch {:.2}; {:.0} predicted frames/s", pct(&mut lat.clone(), 0.5), pct(&mut lat, 0.99), diag.mean_batch, predicted as f64 / game_seconds);
    let fps = frames as f64 / game_seconds;
    println!("  game: {fps:.1} frames/s (target 60); update p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", pct(&mut update_ms.clone(), 0.5), pct(&mut update_ms.clone(), 0.99), update_ms.iter().cloned().fold(0.0, f64::max));
}

fn main() {
    let seconds: f64 = std::env::var("FORESIGHT_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30.0);
    let path = std::env::var("FORESIGHT_BENCH_CHECKPOINT").unwrap_or_else(|_| "assets/push.safetensors".into());
    // Benches run in the crate's folder; the checkpoint path is relative to the workspace.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let _ = std::env::set_current_dir(&root);
    let model = match WorldModel::load(path.as_ref()) {
        Ok(m) => std::sync::Arc::new(m),
        Err(e) => {
            eprintln!("cannot load {path}: {e}");
            std::process::exit(1);
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let slow = SamplerConfig { steps: 8, ..model.meta.sampler };
    for s in [
        Scenario { name: "within capacity", agents: 16, frames: 8, hz: 5.0, threads, sampler: None, queue: 64, slow: false },
        Scenario { name: "overload", agents: 64, frames: 16, hz: 10.0, threads, sampler: None, queue: 64, slow: false },
        Scenario { name: "slow model", agents: 4, frames: 16, hz: 2.0, threads: 1, sampler: Some(slow), queue: 16, slow: true },
    ] {
        run(&model, &s, seconds);
    }
}
