//! FuturesViewPlugin: film-strip tiles and the ghost follow the latest PredictedFutures.

use std::sync::Arc;

use bevy::prelude::*;
use bevy_foresight::{frame_image, FuturesView, FuturesViewParts, FuturesViewPlugin, Ghost, PredictedFutures};

fn futures(app: &mut App, request_id: u64, samples: usize, steps: usize) -> PredictedFutures {
    let mut images = app.world_mut().resource_mut::<Assets<Image>>();
    let frames: Vec<Vec<Vec<u8>>> = (0..samples).map(|s| (0..steps).map(|i| vec![(s * 50 + i) as u8; 8 * 8 * 3]).collect()).collect();
    let handles = frames.iter().map(|row| row.iter().map(|f| images.add(frame_image(f, 8, 8))).collect()).collect();
    PredictedFutures { request_id, from_frame: 0, images: handles, frames: Arc::new(frames), latents: Arc::new(vec![]), latent_shape: [samples, steps, 0, 0, 0], spread: vec![] }
}

/// A headless app with the view plugin, a camera and an agent.
fn view_app() -> (App, Entity, Entity) {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(AssetPlugin::default())
        .init_asset::<Image>()
        .init_asset::<Mesh>()
        .init_asset::<StandardMaterial>()
        .add_plugins(FuturesViewPlugin);
    let camera = app.world_mut().spawn(Camera::default()).id();
    let agent = app.world_mut().spawn_empty().id();
    (app, camera, agent)
}

#[test]
fn the_strip_and_the_ghost_follow_the_latest_futures() {
    let (mut app, camera, agent) = view_app();
    let ghost = Ghost { step: 2, sample: 1, rect: Rect::new(0.0, 0.0, 64.0, 64.0), alpha: 0.5 };
    let view = app.world_mut().spawn(FuturesView::strip(agent, camera, Vec2::new(70.0, 0.0), 16.0).with_samples(2).with_ghost(ghost)).id();
    app.update();
    assert!(app.world().get::<FuturesViewParts>(view).is_some_and(|p| p.overlay.is_some() && p.tiles.is_empty()), "an overlay camera and nothing to show yet");
    let f = futures(&mut app, 1, 3, 5);
    app.world_mut().entity_mut(agent).insert(f.clone());
    app.update();
    let parts = app.world().get::<FuturesViewParts>(view).unwrap();
    assert_eq!(parts.shown, Some(1));
    assert_eq!(parts.tiles.len(), 2 * 5, "two samples shown of three, five frames each");
    let mats = app.world().resource::<Assets<StandardMaterial>>();
    let texture = |e: Entity| {
        let m = app.world().get::<MeshMaterial3d<StandardMaterial>>(e).unwrap();
        mats.get(&m.0).unwrap().base_color_texture.clone().unwrap()
    };
    let &(s, i, e) = parts.tiles.iter().find(|t| t.0 == 1 && t.1 == 4).unwrap();
    assert_eq!(texture(e), f.images[s][i]);
    assert_eq!(texture(parts.ghost.unwrap()), f.images[1][2]);
    // Newer futures replace the tiles.
    let g = futures(&mut app, 2, 1, 3);
    app.world_mut().entity_mut(agent).insert(g.clone());
    app.update();
    let parts = app.world().get::<FuturesViewParts>(view).unwrap();
    assert_eq!((parts.shown, parts.tiles.len()), (Some(2), 3));
    let old = app.world().get_entity(e).is_ok();
    assert!(!old, "old tiles are despawned");
    // The ghost's step can be moved without new futures.
    app.world_mut().get_mut::<FuturesView>(view).unwrap().ghost.as_mut().unwrap().step = 1;
    app.update();
    let parts = app.world().get::<FuturesViewParts>(view).unwrap();
    let mats = app.world().resource::<Assets<StandardMaterial>>();
    let m = app.world().get::<MeshMaterial3d<StandardMaterial>>(parts.ghost.unwrap()).unwrap();
    assert_eq!(mats.get(&m.0).unwrap().base_color_texture.clone().unwrap(), g.images[0][1]);
}

#[test]
fn the_spread_row_appears_under_the_samples_when_asked() {
    let (mut app, camera, agent) = view_app();
    let view = app.world_mut().spawn(FuturesView::strip(agent, camera, Vec2::ZERO, 16.0).with_samples(2).with_spread()).id();
    app.update();
    let mut f = futures(&mut app, 1, 2, 4);
    let spread: Vec<Handle<Image>> = {
        let mut images = app.world_mut().resource_mut::<Assets<Image>>();
        (0..4).map(|_| images.add(frame_image(&[255u8; 8 * 8 * 3], 8, 8))).collect()
    };
    f.spread = spread.clone();
    app.world_mut().entity_mut(agent).insert(f);
    app.update();
    let parts = app.world().get::<FuturesViewParts>(view).unwrap();
    assert_eq!(parts.tiles.len(), 3 * 4, "two sample rows and the spread row");
    let mats = app.world().resource::<Assets<StandardMaterial>>();
    let &(_, _, e) = parts.tiles.iter().find(|t| t.0 == 2 && t.1 == 3).unwrap();
    let m = app.world().get::<MeshMaterial3d<StandardMaterial>>(e).unwrap();
    assert_eq!(mats.get(&m.0).unwrap().base_color_texture.clone().unwrap(), spread[3]);
}
