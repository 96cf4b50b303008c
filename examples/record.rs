//! A small game of its own (a yellow paddle, a bouncing cyan ball) recorded with `RecorderPlugin` into the dataset format, keyboard actions as one-hot vectors, ready for `foresight train --init` to fine-tune a shipped checkpoint on it.
//!
//! ```text
//! cargo run -p bevy_foresight --example record -- --episodes 64 --out data/catch   # a bot plays, headless
//! cargo run -p bevy_foresight --features window --example record -- --window --out data/catch-me
//! target/debug/foresight train --data data/catch --config configs/finetune_conv.json \
//!     --init assets/push.safetensors --out runs/catch
//! ```
//! Keys (window): arrows or WASD move the paddle; no key is the action "none". Without a window a
//! bot holds a random key for a few steps at a time. Every 96 steps the game restarts
//! (a `CutEpisode`, so no episode spans the jump).

use std::path::PathBuf;
use std::time::Duration;

use bevy::asset::RenderAssetUsages;
use bevy::camera::{ImageRenderTarget, RenderTarget, ScalingMode};
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::prelude::*;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::render::RenderPlugin;
use bevy::window::ExitCondition;
use bevy_foresight::{CutEpisode, ForesightCamera, RecordedAction, RecorderCamera, RecorderConfig, RecorderPlugin, RecorderStatus};
use clap::Parser;
use foresight::data::{ActionSpec, BodyInfo};
use foresight::rng::Rng;
use foresight::scene::Role;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Output dataset directory.
    #[arg(long, default_value = "data/catch")]
    out: PathBuf,
    /// Episodes to record.
    #[arg(long, default_value_t = 64)]
    episodes: usize,
    /// Transitions per episode.
    #[arg(long, default_value_t = 32)]
    steps: usize,
    /// Game seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Play it yourself in a window (needs `--features window` and a display).
    #[arg(long)]
    window: bool,
}

/// The arena is 8×8 units; the camera sees all of it.
const ARENA: f32 = 8.0;
const KEYS: [&str; 5] = ["none", "left", "right", "up", "down"];
const PADDLE: [u8; 3] = [230, 200, 40];
const BALL: [u8; 3] = [40, 200, 220];
const FLOOR: [u8; 3] = [40, 40, 60];

#[derive(Resource)]
struct Game {
    paddle: Vec2,
    ball: Vec2,
    velocity: Vec2,
    rng: Rng,
    bot_key: usize,
    bot_left: u32,
    t: u32,
    window: bool,
    paddle_entity: Entity,
    ball_entity: Entity,
}

fn srgb(c: [u8; 3]) -> Color {
    Color::srgb_u8(c[0], c[1], c[2])
}

fn main() -> AppExit {
    let args = Args::parse();
    let window = args.window && cfg!(feature = "window") && std::env::var_os("DISPLAY").is_some();
    if args.window && !window {
        println!("no window (built without `--features window`, or no display): the bot plays headless");
    }
    let config = RecorderConfig {
        out: args.out.clone(),
        name: "catch".into(),
        action_spec: ActionSpec { dim: KEYS.len(), names: KEYS.iter().map(|k| k.to_string()).collect(), low: vec![0.0; 5], high: vec![1.0; 5], discrete: true },
        bodies: vec![BodyInfo { name: "ball".into(), colour: BALL, role: Role::Object }, BodyInfo { name: "paddle".into(), colour: PADDLE, role: Role::Agent }],
        dt: 1.0 / 15.0,
        episode_steps: args.steps,
        episodes: args.episodes,
        episodes_per_shard: 16,
        exit_when_done: true,
        first_seed: args.seed << 20,
    };
    let mut app = App::new();
    if window {
        app.add_plugins(DefaultPlugins.set(WindowPlugin {
            primary_window: Some(Window { title: "catch (recording)".into(), resolution: (512, 512).into(), ..default() }),
            ..default()
        }));
    } else {
        let plugins = DefaultPlugins
            .set(WindowPlugin { primary_window: None, exit_condition: ExitCondition::DontExit, ..default() })
            .set(RenderPlugin { synchronous_pipeline_compilation: true, ..default() });
        #[cfg(feature = "window")]
        let plugins = plugins.disable::<bevy::winit::WinitPlugin>();
        app.add_plugins((plugins, bevy::app::ScheduleRunnerPlugin::run_loop(Duration::ZERO)));
    }
    app.add_plugins(RecorderPlugin::new(config))
        .insert_resource(Time::<Fixed>::from_hz(15.0))
        .insert_resource(Seed(args.seed, window))
        .add_systems(Startup, setup)
        .add_systems(FixedUpdate, play)
        .add_systems(Update, (draw, progress));
    app.run()
}

#[derive(Resource)]
struct Seed(u64, bool);

fn quad(meshes: &mut Assets<Mesh>, materials: &mut Assets<StandardMaterial>, size: f32, colour: [u8; 3]) -> (Mesh3d, MeshMaterial3d<StandardMaterial>) {
    (Mesh3d(meshes.add(Rectangle::new(size, size))), MeshMaterial3d(materials.add(StandardMaterial { base_color: srgb(colour), unlit: true, ..default() })))
}

fn setup(mut commands: Commands, seed: Res<Seed>, mut meshes: ResMut<Assets<Mesh>>, mut materials: ResMut<Assets<StandardMaterial>>, mut images: ResMut<Assets<Image>>) {
    let projection = Projection::Orthographic(OrthographicProjection { scaling_mode: ScalingMode::Fixed { width: ARENA, height: ARENA }, near: -10.0, far: 10.0, ..OrthographicProjection::default_3d() });
    let view = (Tonemapping::None, DebandDither::Disabled, Msaa::Off, Transform::from_xyz(0.0, 0.0, 5.0).looking_at(Vec3::ZERO, Vec3::Y));
    let clear = ClearColorConfig::Custom(srgb(FLOOR));
    if seed.1 {
        commands.spawn((Camera3d::default(), Camera { clear_color: clear, ..default() }, projection.clone(), view));
    }
    // The recorded view: 64x64 offscreen, read back once per fixed step.
    let mut image = Image::new_target_texture(64, 64, TextureFormat::Rgba8UnormSrgb, None);
    image.asset_usage = RenderAssetUsages::RENDER_WORLD;
    image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    let target = images.add(image);
    commands.spawn((
        Camera3d::default(),
        Camera { clear_color: clear, order: -1, ..default() },
        RenderTarget::Image(ImageRenderTarget { handle: target, scale_factor: 1.0 }),
        projection,
        view,
        ForesightCamera::new([64, 64], 1).on_request(),
        RecorderCamera,
    ));
    let paddle_entity = commands.spawn((quad(&mut meshes, &mut materials, 1.2, PADDLE), Transform::default())).id();
    let ball_entity = commands.spawn((quad(&mut meshes, &mut materials, 0.6, BALL), Transform::from_xyz(0.0, 0.0, 0.1))).id();
    let mut game = Game { paddle: Vec2::ZERO, ball: Vec2::ZERO, velocity: Vec2::ZERO, rng: Rng::new(seed.0), bot_key: 0, bot_left: 0, t: 0, window: seed.1, paddle_entity, ball_entity };
    restart(&mut game);
    commands.insert_resource(game);
}

fn restart(g: &mut Game) {
    let half = ARENA / 2.0 - 0.8;
    g.paddle = Vec2::new(g.rng.range(-half, half), g.rng.range(-half, half));
    g.ball = Vec2::new(g.rng.range(-half, half), g.rng.range(-half, half));
    let angle = g.rng.range(0.0, std::f32::consts::TAU);
    g.velocity = Vec2::from_angle(angle) * g.rng.range(0.15, 0.3);
}

/// One game step: read the key (or the bot's), move the paddle, bounce the ball.
fn play(mut game: ResMut<Game>, keys: Option<Res<ButtonInput<KeyCode>>>, mut action: ResMut<RecordedAction>, mut cut: MessageWriter<CutEpisode>) {
    let g = &mut *game;
    g.t += 1;
    if g.t % 96 == 0 {
        restart(g);
        cut.write(CutEpisode);
        return;
    }
    let key = if g.window {
        let keys = keys.as_deref();
        let held = |k: &[KeyCode]| keys.is_some_and(|i| k.iter().any(|k| i.pressed(*k)));
        [(1, &[KeyCode::ArrowLeft, KeyCode::KeyA]), (2, &[KeyCode::ArrowRight, KeyCode::KeyD]), (3, &[KeyCode::ArrowUp, KeyCode::KeyW]), (4, &[KeyCode::ArrowDown, KeyCode::KeyS])]
            .into_iter()
            .find(|(_, k)| held(*k))
            .map_or(0, |(i, _)| i)
    } else {
        if g.bot_left == 0 {
            g.bot_key = g.rng.below(KEYS.len());
            g.bot_left = 2 + g.rng.below(6) as u32;
        }
        g.bot_left -= 1;
        g.bot_key
    };
    let step = [Vec2::ZERO, Vec2::NEG_X, Vec2::X, Vec2::Y, Vec2::NEG_Y][key] * 0.35;
    let half = ARENA / 2.0;
    g.paddle = (g.paddle + step).clamp(Vec2::splat(-half + 0.6), Vec2::splat(half - 0.6));
    g.ball += g.velocity;
    for axis in 0..2 {
        if g.ball[axis].abs() > half - 0.3 {
            g.ball[axis] = g.ball[axis].clamp(-half + 0.3, half - 0.3);
            g.velocity[axis] = -g.velocity[axis];
        }
    }
    // The paddle bats the ball away from its centre.
    let d = g.ball - g.paddle;
    if d.x.abs() < 0.9 && d.y.abs() < 0.9 {
        let speed = g.velocity.length().max(0.15);
        g.velocity = d.normalize_or(Vec2::X) * speed;
        g.ball = g.paddle + d.normalize_or(Vec2::X) * 0.95;
    }
    let mut onehot = vec![0.0; KEYS.len()];
    onehot[key] = 1.0;
    action.0 = onehot;
}

fn draw(game: Res<Game>, mut transforms: Query<&mut Transform>) {
    if let Ok(mut t) = transforms.get_mut(game.paddle_entity) {
        t.translation = game.paddle.extend(0.0);
    }
    if let Ok(mut t) = transforms.get_mut(game.ball_entity) {
        t.translation = game.ball.extend(0.1);
    }
}

fn progress(status: Res<RecorderStatus>, mut last: Local<usize>, mut exit: MessageWriter<AppExit>) {
    if status.episodes != *last {
        *last = status.episodes;
        println!("recorded {} episodes", status.episodes);
    }
    if let Some(e) = &status.error {
        eprintln!("recorder: {e}");
        exit.write(AppExit::error());
    }
}
