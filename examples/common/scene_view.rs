//! Shared by the windowed examples: a scene drawn live in a window viewport, plus a 64×64
#![allow(dead_code)]
//! capture camera with a `ForesightCamera` (the model's eye, byte-exact with the datasets).

use std::sync::Arc;

use bevy::asset::RenderAssetUsages;
use bevy::camera::{ImageRenderTarget, RenderTarget, Viewport};
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::prelude::*;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy_foresight::ForesightCamera;
use foresight::camera::PixelCamera;
use foresight::scene::Scene;
use foresight_sim::render::{colour, place_bodies, scene_view, SceneAssets};
use foresight_sim::SimWorld;

/// The entities of a live scene view.
pub struct SceneView {
    /// The window camera (viewport `0..size` square at the top-left).
    pub live: Entity,
    /// The capture camera (with a `ForesightCamera` in on-request mode).
    pub capture: Entity,
    /// Body entities in scene order.
    pub bodies: Vec<Entity>,
    /// Projection of world points to pixels.
    pub camera: PixelCamera,
    /// Whether the capture camera has given two identical, non-blank frames.
    pub warm: bool,
}

impl SceneView {
    /// Spawns the scene, a live camera drawing into a `size`-pixel square viewport and a capture
    /// camera at `res` keeping `k` frames.
    pub fn spawn(world: &mut World, scene: &Arc<Scene>, size: u32, res: [usize; 2], k: usize) -> Self {
        let assets = SceneAssets::new(world, scene);
        assets.spawn_fixed(world, scene, &[Vec3::ZERO]);
        let bodies = assets.spawn_bodies(world, scene, Vec3::ZERO);
        let (projection, transform) = scene_view(scene);
        let clear = ClearColorConfig::Custom(colour(scene.background));
        let live = world
            .spawn((
                Camera3d::default(),
                Camera { clear_color: clear, viewport: Some(Viewport { physical_position: UVec2::ZERO, physical_size: UVec2::splat(size), ..default() }), ..default() },
                projection.clone(),
                Tonemapping::None,
                DebandDither::Disabled,
                Msaa::Off,
                transform,
            ))
            .id();
        let [h, w] = res;
        let mut image = Image::new_target_texture(w as u32, h as u32, TextureFormat::Rgba8UnormSrgb, None);
        image.asset_usage = RenderAssetUsages::RENDER_WORLD;
        image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
        let target = world.resource_mut::<Assets<Image>>().add(image);
        let mut eye = ForesightCamera::new(res, k).on_request();
        eye.request_capture();
        let capture = world
            .spawn((
                Camera3d::default(),
                Camera { clear_color: clear, order: -1, ..default() },
                RenderTarget::Image(ImageRenderTarget { handle: target, scale_factor: 1.0 }),
                projection,
                Tonemapping::None,
                DebandDither::Disabled,
                Msaa::Off,
                transform,
                eye,
            ))
            .id();
        SceneView { live, capture, bodies, camera: PixelCamera::new(&scene.camera), warm: false }
    }

    /// Moves the bodies to the world's state and asks the capture camera for the frame.
    pub fn show(&self, world: &mut World, sim: &SimWorld) {
        let states = sim.body_states();
        place_bodies(world, &self.bodies, Some(&states), Vec3::ZERO, &self.camera, sim.scene().resolution());
        if let Some(mut eye) = world.get_mut::<ForesightCamera>(self.capture) {
            eye.request_capture();
        }
    }

    /// Whether the requested capture is still on its way.
    pub fn pending(&self, world: &World) -> bool {
        world.get::<ForesightCamera>(self.capture).is_none_or(|c| c.capture_pending())
    }

    /// The first captures can come back before the scene's pipelines are ready (blank): true
    /// once two identical captures show more than one colour (then only the last is kept).
    pub fn warm_up(&mut self, world: &mut World) -> bool {
        if self.warm {
            return true;
        }
        if let Some(mut eye) = world.get_mut::<ForesightCamera>(self.capture) {
            let n = eye.frames.len();
            let varied = eye.latest().is_some_and(|f| f.chunks(3).any(|p| p != &f[..3]));
            if n >= 2 && varied && eye.frames[n - 1] == eye.frames[n - 2] {
                self.warm = true;
                let last = eye.frames.pop_back();
                eye.frames.clear();
                eye.frames.extend(last);
            } else if !eye.capture_pending() {
                eye.request_capture();
            }
        }
        self.warm
    }
}
