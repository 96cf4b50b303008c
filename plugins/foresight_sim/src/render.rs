//! Offscreen rendering of environments by Bevy, in lock-step with physics.
//!
//! Bevy runs headless (no window, no pipelined rendering, synchronous pipeline compilation) and is
//! pumped by hand: the caller writes the bodies' poses, one `update()` renders them, the GPU (or
//! Mesa's lavapipe on a CPU) is polled to completion and the pixels are read back at once, so frame
//! t is exactly the state after action t-1. The copy back is our own (a render-world system that
//! copies the target after the frame was submitted, mapped while the caller waits), so no task
//! pool sits between a frame and its pixels.
//!
//! Throughput comes from drawing many environments in one view. With an orthographic camera the
//! environments are laid side by side in the world, each in its own tile of one render target,
//! and one camera sees the grid: one view and one readback for all of them (lavapipe pays about
//! 3.3 ms per view, so a camera per environment stalls near 300 images/s). Each environment keeps
//! its own rapier world; only the drawing is shared. Bodies whose centre leaves the view are
//! hidden so that they never show in a neighbour's tile; the scenes keep bodies in view with walls.
//! A perspective camera cannot be tiled this way and renders one environment per view.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::app::{AppLabel, PluginsState, SubApps};
use bevy::asset::RenderAssetUsages;
use bevy::camera::{ImageRenderTarget, RenderTarget, ScalingMode};
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::prelude::*;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{
    BufferDescriptor, BufferUsages, CommandEncoderDescriptor, Extent3d, MapMode, PollType, TexelCopyBufferInfo, TexelCopyBufferLayout, TextureFormat, TextureUsages,
};
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;
use bevy::render::{Render, RenderApp, RenderPlugin, RenderSystems};
use bevy::window::ExitCondition;
use foresight::camera::PixelCamera;
use foresight::scene::{Colour, Projection, Scene, Shape};

use crate::physics::{BodyState, SimWorld};

/// Rendering could not start or a frame could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No Vulkan driver (or no GPU) was found.
    #[error(
        "no GPU or Vulkan driver found ({0}). On a machine without a GPU install Mesa's software Vulkan: \
         `apt-get install -y libvulkan1 mesa-vulkan-drivers` (the README's commands do this)"
    )]
    NoGpu(String),
    /// Something went wrong inside Bevy.
    #[error("rendering failed: {0}")]
    Bevy(String),
}

/// Where the Vulkan loader looks for drivers.
const ICD_DIRS: [&str; 4] = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/usr/share/vulkan/implicit_layer.d"];

/// Checks that a Vulkan loader and at least one driver are installed (Linux), so that a missing
/// driver is reported with the packages to install instead of Bevy's panic.
pub fn check_vulkan() -> Result<(), RenderError> {
    if !cfg!(target_os = "linux") || std::env::var_os("VK_ICD_FILENAMES").is_some() || std::env::var_os("VK_DRIVER_FILES").is_some() {
        return Ok(());
    }
    let loader = ["/usr/lib/x86_64-linux-gnu/libvulkan.so.1", "/usr/lib/aarch64-linux-gnu/libvulkan.so.1", "/usr/lib/libvulkan.so.1", "/usr/lib64/libvulkan.so.1", "/usr/local/lib/libvulkan.so.1"];
    if !loader.iter().any(|p| std::path::Path::new(p).exists()) {
        return Err(RenderError::NoGpu("the Vulkan loader libvulkan.so.1 is missing".into()));
    }
    let has_icd = ICD_DIRS[..3].iter().any(|d| {
        std::fs::read_dir(d).map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.path().extension().is_some_and(|x| x == "json"))).unwrap_or(false)
    });
    if !has_icd {
        return Err(RenderError::NoGpu("no Vulkan driver manifest in /usr/share/vulkan/icd.d".into()));
    }
    Ok(())
}

/// The entities that draw one environment.
struct Slot {
    bodies: Vec<Entity>,
    offset: Vec3,
}

/// Renders up to `slots()` environments of one scene per call.
pub struct Renderer {
    apps: SubApps,
    scene: Arc<Scene>,
    slots: Vec<Slot>,
    cols: usize,
    rows: usize,
    camera: PixelCamera,
}

/// A scene colour as a Bevy colour (sRGB).
pub fn colour(c: Colour) -> Color {
    Color::srgb_u8(c[0], c[1], c[2])
}

fn mesh_of(shape: &Shape) -> Mesh {
    match shape {
        Shape::Ball { radius } => Sphere::new(*radius).mesh().uv(32, 18),
        Shape::Cuboid { half_extents: h } => Cuboid::new(2.0 * h[0], 2.0 * h[1], 2.0 * h[2]).into(),
        Shape::Cylinder { half_height, radius } => Cylinder::new(*radius, 2.0 * half_height).mesh().resolution(32).into(),
    }
}

fn v(a: [f32; 3]) -> Vec3 {
    Vec3::from_array(a)
}

fn euler(deg: [f32; 3]) -> Quat {
    Quat::from_euler(EulerRot::XYZ, deg[0].to_radians(), deg[1].to_radians(), deg[2].to_radians())
}

impl Renderer {
    /// Starts a headless Bevy renderer for `scene` with room for `envs` environments (rounded to
    /// a grid; perspective scenes get one).
    pub fn new(scene: Arc<Scene>, envs: usize) -> Result<Self, RenderError> {
        check_vulkan()?;
        let ortho = matches!(scene.camera.projection, Projection::Orthographic { .. });
        let envs = if ortho { envs.clamp(1, 256) } else { 1 };
        let cols = (envs as f32).sqrt().ceil() as usize;
        let rows = envs.div_ceil(cols);
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build_app()));
        let mut apps = match built {
            Ok(r) => r?,
            Err(p) => {
                let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                return Err(if msg.contains("GPU") { RenderError::NoGpu(msg) } else { RenderError::Bevy(msg) });
            }
        };
        let (h, w) = scene.resolution();
        let camera = PixelCamera::new(&scene.camera);
        let mut image = Image::new_target_texture((w * cols) as u32, (h * rows) as u32, TextureFormat::Rgba8UnormSrgb, None);
        image.asset_usage = RenderAssetUsages::RENDER_WORLD;
        image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
        let world = apps.main.world_mut();
        let target = world.resource_mut::<Assets<Image>>().add(image);
        let pixels = Pixels::default();
        world.insert_resource(pixels.clone());
        let render = apps.sub_apps.get_mut(&RenderApp.intern()).ok_or_else(|| RenderError::NoGpu("no render sub-app".into()))?;
        render.insert_resource(pixels).insert_resource(ReadTarget(target.clone())).add_systems(Render, read_target.in_set(RenderSystems::Cleanup));
        let world = apps.main.world_mut();

        // One camera over the whole grid (orthographic), placed at the grid's centre.
        let (right, up, _) = camera.basis();
        let (right, up) = (v(right), v(up));
        let (tile_w, tile_h) = camera.ortho_extent().unwrap_or((0.0, 0.0));
        let offset = |i: usize| right * ((i % cols) as f32 * tile_w) - up * ((i / cols) as f32 * tile_h);
        let centre = right * ((cols - 1) as f32 * tile_w / 2.0) - up * ((rows - 1) as f32 * tile_h / 2.0);
        let projection = match scene.camera.projection {
            Projection::Orthographic { height } => Projection3d::ortho(height * rows as f32, tile_w * cols as f32),
            Projection::Perspective { fov_y_deg } => Projection3d::perspective(fov_y_deg),
        };
        let cam = &scene.camera;
        world.spawn((
            Camera3d::default(),
            Camera { clear_color: ClearColorConfig::Custom(colour(scene.background)), ..default() },
            RenderTarget::Image(ImageRenderTarget { handle: target.clone(), scale_factor: 1.0 }),
            projection.into_bevy(),
            Tonemapping::None,
            DebandDither::Disabled,
            Msaa::Off,
            Transform::from_translation(v(cam.position) + centre).looking_at(v(cam.look_at) + centre, v(cam.up)),
        ));

        let assets = SceneAssets::new(world, &scene);
        let offsets: Vec<Vec3> = (0..cols * rows).map(offset).collect();
        assets.spawn_fixed(world, &scene, &offsets);
        let slots = offsets.iter().map(|&offset| Slot { bodies: assets.spawn_bodies(world, &scene, offset), offset }).collect();
        let mut r = Renderer { apps, scene, slots, cols, rows, camera };
        r.warm_up()?;
        Ok(r)
    }

    /// The first captures can come back before every mesh, material and pipeline reached the GPU
    /// (blank, or without some bodies), more so on a loaded machine. Draw a real start state in
    /// every slot until two captures in a row agree and show more than one colour.
    fn warm_up(&mut self) -> Result<(), RenderError> {
        let Ok(probe) = SimWorld::new(self.scene.clone(), 0) else {
            for _ in 0..3 {
                self.apps.update();
            }
            return Ok(());
        };
        let worlds = vec![&probe; self.slots.len()];
        let mut last: Option<Vec<Vec<u8>>> = None;
        for _ in 0..100 {
            let frames = self.render(&worlds)?;
            let varied = frames.iter().all(|f| f.chunks(3).any(|p| p != &f[..3]));
            if varied && last.as_ref() == Some(&frames) {
                return Ok(());
            }
            last = Some(frames);
        }
        Err(RenderError::Bevy("the renderer gave no stable frame in 100 tries".into()))
    }

    /// How many environments one call can draw.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The scene drawn.
    pub fn scene(&self) -> &Arc<Scene> {
        &self.scene
    }

    /// Draws `worlds` (at most [`Renderer::slots`]; world i in slot i) and returns one RGB frame
    /// (`H*W*3` bytes) per world.
    pub fn render(&mut self, worlds: &[&SimWorld]) -> Result<Vec<Vec<u8>>, RenderError> {
        if worlds.len() > self.slots.len() {
            return Err(RenderError::Bevy(format!("{} worlds for {} slots", worlds.len(), self.slots.len())));
        }
        let (h, w) = self.scene.resolution();
        {
            let world = self.apps.main.world_mut();
            for (i, slot) in self.slots.iter().enumerate() {
                let states = worlds.get(i).map(|sw| sw.body_states());
                place_bodies(world, &slot.bodies, states.as_deref(), slot.offset, &self.camera, (h, w));
            }
        }
        let image = self.capture()?;
        let full_w = w * self.cols;
        let mut out = Vec::with_capacity(worlds.len());
        for i in 0..worlds.len() {
            let (c, r) = (i % self.cols, i / self.cols);
            let mut f = Vec::with_capacity(h * w * 3);
            for y in 0..h {
                let row = (r * h + y) * full_w + c * w;
                for x in 0..w {
                    let p = (row + x) * 4;
                    f.extend_from_slice(&image[p..p + 3]);
                }
            }
            out.push(f);
        }
        Ok(out)
    }

    /// One update that renders the target and copies it back; returns its RGBA bytes.
    fn capture(&mut self) -> Result<Vec<u8>, RenderError> {
        let pixels = self.apps.main.world().resource::<Pixels>().clone();
        pixels.lock()?.want = true;
        self.apps.update();
        let device = self.apps.main.world().get_resource::<RenderDevice>().cloned().ok_or_else(|| RenderError::Bevy("no render device".into()))?;
        // The copy was submitted after the frame. Waiting on the device runs the map callback,
        // here or on a thread that polled first, so wait until its result lands.
        let start = std::time::Instant::now();
        let bytes = loop {
            device.poll(PollType::Wait { submission_index: None, timeout: Some(Duration::from_secs(5)) }).map_err(|e| RenderError::Bevy(format!("GPU poll: {e}")))?;
            let mut st = pixels.lock()?;
            if let Some(e) = st.error.take() {
                return Err(RenderError::Bevy(e));
            }
            if let Some(b) = st.data.take() {
                break b;
            }
            if start.elapsed() > Duration::from_secs(30) {
                st.want = false;
                return Err(RenderError::Bevy("no frame came back from the GPU within 30 s".into()));
            }
            drop(st);
            std::thread::sleep(Duration::from_micros(50));
        };
        let (h, w) = self.scene.resolution();
        let expected = h * self.rows * w * self.cols * 4;
        if bytes.len() != expected {
            return Err(RenderError::Bevy(format!("read back {} bytes, expected {expected}", bytes.len())));
        }
        Ok(bytes)
    }
}

/// Pixels shared between the main world (which asks) and the render world (which copies).
#[derive(Resource, Clone, Default)]
struct Pixels(Arc<Mutex<PixelState>>);

#[derive(Default)]
struct PixelState {
    want: bool,
    data: Option<Vec<u8>>,
    error: Option<String>,
}

impl Pixels {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, PixelState>, RenderError> {
        self.0.lock().map_err(|_| RenderError::Bevy("readback state poisoned".into()))
    }
}

/// The image the readback copies.
#[derive(Resource, Clone)]
struct ReadTarget(Handle<Image>);

/// Render-world system, after the frame's commands were submitted: copies the target texture into
/// a mappable buffer and maps it; the map callback (run when the caller waits on the device)
/// strips the row padding and hands the pixels to the main world. No task pool is involved.
fn read_target(pixels: Res<Pixels>, target: Res<ReadTarget>, images: Res<RenderAssets<GpuImage>>, device: Res<RenderDevice>, queue: Res<RenderQueue>) {
    let Ok(mut st) = pixels.0.lock() else { return };
    if !st.want {
        return;
    }
    st.want = false;
    let Some(gpu) = images.get(&target.0) else {
        st.error = Some("the render target is not on the GPU yet".into());
        return;
    };
    let size = gpu.texture.size();
    let (w, h) = (size.width, size.height);
    let row = (w * 4).div_ceil(256) * 256;
    let buffer = device.create_buffer(&BufferDescriptor {
        label: Some("foresight readback"),
        size: (row * h) as u64,
        usage: BufferUsages::COPY_DST | BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&CommandEncoderDescriptor { label: Some("foresight readback") });
    enc.copy_texture_to_buffer(
        gpu.texture.as_image_copy(),
        TexelCopyBufferInfo { buffer: &buffer, layout: TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row), rows_per_image: None } },
        Extent3d { width: w, height: h, depth_or_array_layers: 1 },
    );
    queue.submit([enc.finish()]);
    let shared = pixels.0.clone();
    let mapped = buffer.clone();
    buffer.slice(..).map_async(MapMode::Read, move |res| {
        let Ok(mut st) = shared.lock() else { return };
        match res {
            Ok(()) => {
                let view = mapped.slice(..).get_mapped_range();
                let mut out = Vec::with_capacity((w * h * 4) as usize);
                for y in 0..h as usize {
                    out.extend_from_slice(&view[y * row as usize..y * row as usize + (w * 4) as usize]);
                }
                drop(view);
                mapped.unmap();
                st.data = Some(out);
            }
            Err(e) => st.error = Some(format!("mapping the readback buffer failed: {e}")),
        }
    });
}

/// Meshes and unlit materials of a scene's bodies, and the fixed geometry of every environment
/// merged into one vertex-coloured mesh (one draw instead of one per wall per environment).
pub struct SceneAssets {
    meshes: Vec<Handle<Mesh>>,
    materials: Vec<Handle<StandardMaterial>>,
    vertex_coloured: Handle<StandardMaterial>,
    fwd: [f32; 3],
}

impl SceneAssets {
    /// Adds the bodies' meshes and flat-colour (unlit) materials to the world's assets.
    pub fn new(world: &mut World, scene: &Scene) -> Self {
        let fwd = PixelCamera::new(&scene.camera).basis().2;
        let meshes = {
            let mut mesh_assets = world.resource_mut::<Assets<Mesh>>();
            scene.bodies.iter().map(|b| mesh_assets.add(mesh_of(&b.shape))).collect()
        };
        let mut mat_assets = world.resource_mut::<Assets<StandardMaterial>>();
        let materials = scene.bodies.iter().map(|b| mat_assets.add(StandardMaterial { base_color: colour(b.colour), unlit: true, ..default() })).collect();
        let vertex_coloured = mat_assets.add(StandardMaterial { base_color: Color::WHITE, unlit: true, ..default() });
        SceneAssets { meshes, materials, vertex_coloured, fwd }
    }

    /// Spawns the visible statics and region markers of environments placed at `offsets`, merged
    /// into one mesh whose vertex colours are the parts' flat colours.
    pub fn spawn_fixed(&self, world: &mut World, scene: &Scene, offsets: &[Vec3]) {
        let mut parts: Vec<(Mesh, Transform, Colour)> = Vec::new();
        for s in scene.statics.iter().filter(|s| s.visible) {
            parts.push((mesh_of(&s.shape), Transform::from_translation(v(s.position)).with_rotation(euler(s.rotation_deg)), s.colour));
        }
        for r in &scene.regions {
            let Some(c) = r.colour else { continue };
            let (hx, centre) = region_marker(r, self.fwd);
            parts.push((Cuboid::new(2.0 * hx[0], 2.0 * hx[1], 2.0 * hx[2]).into(), Transform::from_translation(centre), c));
        }
        let mut merged: Option<Mesh> = None;
        for &off in offsets {
            for (mesh, t, c) in &parts {
                let lin = colour(*c).to_linear();
                let mut m = mesh.clone().transformed_by(Transform { translation: t.translation + off, ..*t });
                let n = m.count_vertices();
                m.insert_attribute(Mesh::ATTRIBUTE_COLOR, vec![[lin.red, lin.green, lin.blue, 1.0]; n]);
                match &mut merged {
                    None => merged = Some(m),
                    Some(all) => {
                        if let Err(e) = all.merge(&m) {
                            error!("cannot merge fixed geometry: {e}");
                        }
                    }
                }
            }
        }
        if let Some(m) = merged {
            let handle = world.resource_mut::<Assets<Mesh>>().add(m);
            world.spawn((Mesh3d(handle), MeshMaterial3d(self.vertex_coloured.clone()), Transform::IDENTITY));
        }
    }

    /// Spawns one environment's dynamic bodies (hidden until placed) at `offset`; returns their
    /// entities in scene order.
    pub fn spawn_bodies(&self, world: &mut World, scene: &Scene, offset: Vec3) -> Vec<Entity> {
        (0..scene.bodies.len())
            .map(|k| world.spawn((Mesh3d(self.meshes[k].clone()), MeshMaterial3d(self.materials[k].clone()), Transform::from_translation(offset), Visibility::Hidden)).id())
            .collect()
    }
}

/// Moves body entities to their physics poses (plus `offset`); bodies outside the camera's view,
/// or all of them when `states` is `None`, are hidden.
pub fn place_bodies(world: &mut World, bodies: &[Entity], states: Option<&[BodyState]>, offset: Vec3, camera: &PixelCamera, (h, w): (usize, usize)) {
    for (k, &e) in bodies.iter().enumerate() {
        let Ok(mut ent) = world.get_entity_mut(e) else { continue };
        let Some(s) = states.and_then(|s| s.get(k)) else {
            ent.insert(Visibility::Hidden);
            continue;
        };
        let [x, y, z, qw] = s.rotation;
        let inside = camera.project(s.position).is_some_and(|[px, py]| px >= -0.5 && py >= -0.5 && px < w as f32 - 0.5 && py < h as f32 - 0.5);
        ent.insert((
            Transform::from_translation(v(s.position) + offset).with_rotation(Quat::from_xyzw(x, y, z, qw)),
            if inside { Visibility::Inherited } else { Visibility::Hidden },
        ));
    }
}

/// A region is drawn as a thin slab across its extent, perpendicular to the axis nearest the
/// view direction, on the region's far side (so bodies inside it are drawn over it), lifted
/// slightly towards the camera so that it does not fight with a floor there.
fn region_marker(r: &foresight::scene::RegionSpec, fwd: [f32; 3]) -> ([f32; 3], Vec3) {
    let k = (0..3).max_by(|&a, &b| fwd[a].abs().total_cmp(&fwd[b].abs())).unwrap_or(1);
    let s = fwd[k].signum();
    let mut half = r.half_extents;
    half[k] = 0.004;
    let mut c = r.center;
    c[k] += s * r.half_extents[k] - s * 0.006;
    (half, v(c))
}

/// Projection parameters before they become a Bevy component.
/// The projection and pose of the scene's camera for one environment, as the renderer draws it
/// (windowed apps and capture cameras use these to see exactly what the datasets show).
pub fn scene_view(scene: &Scene) -> (bevy::camera::Projection, Transform) {
    let camera = PixelCamera::new(&scene.camera);
    let (tile_w, _) = camera.ortho_extent().unwrap_or((0.0, 0.0));
    let projection = match scene.camera.projection {
        Projection::Orthographic { height } => Projection3d::ortho(height, tile_w),
        Projection::Perspective { fov_y_deg } => Projection3d::perspective(fov_y_deg),
    };
    let c = &scene.camera;
    (projection.into_bevy(), Transform::from_translation(v(c.position)).looking_at(v(c.look_at), v(c.up)))
}

enum Projection3d {
    Ortho { height: f32, width: f32 },
    Perspective { fov_y_deg: f32 },
}

impl Projection3d {
    fn ortho(height: f32, width: f32) -> Self {
        Projection3d::Ortho { height, width }
    }
    fn perspective(fov_y_deg: f32) -> Self {
        Projection3d::Perspective { fov_y_deg }
    }
    fn into_bevy(self) -> bevy::camera::Projection {
        match self {
            Projection3d::Ortho { height, width } => bevy::camera::Projection::Orthographic(OrthographicProjection {
                scaling_mode: ScalingMode::Fixed { width, height },
                near: -1000.0,
                far: 1000.0,
                ..OrthographicProjection::default_3d()
            }),
            Projection3d::Perspective { fov_y_deg } => bevy::camera::Projection::Perspective(PerspectiveProjection { fov: fov_y_deg.to_radians(), ..default() }),
        }
    }
}

fn build_app() -> Result<SubApps, RenderError> {
    // Rendering errors (wgpu validation) are logged; the first renderer of the process installs
    // the logger, later ones reuse it.
    static LOGGER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let mut plugins = DefaultPlugins
        .set(WindowPlugin { primary_window: None, exit_condition: ExitCondition::DontExit, ..default() })
        .set(RenderPlugin { synchronous_pipeline_compilation: true, ..default() })
        .set(bevy::log::LogPlugin { level: bevy::log::Level::ERROR, filter: "error".into(), ..default() })
        .disable::<bevy::render::pipelined_rendering::PipelinedRenderingPlugin>();
    if LOGGER.swap(true, std::sync::atomic::Ordering::SeqCst) {
        plugins = plugins.disable::<bevy::log::LogPlugin>();
    }
    // Offscreen only, even in a build with the display stack (a windowed example beside it).
    #[cfg(feature = "window")]
    {
        plugins = plugins.disable::<bevy::winit::WinitPlugin>();
    }
    let mut app = App::new();
    app.add_plugins(plugins);
    let start = std::time::Instant::now();
    while app.plugins_state() == PluginsState::Adding {
        if start.elapsed() > Duration::from_secs(120) {
            return Err(RenderError::NoGpu("the render device did not start within 120 s".into()));
        }
        bevy::tasks::tick_global_task_pools_on_main_thread();
        std::thread::sleep(Duration::from_millis(1));
    }
    app.finish();
    app.cleanup();
    if app.get_sub_app(RenderApp).is_none() {
        return Err(RenderError::NoGpu("Bevy found no rendering backend".into()));
    }
    Ok(std::mem::take(app.sub_apps_mut()))
}
