//! Play a scene inside the world model: your keys are the actions, every frame comes from the model alone (no physics), in real time; Enter re-anchors the dream on the true simulator's frames and prints how far it had drifted (headless: a random driver, a GIF and drift figures).
//!
//! ```text
//! cargo run -p bevy_foresight --features window --example dream -- --window
//! cargo run -p bevy_foresight --example dream -- --steps 96 --anchor-every 32   # headless
//! ```
//! Window: the dream on the right, the true simulator (driven by the same keys) on the left for
//! comparison. Keys: arrows/WASD (push, bounce), Q/Z E/C R/V (arm joints), Enter re-anchors,
//! Escape quits.

#[cfg(feature = "window")]
#[path = "common/scene_view.rs"]
mod scene_view;

#[path = "common/headless.rs"]
mod headless_app;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bevy::prelude::*;
use bevy_foresight::PredictFutures;
use clap::Parser;
use headless_app::Answers;
use foresight::eval::metrics::{dist, locate};
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
    /// Episode seed (held out of training).
    #[arg(long, default_value_t = 2_000_000)]
    seed: u64,
    /// Headless: dream steps.
    #[arg(long, default_value_t = 96)]
    steps: usize,
    /// Headless: re-anchor on the true frames every this many steps.
    #[arg(long, default_value_t = 32)]
    anchor_every: usize,
    /// Model threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Headless output GIF (dream | truth | difference).
    #[arg(long, default_value = "runs/dream.gif")]
    out: PathBuf,
    /// Play in a window (needs `--features window` and a display).
    #[arg(long)]
    window: bool,
}

/// The dream's own past: its last K frames and the actions between them.
struct Dream {
    frames: VecDeque<Vec<u8>>,
    actions: VecDeque<Vec<f32>>,
    k: usize,
}

impl Dream {
    fn anchored(frames: &[Vec<u8>], actions: &[Vec<f32>], k: usize) -> Self {
        let f: VecDeque<Vec<u8>> = frames.iter().skip(frames.len().saturating_sub(k)).cloned().collect();
        let a: VecDeque<Vec<f32>> = actions.iter().skip(actions.len().saturating_sub(f.len().saturating_sub(1))).cloned().collect();
        Dream { frames: f, actions: a, k }
    }

    fn request(&self, id: u64, requester: Entity, action: Vec<f32>, seed: u64) -> PredictFutures {
        PredictFutures {
            request_id: id,
            requester,
            context: self.frames.iter().cloned().collect::<Vec<_>>().into(),
            past_actions: Some(self.actions.iter().cloned().collect()),
            actions: vec![action],
            samples: 1,
            seed,
            deadline: None,
            from_frame: id,
        }
    }

    fn advance(&mut self, frame: Vec<u8>, action: Vec<f32>) {
        self.frames.push_back(frame);
        self.actions.push_back(action);
        while self.frames.len() > self.k {
            self.frames.pop_front();
        }
        while self.actions.len() + 1 > self.frames.len() {
            self.actions.pop_front();
        }
    }
}

fn agent_drift(model: &WorldModel, dream: &[u8], truth: &[u8]) -> Option<f32> {
    let c = model.meta.bodies.iter().rev().find(|b| b.role == Role::Agent)?.colour;
    let w = model.meta.resolution[1];
    Some(dist(locate(truth, w, c)?, locate(dream, w, c)?))
}

fn headless(args: &Args, scene: Arc<Scene>, model: Arc<WorldModel>) -> anyhow::Result<()> {
    let [h, w] = model.meta.resolution;
    let k = model.meta.context;
    let mut oracle = Oracle::new(scene.clone(), 1)?;
    let mut world = SimWorld::new(scene.clone(), args.seed)?;
    // A random driver (smooth noise), as a person mashing keys would be.
    let mut driver = Policy::new(PolicyKind::Random, args.seed, scene.action_dim());
    let mut app = headless_app::app(model.clone(), args.threads);
    let me = app.world_mut().spawn(Name::new("dreamer")).id();
    // The true past to anchor on: K frames of the driver's play.
    let mut truth = vec![oracle.observe(&[&world])?.remove(0)];
    let mut true_actions = Vec::new();
    for _ in 1..k {
        let a = driver.act(&world);
        world.step(&a)?;
        true_actions.push(a);
        truth.push(oracle.observe(&[&world])?.remove(0));
    }
    let mut dream = Dream::anchored(&truth, &true_actions, k);
    let mut shown: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut drift_by_age: Vec<Vec<f32>> = vec![Vec::new(); args.anchor_every.max(1)];
    let mut age = 0;
    let started = Instant::now();
    for step in 0..args.steps {
        if step > 0 && step % args.anchor_every.max(1) == 0 {
            dream = Dream::anchored(&truth, &true_actions, k);
            age = 0;
        }
        let a = driver.act(&world);
        app.world_mut().write_message(dream.request(step as u64, me, a.clone(), args.seed ^ step as u64));
        // The truth goes on with the same action (for comparison only).
        world.step(&a)?;
        true_actions.push(a.clone());
        truth.push(oracle.observe(&[&world])?.remove(0));
        let frame = loop {
            app.update();
            let mut answers = app.world_mut().resource_mut::<Answers>();
            if let Some(f) = answers.failed.pop() {
                anyhow::bail!("the model failed: {}", f.reason);
            }
            if let Some(d) = answers.done.pop() {
                break d.frames[0][0].clone();
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let t = truth.last().cloned().unwrap_or_default();
        if let Some(d) = agent_drift(&model, &frame, &t) {
            drift_by_age[age].push(d);
        }
        age += 1;
        dream.advance(frame.clone(), a);
        shown.push((frame, t));
    }
    let secs = started.elapsed().as_secs_f64();
    println!("dream: {} steps of `{}` from the model alone in {secs:.1} s ({:.1} dream frames/s incl. the simulator's bookkeeping), re-anchored every {}", args.steps, scene.name, args.steps as f64 / secs, args.anchor_every);
    println!("  agent drift (px) after n dreamed steps, mean over anchors:");
    for n in [1usize, 4, 8, 16, 32].into_iter().filter(|&n| n <= drift_by_age.len()) {
        let v = &drift_by_age[n - 1];
        if !v.is_empty() {
            println!("  {n:>3}: {:.2} px ({} anchors)", v.iter().sum::<f32>() / v.len() as f32, v.len());
        }
    }
    let frames: Vec<Vec<u8>> = shown.iter().map(|(d, t)| foresight::media::side_by_side(&[d, t, &foresight::media::difference(d, t)], h, w)).collect();
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    foresight::media::write_gif(&args.out, &refs, h, 3 * w + 2, 4, 66)?;
    println!("wrote {} (dream | truth | difference)", args.out.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scene = Arc::new(Scene::load(&args.scene)?);
    let model = Arc::new(WorldModel::load(&args.checkpoint)?);
    anyhow::ensure!(model.meta.scene == scene.name, "{} is a model of `{}`, not of `{}`", args.checkpoint.display(), model.meta.scene, scene.name);
    if args.window {
        #[cfg(feature = "window")]
        return windowed::run(args, scene, model);
        #[cfg(not(feature = "window"))]
        println!("--window needs `--features window`; dreaming headless");
    }
    headless(&args, scene, model)
}

#[cfg(feature = "window")]
mod windowed {
    use super::scene_view::SceneView;
    use super::*;
    use bevy_foresight::{ForesightCamera, FuturesView, FuturesViewPlugin};
    use bevy_foresight::{ForesightSystems, FuturesPredicted, PredictionFailed, WorldModelPlugin};
    use foresight_sim::keys::{action_from_keys, held_keys};

    const VIEW: f32 = 512.0;

    #[derive(Resource)]
    struct Play {
        scene: Arc<Scene>,
        model: Arc<WorldModel>,
        world: SimWorld,
        view: SceneView,
        dreamer: Entity,
        dream: Option<Dream>,
        true_actions: Vec<Vec<f32>>,
        waiting: Option<(u64, Vec<f32>)>,
        next_id: u64,
        last_step: Instant,
        since_anchor: usize,
    }

    #[derive(Resource)]
    struct Setup(Arc<Scene>, Arc<WorldModel>, SimWorld);

    pub fn run(args: Args, scene: Arc<Scene>, model: Arc<WorldModel>) -> anyhow::Result<()> {
        let world = SimWorld::new(scene.clone(), args.seed)?;
        App::new()
            .add_plugins(DefaultPlugins.set(WindowPlugin {
                primary_window: Some(Window { title: format!("dream: {} (truth | dream; Enter re-anchors)", scene.name), resolution: ((2.0 * VIEW + 16.0) as u32, VIEW as u32).into(), ..default() }),
                ..default()
            }))
            .add_plugins(WorldModelPlugin::from_model(model.clone()).with_threads(args.threads))
            .add_plugins(FuturesViewPlugin)
            .insert_resource(Setup(scene, model, world))
            .add_systems(Startup, setup)
            .add_systems(Update, (receive, play).chain().after(ForesightSystems::Receive))
            .run();
        Ok(())
    }

    fn setup(world: &mut World) {
        let Some(Setup(scene, model, sim)) = world.remove_resource::<Setup>() else { return };
        let view = SceneView::spawn(world, &scene, VIEW as u32, model.meta.resolution, model.meta.context);
        let dreamer = world.spawn(Name::new("dreamer")).id();
        let mut fv = FuturesView::strip(dreamer, view.live, Vec2::new(VIEW + 16.0, 0.0), VIEW);
        fv.max_frames = 1;
        world.spawn(fv);
        view.show(world, &sim);
        world.insert_resource(Play { scene, model, world: sim, view, dreamer, dream: None, true_actions: Vec::new(), waiting: None, next_id: 0, last_step: Instant::now(), since_anchor: 0 });
    }

    fn receive(mut play: Option<ResMut<Play>>, mut done: MessageReader<FuturesPredicted>, mut failed: MessageReader<PredictionFailed>, eyes: Query<&ForesightCamera>) {
        let Some(play) = play.as_deref_mut() else { return };
        for f in failed.read() {
            warn!("dream step failed: {}", f.reason);
            play.waiting = None;
        }
        for d in done.read() {
            let Some((id, action)) = play.waiting.take() else { continue };
            if d.request_id != id {
                continue;
            }
            let frame = d.frames[0][0].clone();
            play.since_anchor += 1;
            if play.since_anchor % 15 == 0
                && let Ok(eye) = eyes.get(play.view.capture)
                && let Some(truth) = eye.latest()
                && let Some(drift) = agent_drift(&play.model, &frame, truth)
            {
                println!("{} dreamed steps since the anchor: agent drift {drift:.1} px ({:.0} ms a frame)", play.since_anchor, d.latency.as_secs_f64() * 1e3);
            }
            if let Some(dream) = play.dream.as_mut() {
                dream.advance(frame, action);
            }
        }
    }

    fn play(world: &mut World) {
        let keys = world.resource::<ButtonInput<KeyCode>>();
        let (held, anchor, quit) = (held_keys(keys), keys.just_pressed(KeyCode::Enter), keys.just_pressed(KeyCode::Escape));
        if quit {
            world.write_message(AppExit::Success);
        }
        let Some(mut p) = world.remove_resource::<Play>() else { return };
        let tick = Duration::from_secs_f64((p.scene.physics.dt * p.scene.physics.frame_skip as f32) as f64);
        let ready = p.view.warm_up(world) && !p.view.pending(world) && p.waiting.is_none() && p.last_step.elapsed() >= tick;
        if ready {
            if (anchor || p.dream.is_none())
                && let Some(eye) = world.get::<ForesightCamera>(p.view.capture)
            {
                let frames: Vec<Vec<u8>> = eye.frames.iter().cloned().collect();
                if p.dream.is_some() {
                    println!("re-anchored on the simulator after {} dreamed steps", p.since_anchor);
                }
                p.dream = Some(Dream::anchored(&frames, &p.true_actions, p.model.meta.context));
                p.since_anchor = 0;
            }
            p.last_step = Instant::now();
            let action = action_from_keys(&p.scene, held);
            if let Some(dream) = &p.dream {
                let id = p.next_id;
                p.next_id += 1;
                world.write_message(dream.request(id, p.dreamer, action.clone(), id));
                p.waiting = Some((id, action.clone()));
            }
            // The truth, for comparison and re-anchoring, driven by the same keys.
            if let Err(e) = p.world.step(&action) {
                warn!("simulator step failed: {e}");
            }
            p.true_actions.push(action);
            if p.true_actions.len() > 64 {
                p.true_actions.drain(..32);
            }
            p.view.show(world, &p.world);
        }
        world.insert_resource(p);
    }
}
