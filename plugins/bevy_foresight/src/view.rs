//! `FuturesViewPlugin`: shows predicted futures in the scene. A [`FuturesView`] draws the
//! [`PredictedFutures`] of one entity over a camera's target in a second pass: a film strip of
//! the next H frames (one row per sample) and a ghost overlay of a chosen future frame, placed in
//! the target's logical pixels (origin top-left), so the real view stays where it is. With
//! several samples, a row of per-pixel spread maps below the strip shows where they disagree.

use bevy::camera::visibility::RenderLayers;
use bevy::camera::{RenderTarget, ScalingMode};
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::prelude::*;

use crate::plugin::{ForesightSystems, PredictedFutures};

/// The render layer the views' quads and overlay cameras use (scene cameras do not see it).
pub const FUTURES_LAYER: usize = 31;

/// A ghost: one future frame drawn translucently over a region of the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ghost {
    /// Which future frame (0 = the first predicted step); clamped to the horizon.
    pub step: usize,
    /// Which sample.
    pub sample: usize,
    /// Where, in logical pixels of the target (top-left origin): usually the real view's viewport.
    pub rect: Rect,
    /// Opacity, 0 to 1.
    pub alpha: f32,
}

/// Draws the futures predicted for `source` over `camera`'s target. Put it on an entity of its
/// own; the plugin adds an overlay camera and the quads as its children.
#[derive(Component, Debug, Clone)]
#[require(Transform, Visibility)]
pub struct FuturesView {
    /// The entity that receives [`PredictedFutures`] (the requester).
    pub source: Entity,
    /// The camera whose render target the view is drawn on (after it).
    pub camera: Entity,
    /// Top-left corner of the film strip, logical pixels of the target.
    pub strip_origin: Vec2,
    /// Edge of one film-strip tile, logical pixels.
    pub tile: f32,
    /// Samples shown, one row each.
    pub samples: usize,
    /// Frames shown per row (at most the horizon).
    pub max_frames: usize,
    /// Optional ghost overlay.
    pub ghost: Option<Ghost>,
    /// Show the samples' per-pixel spread as a row under the strip (when there are several).
    pub spread: bool,
}

impl FuturesView {
    /// A film strip of up to 16 frames of one sample at `strip_origin`, tiles of `tile` pixels.
    pub fn strip(source: Entity, camera: Entity, strip_origin: Vec2, tile: f32) -> Self {
        FuturesView { source, camera, strip_origin, tile, samples: 1, max_frames: 16, ghost: None, spread: false }
    }

    /// Also shows `samples` rows.
    pub fn with_samples(mut self, samples: usize) -> Self {
        self.samples = samples.max(1);
        self
    }

    /// Adds the uncertainty row: per step, where the samples disagree.
    pub fn with_spread(mut self) -> Self {
        self.spread = true;
        self
    }

    /// Adds a ghost overlay.
    pub fn with_ghost(mut self, ghost: Ghost) -> Self {
        self.ghost = Some(ghost);
        self
    }
}

/// What a view has spawned.
#[derive(Component, Debug, Default)]
pub struct FuturesViewParts {
    /// The overlay camera.
    pub overlay: Option<Entity>,
    /// Film-strip tiles, `(row, step, entity)`: a row per sample, then the spread row if shown.
    pub tiles: Vec<(usize, usize, Entity)>,
    /// The ghost quad.
    pub ghost: Option<Entity>,
    /// The request whose frames are shown.
    pub shown: Option<u64>,
}

/// Adds [`FuturesView`] drawing (needs the PBR and render plugins, as any 3D app has).
pub struct FuturesViewPlugin;

impl Plugin for FuturesViewPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<QuadMesh>().add_systems(Update, (spawn_overlays, show_futures, place_quads).chain().after(ForesightSystems::Receive));
    }
}

#[derive(Resource)]
struct QuadMesh(Handle<Mesh>);

impl FromWorld for QuadMesh {
    fn from_world(world: &mut World) -> Self {
        QuadMesh(world.resource_mut::<Assets<Mesh>>().add(Rectangle::new(1.0, 1.0)))
    }
}

fn spawn_overlays(mut commands: Commands, views: Query<(Entity, &FuturesView), Without<FuturesViewParts>>, cameras: Query<(&Camera, Option<&RenderTarget>)>) {
    for (entity, view) in &views {
        let Ok((camera, target)) = cameras.get(view.camera) else {
            warn!("foresight: FuturesView {entity}: {} is not a camera", view.camera);
            commands.entity(entity).insert(FuturesViewParts::default());
            continue;
        };
        let mut overlay = commands.spawn((
            Camera3d::default(),
            Camera { order: camera.order + 1, clear_color: ClearColorConfig::None, ..default() },
            Projection::Orthographic(OrthographicProjection { scaling_mode: ScalingMode::WindowSize, near: -1000.0, far: 1000.0, ..OrthographicProjection::default_3d() }),
            Tonemapping::None,
            Msaa::Off,
            Transform::from_xyz(0.0, 0.0, 100.0).looking_at(Vec3::ZERO, Vec3::Y),
            RenderLayers::layer(FUTURES_LAYER),
        ));
        if let Some(t) = target {
            overlay.insert(t.clone());
        }
        let overlay = overlay.id();
        commands.entity(entity).insert(FuturesViewParts { overlay: Some(overlay), ..default() }).add_child(overlay);
    }
}

fn show_futures(
    mut commands: Commands,
    mut views: Query<(Entity, &FuturesView, &mut FuturesViewParts)>,
    futures: Query<&PredictedFutures>,
    quad: Res<QuadMesh>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    for (entity, view, mut parts) in &mut views {
        let Ok(f) = futures.get(view.source) else { continue };
        if parts.shown == Some(f.request_id) || f.images.is_empty() {
            continue;
        }
        for (_, _, e) in parts.tiles.drain(..) {
            commands.entity(e).despawn();
        }
        if let Some(g) = parts.ghost.take() {
            commands.entity(g).despawn();
        }
        let layer = RenderLayers::layer(FUTURES_LAYER);
        let rows = f.images.len().min(view.samples);
        let spread_row = if view.spread && !f.spread.is_empty() { Some(&f.spread) } else { None };
        for (s, row) in f.images.iter().take(rows).chain(spread_row).enumerate() {
            for (i, image) in row.iter().enumerate().take(view.max_frames) {
                let material = materials.add(StandardMaterial { base_color_texture: Some(image.clone()), unlit: true, ..default() });
                let tile = commands.spawn((Mesh3d(quad.0.clone()), MeshMaterial3d(material), Transform::default(), Visibility::Hidden, layer.clone())).id();
                commands.entity(entity).add_child(tile);
                parts.tiles.push((s, i, tile));
            }
        }
        if let Some(g) = view.ghost {
            let s = g.sample.min(f.images.len() - 1);
            let i = g.step.min(f.images[s].len().saturating_sub(1));
            if let Some(image) = f.images[s].get(i) {
                let material = materials.add(StandardMaterial {
                    base_color: Color::srgba(1.0, 1.0, 1.0, g.alpha.clamp(0.0, 1.0)),
                    base_color_texture: Some(image.clone()),
                    unlit: true,
                    alpha_mode: AlphaMode::Blend,
                    ..default()
                });
                let ghost = commands.spawn((Mesh3d(quad.0.clone()), MeshMaterial3d(material), Transform::default(), Visibility::Hidden, layer.clone())).id();
                commands.entity(entity).add_child(ghost);
                parts.ghost = Some(ghost);
            }
        }
        parts.shown = Some(f.request_id);
    }
}

/// Lays the quads out in the overlay camera's logical pixels (every frame: windows resize) and
/// keeps the ghost on its chosen step.
fn place_quads(
    views: Query<(&FuturesView, &FuturesViewParts)>,
    cameras: Query<&Camera>,
    futures: Query<&PredictedFutures>,
    mut quads: Query<(&mut Transform, &mut Visibility, &MeshMaterial3d<StandardMaterial>)>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    for (view, parts) in &views {
        // Follow the ghost's chosen step without respawning.
        if let (Some(g), Some(e)) = (view.ghost, parts.ghost)
            && let Ok((_, _, mat)) = quads.get(e)
            && let Ok(f) = futures.get(view.source)
            && let Some(row) = f.images.get(g.sample.min(f.images.len().saturating_sub(1)))
            && let Some(image) = row.get(g.step.min(row.len().saturating_sub(1)))
            && materials.get(&mat.0).is_some_and(|m| m.base_color_texture.as_ref() != Some(image))
            && let Some(mut m) = materials.get_mut(&mat.0)
        {
            m.base_color_texture = Some(image.clone());
        }
        let Some(size) = parts.overlay.and_then(|o| cameras.get(o).ok()).and_then(|c| c.logical_viewport_size()) else { continue };
        // Logical pixel (top-left origin) to the overlay's world units (centre origin, y up).
        let at = |px: Vec2, w: f32, h: f32, z: f32| Transform::from_xyz(px.x + w / 2.0 - size.x / 2.0, size.y / 2.0 - px.y - h / 2.0, z).with_scale(Vec3::new(w, h, 1.0));
        let gap = (view.tile / 16.0).max(1.0);
        for &(s, i, e) in &parts.tiles {
            if let Ok((mut t, mut vis, _)) = quads.get_mut(e) {
                *t = at(view.strip_origin + Vec2::new(i as f32 * (view.tile + gap), s as f32 * (view.tile + gap)), view.tile, view.tile, 0.0);
                *vis = Visibility::Visible;
            }
        }
        if let (Some(g), Some(e)) = (view.ghost, parts.ghost)
            && let Ok((mut t, mut vis, _)) = quads.get_mut(e)
        {
            *t = at(g.rect.min, g.rect.width(), g.rect.height(), 1.0);
            *vis = Visibility::Visible;
        }
    }
}
