//! Opens a scene in a window and lets you drive the agent with the keyboard; without a display (or without the `window` feature) it records a scripted episode headless to a GIF.
//!
//! ```text
//! cargo run -p foresight_sim --features window --example sim -- --scene scenes/push.ron
//! cargo run -p foresight_sim --example sim -- --scene scenes/arm.ron --out arm.gif
//! ```
//! Keys: arrows (or WASD) push the agent in screen directions (push, bounce); Q/Z, E/C, R/V drive
//! the arm's joints; Space steps with zero action; Backspace starts a new episode; Escape quits.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use foresight::scene::Scene;
use foresight_sim::episode::{record_batch, Driver};
use foresight_sim::policy::{Policy, PolicyKind};
use foresight_sim::{Renderer, SimWorld};

#[derive(Parser, Debug)]
struct Args {
    /// Scene file.
    #[arg(long, default_value = "scenes/push.ron")]
    scene: PathBuf,
    /// World seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Never open a window.
    #[arg(long)]
    headless: bool,
    /// Headless: transitions to record.
    #[arg(long, default_value_t = 48)]
    steps: usize,
    /// Headless: output GIF.
    #[arg(long, default_value = "sim.gif")]
    out: PathBuf,
}

fn headless(args: &Args, scene: Arc<Scene>) -> anyhow::Result<()> {
    let mut renderer = Renderer::new(scene.clone(), 1)?;
    let world = SimWorld::new(scene.clone(), args.seed)?;
    let driver = Driver::Policy(Policy::new(PolicyKind::Scripted, args.seed, scene.action_dim()));
    let ep = record_batch(&mut renderer, &scene, vec![world], &[args.seed], vec![driver], "scripted", args.steps)?.remove(0);
    let (h, w) = scene.resolution();
    let frames: Vec<&[u8]> = (0..ep.num_frames()).map(|t| ep.frame(t)).collect();
    foresight::media::write_gif(&args.out, &frames, h, w, 4, 66)?;
    println!("headless: {} frames of `{}` driven by the scripted policy written to {}", frames.len(), scene.name, args.out.display());
    println!("{}", ep.caption);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scene = Arc::new(Scene::load(&args.scene)?);
    let display = std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if args.headless || !display || !cfg!(feature = "window") {
        if !args.headless {
            println!(
                "no window: {}; falling back to headless",
                if !cfg!(feature = "window") { "built without the `window` feature" } else { "no display" }
            );
        }
        return headless(&args, scene);
    }
    #[cfg(feature = "window")]
    windowed::run(scene, args.seed)?;
    Ok(())
}

#[cfg(feature = "window")]
mod windowed {
    use super::*;
    use bevy::camera::ScalingMode;
    use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
    use bevy::prelude::*;
    use foresight::camera::PixelCamera;
    use foresight_sim::keys::{action_from_keys, held_keys};
    use foresight_sim::render::{colour, place_bodies, SceneAssets};

    #[derive(Resource)]
    struct Sim {
        scene: Arc<Scene>,
        world: SimWorld,
        seed: u64,
        bodies: Vec<Entity>,
        camera: PixelCamera,
    }

    pub fn run(scene: Arc<Scene>, seed: u64) -> anyhow::Result<()> {
        let world = SimWorld::new(scene.clone(), seed)?;
        let hz = 1.0 / (scene.physics.dt as f64 * scene.physics.frame_skip as f64);
        App::new()
            .add_plugins(DefaultPlugins.set(WindowPlugin {
                primary_window: Some(Window { title: format!("foresight sim: {}", scene.name), resolution: (512, 512).into(), ..default() }),
                ..default()
            }))
            .insert_resource(Time::<Fixed>::from_hz(hz))
            .insert_resource(Sim { camera: PixelCamera::new(&scene.camera), scene, world, seed, bodies: Vec::new() })
            .add_systems(Startup, setup)
            .add_systems(FixedUpdate, step)
            .run();
        Ok(())
    }

    fn setup(world: &mut World) {
        let Some(sim) = world.remove_resource::<Sim>() else { return };
        let assets = SceneAssets::new(world, &sim.scene);
        assets.spawn_fixed(world, &sim.scene, &[Vec3::ZERO]);
        let bodies = assets.spawn_bodies(world, &sim.scene, Vec3::ZERO);
        let c = &sim.scene.camera;
        let projection = match c.projection {
            foresight::scene::Projection::Orthographic { height } => Projection::Orthographic(OrthographicProjection {
                scaling_mode: ScalingMode::FixedVertical { viewport_height: height },
                near: -1000.0,
                far: 1000.0,
                ..OrthographicProjection::default_3d()
            }),
            foresight::scene::Projection::Perspective { fov_y_deg } => Projection::Perspective(PerspectiveProjection { fov: fov_y_deg.to_radians(), ..default() }),
        };
        world.spawn((
            Camera3d::default(),
            Camera { clear_color: ClearColorConfig::Custom(colour(sim.scene.background)), ..default() },
            projection,
            Tonemapping::None,
            DebandDither::Disabled,
            Msaa::Off,
            Transform::from_translation(Vec3::from_array(c.position)).looking_at(Vec3::from_array(c.look_at), Vec3::from_array(c.up)),
        ));
        world.insert_resource(Sim { bodies, ..sim });
    }

    fn step(world: &mut World) {
        let keys = world.resource::<ButtonInput<KeyCode>>();
        let held = held_keys(keys);
        let reset = keys.just_pressed(KeyCode::Backspace);
        if keys.just_pressed(KeyCode::Escape) {
            world.write_message(AppExit::Success);
        }
        let Some(mut sim) = world.remove_resource::<Sim>() else { return };
        if reset {
            sim.seed += 1;
            match SimWorld::new(sim.scene.clone(), sim.seed) {
                Ok(w) => sim.world = w,
                Err(e) => warn!("cannot start a new episode: {e}"),
            }
        }
        let action = action_from_keys(&sim.scene, held);
        if let Err(e) = sim.world.step(&action) {
            warn!("step failed: {e}");
        }
        let states = sim.world.body_states();
        let res = sim.scene.resolution();
        place_bodies(world, &sim.bodies, Some(&states), Vec3::ZERO, &sim.camera, res);
        world.insert_resource(sim);
    }
}
