//! The push scene runs in the simulator with the scripted agent; every few steps the agent asks the world-model plugin for its next 16 frames, and real and imagined futures are shown side by side (headless GIF and figures by default, `--window` to watch).
//!
//! ```text
//! cargo run -p bevy_foresight --example foresee                   # writes runs/foresee.gif
//! cargo run -p bevy_foresight --features window --example foresee -- --window
//! ```
//! The agent's intended actions for the next H steps come from running its own (deterministic)
//! policy on a clone of the world; the same clone gives the true future, so every imagined
//! future is scored against the physics. The game loop never waits for the model: requests are
//! answered by the plugin's worker while the simulation goes on.

#[path = "common/headless.rs"]
mod headless_app;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bevy::prelude::*;
use bevy_foresight::{ForesightDiagnostics, PredictFutures};
use clap::Parser;
use headless_app::Answers;
use foresight::eval::metrics::{dist, locate};
use foresight::model::frames::psnr;
use foresight::scene::{Role, Scene};
use foresight::world_model::WorldModel;
use foresight_sim::oracle::Oracle;
use foresight_sim::policy::{Policy, PolicyKind};
use foresight_sim::SimWorld;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Scene file.
    #[arg(long, default_value = "scenes/push.ron")]
    scene: PathBuf,
    /// World-model checkpoint for that scene.
    #[arg(long, default_value = "assets/push.safetensors")]
    checkpoint: PathBuf,
    /// Episode seed (held out of training: the shipped models use seeds from 1).
    #[arg(long, default_value_t = 1_000_000)]
    seed: u64,
    /// Simulation steps.
    #[arg(long, default_value_t = 64)]
    steps: usize,
    /// Ask every this many steps.
    #[arg(long, default_value_t = 8)]
    every: usize,
    /// Frames to imagine per question.
    #[arg(long, default_value_t = 16)]
    horizon: usize,
    /// Model threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Futures drawn per question in the window (several add a row of per-pixel spread maps:
    /// where the samples disagree).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Output GIF (real | imagined | difference, then the film strips as a PNG beside it).
    #[arg(long, default_value = "runs/foresee.gif")]
    out: PathBuf,
    /// Do not pace the simulation at the scene's real-time rate (run it as fast as it goes; the
    /// plugin then supersedes questions the model has not started).
    #[arg(long)]
    unpaced: bool,
    /// Open a window (needs the `window` feature and a display).
    #[arg(long)]
    window: bool,
}

/// One question the agent asked, with the true future from the oracle.
struct Asked {
    at: usize,
    truth: Vec<Vec<u8>>,
}

/// The agent's next `horizon` actions (its policy run on a clone of the world) and the true frames
/// that follow them.
fn intend(oracle: &mut Oracle, world: &SimWorld, policy: &Policy, horizon: usize) -> anyhow::Result<(Vec<Vec<f32>>, Vec<Vec<u8>>)> {
    let (mut w, mut p) = (world.clone(), policy.clone());
    let mut actions = Vec::with_capacity(horizon);
    for _ in 0..horizon {
        let a = p.act(&w);
        w.step(&a)?;
        actions.push(a);
    }
    let ep = oracle.replay(world, &actions)?;
    Ok((actions, (1..ep.num_frames()).map(|t| ep.frame(t).to_vec()).collect()))
}

fn headless(args: &Args, scene: Arc<Scene>, model: Arc<WorldModel>) -> anyhow::Result<()> {
    let [h, w] = model.meta.resolution;
    let k = model.meta.context;
    let mut oracle = Oracle::new(scene.clone(), 1)?;
    let mut world = SimWorld::new(scene.clone(), args.seed)?;
    let mut policy = Policy::new(PolicyKind::Scripted, args.seed, scene.action_dim());
    let mut app = headless_app::app(model.clone(), args.threads);
    let agent = app.world_mut().spawn(Name::new("agent")).id();
    let mut frames = vec![oracle.observe(&[&world])?.remove(0)];
    let mut actions: Vec<Vec<f32>> = Vec::new();
    let mut asked: HashMap<u64, Asked> = HashMap::new();
    let mut slowest_update = Duration::ZERO;
    let started = Instant::now();
    let tick = Duration::from_secs_f64((scene.physics.dt * scene.physics.frame_skip as f32) as f64);
    for t in 0..args.steps {
        if !args.unpaced {
            let due = started + tick * t as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        if t % args.every == 0 {
            let (intended, truth) = intend(&mut oracle, &world, &policy, args.horizon)?;
            let from = frames.len().saturating_sub(k);
            let past = actions[from.min(actions.len())..].to_vec();
            let id = t as u64;
            app.world_mut().write_message(PredictFutures {
                request_id: id,
                requester: agent,
                context: frames[from..].to_vec().into(),
                past_actions: (past.len() + 1 == frames.len() - from).then_some(past),
                actions: intended,
                samples: 1,
                seed: args.seed ^ id,
                deadline: None,
                from_frame: t as u64,
            });
            asked.insert(id, Asked { at: t, truth });
        }
        let a = policy.act(&world);
        world.step(&a)?;
        actions.push(a);
        frames.push(oracle.observe(&[&world])?.remove(0));
        let u = Instant::now();
        app.update();
        slowest_update = slowest_update.max(u.elapsed());
    }
    let sim_seconds = started.elapsed().as_secs_f64();
    if let Some(dir) = std::env::var_os("FORESEE_DUMP") {
        for t in 4..10.min(frames.len()) {
            foresight::media::write_png(&std::path::Path::new(&dir).join(format!("real{t}.png")), &frames[t], h, w)?;
        }
    }
    // The episode is over; collect the answers still on their way.
    let wait = Instant::now();
    while app.world().resource::<Answers>().done.len() + app.world().resource::<Answers>().failed.len() < asked.len() && wait.elapsed() < Duration::from_secs(300) {
        app.update();
        std::thread::sleep(Duration::from_millis(5));
    }
    let answers = app.world_mut().remove_resource::<Answers>().unwrap_or_default();
    for f in &answers.failed {
        println!("request {} failed: {}", f.request_id, f.reason);
    }
    let agent_colour = model.meta.bodies.iter().rev().find(|b| b.role == Role::Agent).map(|b| b.colour);
    // Per horizon: agent position error (model, copy-last) and PSNR (model, copy-last).
    let hz = args.horizon;
    let (mut err, mut err_copy, mut n_err) = (vec![0.0f64; hz], vec![0.0f64; hz], vec![0usize; hz]);
    let (mut p, mut p_copy) = (vec![0.0f64; hz], vec![0.0f64; hz]);
    let mut imagined: Vec<Option<Vec<u8>>> = vec![None; frames.len()];
    let mut strips = Vec::new();
    let mut done = answers.done;
    done.sort_by_key(|d| d.request_id);
    for d in &done {
        let Some(q) = asked.get(&d.request_id) else { continue };
        let pred = &d.frames[0];
        let last = &frames[q.at];
        for (i, (pf, tf)) in pred.iter().zip(&q.truth).enumerate() {
            p[i] += psnr(pf, tf);
            p_copy[i] += psnr(last, tf);
            if let Some(c) = agent_colour
                && let (Some(tp), Some(pp), Some(lp)) = (locate(tf, w, c), locate(pf, w, c), locate(last, w, c))
            {
                err[i] += dist(tp, pp) as f64;
                err_copy[i] += dist(tp, lp) as f64;
                n_err[i] += 1;
            }
            if q.at + 1 + i < imagined.len() {
                imagined[q.at + 1 + i] = Some(pf.clone());
            }
        }
        strips.push((q.truth.clone(), pred.clone()));
    }
    let n = done.len().max(1) as f64;
    println!("foresee: {} steps of `{}` (seed {}), {} questions of {} frames, {} answered", args.steps, scene.name, args.seed, asked.len(), hz, done.len());
    println!("  the game ran {} steps in {sim_seconds:.1} s ({:.1} steps/s{}); the slowest app update {:.1} ms (the game never waits for the model)", args.steps, args.steps as f64 / sim_seconds, if args.unpaced { ", unpaced" } else { ", paced at the scene's rate" }, slowest_update.as_secs_f64() * 1e3);
    let diag = app.world().resource::<ForesightDiagnostics>();
    let lat: Vec<f64> = done.iter().map(|d| d.latency.as_secs_f64()).collect();
    println!(
        "  latency p50 {:.0} ms, max {:.0} ms; model {:.0} predicted frames/s; mean batch {:.2}",
        diag.latency_p50.unwrap_or(f64::NAN) * 1e3,
        lat.iter().cloned().fold(0.0, f64::max) * 1e3,
        diag.frames_per_second,
        diag.mean_batch
    );
    println!("  horizon | PSNR model / copy-last (dB) | agent error model / copy-last (px)");
    for i in [0, 3, 7, 15].into_iter().filter(|&i| i < hz) {
        let e = |v: &[f64]| if n_err[i] > 0 { v[i] / n_err[i] as f64 } else { f64::NAN };
        println!("  {:>7} | {:>6.2} / {:>6.2}               | {:>6.2} / {:>6.2}", i + 1, p[i] / n, p_copy[i] / n, e(&err), e(&err_copy));
    }
    // GIF: real | imagined (from the latest question) | difference, at every step.
    let blank = vec![0u8; h * w * 3];
    let gif: Vec<Vec<u8>> = frames
        .iter()
        .zip(&imagined)
        .map(|(real, im)| {
            let im = im.as_deref().unwrap_or(&blank);
            foresight::media::side_by_side(&[real, im, &foresight::media::difference(real, im)], h, w)
        })
        .collect();
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let refs: Vec<&[u8]> = gif.iter().map(|f| f.as_slice()).collect();
    foresight::media::write_gif(&args.out, &refs, h, 3 * w + 2, 4, 120)?;
    // PNG: for each question, the true future over the imagined one.
    let mut rows: Vec<Vec<&[u8]>> = Vec::new();
    for (truth, pred) in &strips {
        rows.push(truth.iter().map(|f| f.as_slice()).collect());
        rows.push(pred.iter().map(|f| f.as_slice()).collect());
    }
    let png = args.out.with_extension("png");
    if !rows.is_empty() {
        foresight::media::write_png_grid(&png, &rows, h, w, 2)?;
    }
    println!("wrote {} (real | imagined | difference) and {} (rows: true future, imagined future, per question)", args.out.display(), png.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scene = Arc::new(Scene::load(&args.scene)?);
    let model = Arc::new(WorldModel::load(&args.checkpoint)?);
    anyhow::ensure!(
        model.meta.scene == scene.name,
        "{} is a model of `{}`, not of `{}` ({})",
        args.checkpoint.display(),
        model.meta.scene,
        scene.name,
        args.scene.display()
    );
    if args.window {
        #[cfg(feature = "window")]
        return windowed::run(args, scene, model);
        #[cfg(not(feature = "window"))]
        println!("--window needs `--features window`; running headless");
    }
    headless(&args, scene, model)
}

#[cfg(feature = "window")]
#[path = "common/scene_view.rs"]
mod scene_view;

#[cfg(feature = "window")]
mod windowed {
    //! The live scene on the left (512×512); the imagined next frames as a film strip on the
    //! right; the imagined frame for *now* as a ghost over the live view (if the model is right,
    //! the ghost sits on the real bodies). Context frames come from a 64×64 capture camera with a
    //! `ForesightCamera`, exactly as a game would feed the plugin.
    use super::scene_view::SceneView;
    use super::*;
    use bevy_foresight::{ContextSource, ForesightCamera, FuturesView, FuturesViewPlugin, Ghost, PredictedFutures};
    use bevy_foresight::{ForesightSystems, FuturesPredicted, PredictionFailed, WorldModelPlugin};

    const VIEW: f32 = 512.0;
    const TILE: f32 = 40.0;

    #[derive(Resource)]
    struct Sim {
        args: Args,
        scene: Arc<Scene>,
        world: SimWorld,
        policy: Policy,
        seed: u64,
        view: SceneView,
        agent: Entity,
        futures_view: Entity,
        t: usize,
        actions: Vec<Vec<f32>>,
        last_step: Instant,
        next_id: u64,
    }

    #[derive(Resource)]
    struct Setup {
        args: Args,
        scene: Arc<Scene>,
        world: SimWorld,
        policy: Policy,
        k: usize,
        res: [usize; 2],
    }

    pub fn run(args: Args, scene: Arc<Scene>, model: Arc<WorldModel>) -> anyhow::Result<()> {
        let world = SimWorld::new(scene.clone(), args.seed)?;
        let policy = Policy::new(PolicyKind::Scripted, args.seed, scene.action_dim());
        let width = VIEW + 24.0 + args.horizon.min(16) as f32 * (TILE + (TILE / 16.0).max(1.0));
        App::new()
            .add_plugins(DefaultPlugins.set(WindowPlugin {
                primary_window: Some(Window { title: format!("foresee: {} (live | imagined)", scene.name), resolution: (width as u32, VIEW as u32).into(), ..default() }),
                ..default()
            }))
            .add_plugins(WorldModelPlugin::from_model(model.clone()).with_threads(args.threads))
            .add_plugins(FuturesViewPlugin)
            .insert_resource(Setup { args, scene, world, policy, k: model.meta.context, res: model.meta.resolution })
            .add_systems(Startup, setup)
            .add_systems(Update, (step, report, follow_ghost).chain().after(ForesightSystems::Receive))
            .run();
        Ok(())
    }

    fn setup(world: &mut World) {
        let Some(s) = world.remove_resource::<Setup>() else { return };
        let view = SceneView::spawn(world, &s.scene, VIEW as u32, s.res, s.k);
        let agent = world.spawn(Name::new("agent")).id();
        let ghost = Ghost { step: 0, sample: 0, rect: Rect::new(0.0, 0.0, VIEW, VIEW), alpha: 0.45 };
        let strip = FuturesView::strip(agent, view.live, Vec2::new(VIEW + 16.0, 8.0), TILE).with_ghost(ghost).with_samples(s.args.samples);
        let futures_view = world.spawn(if s.args.samples > 1 { strip.with_spread() } else { strip }).id();
        view.show(world, &s.world);
        let sim = Sim {
            seed: s.args.seed,
            args: s.args,
            scene: s.scene,
            world: s.world,
            policy: s.policy,
            view,
            agent,
            futures_view,
            t: 0,
            actions: Vec::new(),
            last_step: Instant::now(),
            next_id: 1,
        };
        world.insert_resource(sim);
    }

    /// One simulation step per tick of the scene's clock, once the previous step's frame has been
    /// captured; every `--every` steps the agent asks for its next `--horizon` frames.
    fn step(world: &mut World) {
        if world.resource::<ButtonInput<KeyCode>>().just_pressed(KeyCode::Escape) {
            world.write_message(AppExit::Success);
        }
        let Some(mut sim) = world.remove_resource::<Sim>() else { return };
        let tick = Duration::from_secs_f64((sim.scene.physics.dt * sim.scene.physics.frame_skip as f32) as f64);
        if sim.view.pending(world) || sim.last_step.elapsed() < tick || !sim.view.warm_up(world) {
            world.insert_resource(sim);
            return;
        }
        sim.last_step = Instant::now();
        if sim.t >= sim.args.steps {
            // A new episode.
            sim.seed += 1;
            if let Ok(w) = SimWorld::new(sim.scene.clone(), sim.seed) {
                sim.world = w;
            }
            sim.policy = Policy::new(PolicyKind::Scripted, sim.seed, sim.scene.action_dim());
            sim.t = 0;
            sim.actions.clear();
            if let Some(mut eye) = world.get_mut::<ForesightCamera>(sim.view.capture) {
                eye.frames.clear();
            }
        } else {
            if sim.t % sim.args.every == 0 {
                let captured = world.get::<ForesightCamera>(sim.view.capture).map_or(0, |c| c.frames.len());
                let (mut w2, mut p2) = (sim.world.clone(), sim.policy.clone());
                let intended: Vec<Vec<f32>> = (0..sim.args.horizon)
                    .map(|_| {
                        let a = p2.act(&w2);
                        let _ = w2.step(&a);
                        a
                    })
                    .collect();
                let n = captured.min(sim.t + 1);
                let past = sim.actions[sim.actions.len() + 1 - n..].to_vec();
                let id = sim.next_id;
                sim.next_id += 1;
                world.write_message(PredictFutures {
                    request_id: id,
                    requester: sim.agent,
                    context: ContextSource::Camera(sim.view.capture),
                    past_actions: Some(past),
                    actions: intended,
                    samples: sim.args.samples.max(1),
                    seed: sim.seed ^ id,
                    deadline: Some(Duration::from_secs(2)),
                    from_frame: sim.t as u64,
                });
            }
            let a = sim.policy.act(&sim.world);
            if let Err(e) = sim.world.step(&a) {
                warn!("step failed: {e}");
            }
            sim.actions.push(a);
            sim.t += 1;
        }
        sim.view.show(world, &sim.world);
        world.insert_resource(sim);
    }

    fn report(mut done: MessageReader<FuturesPredicted>, mut failed: MessageReader<PredictionFailed>) {
        for d in done.read() {
            println!("futures for step {}: {} frames in {:.0} ms", d.from_frame, d.frames[0].len(), d.latency.as_secs_f64() * 1e3);
        }
        for f in failed.read() {
            println!("request {} failed: {}", f.request_id, f.reason);
        }
    }

    /// The ghost shows the imagined frame for the current step.
    fn follow_ghost(sim: Option<Res<Sim>>, futures: Query<&PredictedFutures>, mut views: Query<&mut FuturesView>) {
        let Some(sim) = sim else { return };
        let Ok(f) = futures.get(sim.agent) else { return };
        let Ok(mut view) = views.get_mut(sim.futures_view) else { return };
        let step = (sim.t as u64).saturating_sub(f.from_frame + 1) as usize;
        if let Some(g) = view.ghost.as_mut()
            && g.step != step
        {
            g.step = step;
        }
    }
}
