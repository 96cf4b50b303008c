//! Checkpoints as assets, predicted frames as `Image` assets, camera captures.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_foresight::{ForesightCamera, ForesightDiagnostics, PredictFutures, PredictedFutures, WorldModelPlugin};

use crate::save_tiny;

fn asset_app(dir: &std::path::Path, file: &str) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(AssetPlugin { file_path: dir.display().to_string(), ..default() })
        .init_asset::<Image>()
        .add_plugins(WorldModelPlugin::from_asset(file).with_threads(1));
    app
}

fn pump_until(app: &mut App, mut done: impl FnMut(&mut App) -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        app.update();
        if done(app) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn a_checkpoint_loads_as_an_asset_and_futures_arrive_as_images() {
    let dir = std::env::temp_dir().join(format!("foresight-asset-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    save_tiny(&dir, "tiny");
    let mut app = asset_app(&dir, "tiny.safetensors");
    assert!(pump_until(&mut app, |a| a.world().resource::<ForesightDiagnostics>().unavailable.is_none()), "the asset never loaded");
    let agent = app.world_mut().spawn_empty().id();
    app.world_mut().write_message(PredictFutures {
        request_id: 9,
        requester: agent,
        context: vec![vec![90u8; 16 * 16 * 3]; 2].into(),
        past_actions: None,
        actions: vec![vec![0.5, -0.5]; 4],
        samples: 2,
        seed: 3,
        deadline: None,
        from_frame: 40,
    });
    assert!(pump_until(&mut app, |a| a.world().get::<PredictedFutures>(agent).is_some()), "no PredictedFutures component arrived");
    let f = app.world().get::<PredictedFutures>(agent).unwrap().clone();
    assert_eq!((f.request_id, f.from_frame), (9, 40));
    assert_eq!(f.images.len(), 2);
    assert_eq!(f.images[0].len(), 4);
    assert_eq!(f.latent_shape[..2], [2, 4]);
    assert_eq!(f.latents.len(), f.latent_shape.iter().product::<usize>());
    let images = app.world().resource::<Assets<Image>>();
    let img = images.get(&f.images[1][3]).expect("the image asset exists");
    assert_eq!((img.width(), img.height()), (16, 16));
    let data = img.data.as_ref().unwrap();
    let rgb = &f.frames[1][3];
    assert_eq!((data[4], data[5], data[6], data[7]), (rgb[3], rgb[4], rgb[5], 255));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_truncated_checkpoint_asset_is_a_load_failure_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("foresight-asset-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let weights = save_tiny(&dir, "cut");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let mut app = asset_app(&dir, "cut.safetensors");
    let failed = |a: &mut App| a.world().resource::<ForesightDiagnostics>().unavailable.as_deref().is_some_and(|u| u.contains("failed to load"));
    assert!(pump_until(&mut app, failed), "{:?}", app.world().resource::<ForesightDiagnostics>().unavailable);
    let reason = app.world().resource::<ForesightDiagnostics>().unavailable.clone().unwrap();
    assert!(reason.contains("truncated") && reason.contains("cut.safetensors"), "{reason}");
    app.update(); // the game keeps running
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn camera_captures_are_resized_and_rolled() {
    let mut cam = ForesightCamera::new([2, 2], 2);
    // A 4x4 RGBA capture with rows padded to 20 bytes: each 2x2 block one grey level.
    let mut rgba = vec![0u8; 20 * 4];
    for y in 0..4 {
        for x in 0..4 {
            let v = [[10u8, 20], [30, 40]][y / 2][x / 2] + (x % 2 + y % 2) as u8;
            rgba[y * 20 + x * 4..y * 20 + x * 4 + 4].copy_from_slice(&[v, v, v, 255]);
        }
    }
    for _ in 0..3 {
        cam.push_rgba(&rgba, 4, 4).unwrap();
    }
    assert_eq!(cam.frames.len(), 2);
    assert_eq!(cam.captured, 3);
    assert_eq!(cam.latest().unwrap(), &[11, 11, 11, 21, 21, 21, 31, 31, 31, 41, 41, 41]);
    assert!(cam.push_rgba(&rgba[..10], 4, 4).unwrap_err().contains("bytes"));
}
