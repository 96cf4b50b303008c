//! A `PlannerAgent` plans through the world-model plugin (each CEM round one batch of `PredictFutures`) and acts in the push scene's simulator; writes real | imagined best future (the ghost) as a GIF and prints the distance to the goal and the seconds per action.
//!
//! ```text
//! cargo run -p bevy_foresight --example plan -- --steps 24
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_foresight::{PlannerAgent, PlannerAgentPlugin, PredictedFutures, WorldModelPlugin};
use clap::Parser;
use foresight::camera::PixelCamera;
use foresight::plan::cost::GoalGeometry;
use foresight::plan::PlannerConfig;
use foresight::scene::Scene;
use foresight::world_model::WorldModel;
use foresight_sim::oracle::Oracle;
use foresight_sim::SimWorld;

#[derive(Parser, Debug)]
struct Args {
    /// Scene file (with a goal).
    #[arg(long, default_value = "scenes/push.ron")]
    scene: PathBuf,
    /// World-model checkpoint of that scene.
    #[arg(long, default_value = "assets/push.safetensors")]
    checkpoint: PathBuf,
    /// Start seed (held out of training).
    #[arg(long, default_value_t = 3_000_000)]
    seed: u64,
    /// Actions to take.
    #[arg(long, default_value_t = 24)]
    steps: usize,
    /// Planning horizon.
    #[arg(long, default_value_t = 8)]
    horizon: usize,
    /// Candidates per CEM round.
    #[arg(long, default_value_t = 16)]
    candidates: usize,
    /// CEM rounds per action.
    #[arg(long, default_value_t = 2)]
    iterations: usize,
    /// Model threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Output GIF (real | imagined next frame of the best plan).
    #[arg(long, default_value = "runs/plan.gif")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scene = Arc::new(Scene::load(&args.scene)?);
    let model = Arc::new(WorldModel::load(&args.checkpoint)?);
    anyhow::ensure!(model.meta.scene == scene.name, "{} is a model of `{}`, not `{}`", args.checkpoint.display(), model.meta.scene, scene.name);
    let [h, w] = model.meta.resolution;
    let mut oracle = Oracle::new(scene.clone(), 1)?;
    let mut world = SimWorld::new(scene.clone(), args.seed)?;
    let cfg = PlannerConfig { horizon: args.horizon, candidates: args.candidates, iterations: args.iterations, elites: (args.candidates / 8).max(2), seed: args.seed, ..PlannerConfig::default() };
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(WorldModelPlugin::from_model(model.clone()).with_threads(args.threads).with_queue_capacity(args.candidates * 2).with_max_batch(args.candidates))
        .add_plugins(PlannerAgentPlugin);
    let agent = app.world_mut().spawn(PlannerAgent::new(&scene, cfg, model.meta.context).map_err(|e| anyhow::anyhow!(e))?).id();
    let first = oracle.observe(&[&world])?.remove(0);
    app.world_mut().get_mut::<PlannerAgent>(agent).unwrap().observe(first.clone(), None);
    let geometry = GoalGeometry::new(&scene).ok_or_else(|| anyhow::anyhow!("no goal"))?;
    let camera = PixelCamera::new(&scene.camera);
    let distance = |w: &SimWorld| geometry.distance_px(camera.project(w.body_states()[geometry.body].position));
    let d0 = distance(&world);
    let mut gif = Vec::new();
    let mut frame = first;
    let mut seconds = Vec::new();
    let mut updates = 0u64;
    let started = Instant::now();
    for step in 0..args.steps {
        // The game loop goes on; the agent acts when its plan is ready.
        let action = loop {
            app.update();
            updates += 1;
            if let Some(a) = app.world_mut().get_mut::<PlannerAgent>(agent).unwrap().take_action() {
                break a;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let ag = app.world().get::<PlannerAgent>(agent).unwrap();
        seconds.push(ag.last_plan_seconds);
        // The imagined next frame of the best candidate (its slot's PredictedFutures).
        let imagined = ag.best_slot.and_then(|e| app.world().get::<PredictedFutures>(e)).and_then(|f| f.frames.first().and_then(|s| s.first()).cloned()).unwrap_or_else(|| vec![0; h * w * 3]);
        world.step(&action)?;
        let next = oracle.observe(&[&world])?.remove(0);
        gif.push(foresight::media::side_by_side(&[&frame, &imagined, &next], h, w));
        frame = next;
        app.world_mut().get_mut::<PlannerAgent>(agent).unwrap().observe(frame.clone(), Some(action));
        let d = distance(&world);
        if step % 4 == 3 {
            println!("step {:>3}: block {d:.1} px from the goal (start {d0:.1}), {:.2} s planning this action", step + 1, seconds.last().unwrap_or(&0.0));
        }
        if geometry.inside(camera.project(world.body_states()[geometry.body].position).unwrap_or([-1.0, -1.0])) {
            println!("the block reached the goal after {} actions", step + 1);
            break;
        }
    }
    let mean = seconds.iter().sum::<f64>() / seconds.len().max(1) as f64;
    println!(
        "plan example: {} actions in {:.0} s ({} app updates, the app never blocked on the model); {mean:.2} s planning per action ({} candidates x {} rounds, horizon {}); block {:.1} -> {:.1} px from the goal",
        seconds.len(),
        started.elapsed().as_secs_f64(),
        updates,
        args.candidates,
        args.iterations,
        args.horizon,
        d0,
        distance(&world)
    );
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let refs: Vec<&[u8]> = gif.iter().map(|f| f.as_slice()).collect();
    foresight::media::write_gif(&args.out, &refs, h, 3 * w + 2, 4, 150)?;
    println!("wrote {} (before | imagined next frame of the chosen plan | after)", args.out.display());
    Ok(())
}
