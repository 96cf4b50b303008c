//! RecorderPlugin on a real (offscreen, lavapipe) render: frame t+1 is exactly the state after
//! action t, episodes are cut at `CutEpisode`, and the dataset reads back.

use std::time::Duration;

use bevy::asset::RenderAssetUsages;
use bevy::camera::{ImageRenderTarget, RenderTarget, ScalingMode};
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::prelude::*;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::render::RenderPlugin;
use bevy::window::ExitCondition;
use bevy_foresight::{CutEpisode, ForesightCamera, RecordedAction, RecorderCamera, RecorderConfig, RecorderPlugin, RecorderStatus};
use foresight::data::{ActionSpec, Dataset};

#[derive(Resource, Default)]
struct Mover {
    x: i32,
    steps: u32,
    entity: Option<Entity>,
}

fn setup(mut commands: Commands, mut meshes: ResMut<Assets<Mesh>>, mut materials: ResMut<Assets<StandardMaterial>>, mut images: ResMut<Assets<Image>>, mut mover: ResMut<Mover>) {
    let mut image = Image::new_target_texture(16, 16, TextureFormat::Rgba8UnormSrgb, None);
    image.asset_usage = RenderAssetUsages::RENDER_WORLD;
    image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    let target = images.add(image);
    commands.spawn((
        Camera3d::default(),
        Camera { clear_color: ClearColorConfig::Custom(Color::BLACK), ..default() },
        RenderTarget::Image(ImageRenderTarget { handle: target, scale_factor: 1.0 }),
        Projection::Orthographic(OrthographicProjection { scaling_mode: ScalingMode::Fixed { width: 16.0, height: 16.0 }, near: -10.0, far: 10.0, ..OrthographicProjection::default_3d() }),
        Tonemapping::None,
        DebandDither::Disabled,
        Msaa::Off,
        Transform::from_xyz(0.0, 0.0, 5.0).looking_at(Vec3::ZERO, Vec3::Y),
        ForesightCamera::new([16, 16], 1).on_request(),
        RecorderCamera,
    ));
    let quad = meshes.add(Rectangle::new(1.0, 1.0));
    let white = materials.add(StandardMaterial { base_color: Color::WHITE, unlit: true, ..default() });
    mover.entity = Some(commands.spawn((Mesh3d(quad), MeshMaterial3d(white), Transform::from_xyz(-7.5, 0.5, 0.0))).id());
}

/// Each fixed step moves the square one pixel right (action = the new column); every 7th step
/// the game "resets" it to the left edge.
fn step(mut mover: ResMut<Mover>, mut action: ResMut<RecordedAction>, mut cut: MessageWriter<CutEpisode>, mut t: Query<&mut Transform>) {
    mover.steps += 1;
    if mover.steps % 7 == 0 {
        mover.x = 0;
        cut.write(CutEpisode);
    } else {
        mover.x = (mover.x + 1) % 15;
    }
    action.0 = vec![mover.x as f32];
    if let Some(mut tr) = mover.entity.and_then(|e| t.get_mut(e).ok()) {
        tr.translation.x = -7.5 + mover.x as f32;
    }
}

#[test]
fn recorded_frames_follow_their_actions_exactly() {
    let dir = std::env::temp_dir().join(format!("foresight-recorder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = RecorderConfig {
        out: dir.clone(),
        name: "mover".into(),
        action_spec: ActionSpec { dim: 1, names: vec!["column".into()], low: vec![0.0], high: vec![15.0], discrete: false },
        bodies: vec![],
        dt: 0.05,
        episode_steps: 4,
        episodes: 3,
        episodes_per_shard: 2,
        exit_when_done: true,
        first_seed: 100,
    };
    let plugins = DefaultPlugins
        .set(WindowPlugin { primary_window: None, exit_condition: ExitCondition::DontExit, ..default() })
        .set(RenderPlugin { synchronous_pipeline_compilation: true, ..default() })
        .set(bevy::log::LogPlugin { level: bevy::log::Level::ERROR, ..default() });
    let mut app = App::new();
    app.add_plugins((plugins, bevy::app::ScheduleRunnerPlugin::run_loop(Duration::ZERO)))
        .add_plugins(RecorderPlugin::new(config))
        .insert_resource(Time::<Fixed>::from_hz(20.0))
        .init_resource::<Mover>()
        .add_systems(Startup, setup)
        .add_systems(FixedUpdate, step);
    // Drive by hand with a time limit (the runner would loop until AppExit).
    app.finish();
    app.cleanup();
    let start = std::time::Instant::now();
    while !app.world().resource::<RecorderStatus>().done && start.elapsed() < Duration::from_secs(120) {
        app.update();
        assert!(app.world().resource::<RecorderStatus>().error.is_none(), "{:?}", app.world().resource::<RecorderStatus>().error);
    }
    assert!(app.world().resource::<RecorderStatus>().done, "the recorder did not finish in time");
    let mut ds = Dataset::open(&dir).unwrap();
    assert_eq!(ds.len(), 3);
    for i in 0..3 {
        let ep = ds.episode(i).unwrap();
        assert_eq!((ep.steps(), ep.seed), (4, 100 + i as u64));
        // Frame t+1 shows the square at the column that action t set: exact alignment.
        for t in 0..4 {
            let col = ep.action(t)[0] as usize;
            let f = ep.frame(t + 1);
            let lit: Vec<usize> = (0..16).filter(|&x| f[(7 * 16 + x) * 3] > 128).collect();
            assert_eq!(lit, vec![col], "episode {i}, frame {}: the square is at {lit:?}, action {t} put it at {col}", t + 1);
        }
        // No episode spans a reset (column 0 only right after a cut, which starts an episode).
        assert!((0..4).all(|t| ep.action(t)[0] != 0.0), "an episode spans a reset");
    }
    std::fs::remove_dir_all(&dir).ok();
}
