//! Observation: a camera that renders into an `Image` gets a [`ForesightCamera`], and its rendered
//! frames are read back from the GPU (Bevy's `Readback`), resized to the model's resolution and
//! kept as a rolling context that requests can name ([`crate::ContextSource::Camera`]).

use std::collections::VecDeque;

use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};

/// Captures the frames of the camera it sits on (the camera must render into an `Image` whose
/// usage includes `COPY_SRC`, as `Image::new_target_texture` makes it) into a rolling context.
#[derive(Component, Debug, Clone)]
pub struct ForesightCamera {
    /// Frame size kept, `[height, width]` (the model's resolution).
    pub resolution: [usize; 2],
    /// Frames kept (the model's context length, or more).
    pub capacity: usize,
    /// Rolling context, oldest first, `H*W*3` bytes each.
    pub frames: VecDeque<Vec<u8>>,
    /// Frames captured so far.
    pub captured: u64,
    /// Why the last capture failed, if it did.
    pub error: Option<String>,
    /// Capture only when asked ([`ForesightCamera::request_capture`]) instead of every frame.
    pub on_request: bool,
    /// Readbacks still to skip before the requested capture (older frames in flight).
    skip: Option<u8>,
    /// Whether the readback was set up.
    started: bool,
}

/// Readbacks that can still be in flight from frames rendered before a capture request (render
/// pipelining and the asynchronous buffer map each add a frame).
const IN_FLIGHT: u8 = 3;

impl ForesightCamera {
    /// Keeps the last `capacity` frames at `resolution` `[height, width]`.
    pub fn new(resolution: [usize; 2], capacity: usize) -> Self {
        ForesightCamera { resolution, capacity: capacity.max(1), frames: VecDeque::new(), captured: 0, error: None, on_request: false, skip: None, started: false }
    }

    /// Captures only when asked: a simulation that steps at its own rate calls
    /// [`ForesightCamera::request_capture`] after each step, so the context holds one frame per
    /// step (as the model was trained), not one per rendered frame.
    pub fn on_request(mut self) -> Self {
        self.on_request = true;
        self
    }

    /// Asks for the frame of the current state (with [`ForesightCamera::on_request`]); it arrives
    /// a few rendered frames later, once older readbacks have drained.
    pub fn request_capture(&mut self) {
        self.skip = Some(IN_FLIGHT);
    }

    /// Whether a requested capture has not arrived yet.
    pub fn capture_pending(&self) -> bool {
        self.skip.is_some()
    }

    /// Takes a readback: kept every frame, or only the requested one.
    fn offer(&mut self, rgba: &[u8], width: usize, height: usize) -> Result<(), String> {
        if self.on_request {
            match self.skip {
                None => return Ok(()),
                Some(0) => self.skip = None,
                Some(n) => {
                    self.skip = Some(n - 1);
                    return Ok(());
                }
            }
        }
        self.push_rgba(rgba, width, height)
    }

    /// The newest frame, if any.
    pub fn latest(&self) -> Option<&[u8]> {
        self.frames.back().map(|f| f.as_slice())
    }

    /// The last `n` frames (fewer if fewer were captured), oldest first.
    pub fn context(&self, n: usize) -> Vec<Vec<u8>> {
        self.frames.iter().skip(self.frames.len().saturating_sub(n)).cloned().collect()
    }

    /// Adds a captured RGBA frame of `width`×`height` (rows possibly padded), resized to
    /// [`ForesightCamera::resolution`] by area averaging.
    pub fn push_rgba(&mut self, rgba: &[u8], width: usize, height: usize) -> Result<(), String> {
        let row = width * 4;
        if width == 0 || height == 0 || rgba.len() < row * height {
            return Err(format!("a {width}x{height} capture came back with {} bytes", rgba.len()));
        }
        let stride = if height > 1 { (rgba.len() / height).max(row) } else { row };
        let [h, w] = self.resolution;
        let mut out = vec![0u8; h * w * 3];
        for y in 0..h {
            let (y0, y1) = (y * height / h, ((y + 1) * height / h).max(y * height / h + 1));
            for x in 0..w {
                let (x0, x1) = (x * width / w, ((x + 1) * width / w).max(x * width / w + 1));
                let mut acc = [0u32; 3];
                for sy in y0..y1 {
                    for sx in x0..x1 {
                        let p = sy * stride + sx * 4;
                        for c in 0..3 {
                            acc[c] += rgba[p + c] as u32;
                        }
                    }
                }
                let n = ((y1 - y0) * (x1 - x0)) as u32;
                for c in 0..3 {
                    out[(y * w + x) * 3 + c] = ((acc[c] + n / 2) / n) as u8;
                }
            }
        }
        if self.frames.len() == self.capacity {
            self.frames.pop_front();
        }
        self.frames.push_back(out);
        self.captured += 1;
        Ok(())
    }
}

/// Starts the GPU readback of every new [`ForesightCamera`]'s target image (once per camera, however
/// many plugins register this system).
pub(crate) fn start_capture(mut commands: Commands, mut cameras: Query<(Entity, Option<&RenderTarget>, &mut ForesightCamera)>) {
    for (entity, target, mut cam) in &mut cameras {
        if cam.started {
            continue;
        }
        cam.started = true;
        match target.and_then(|t| t.as_image()) {
            Some(image) => {
                commands.entity(entity).insert(Readback::texture(image.clone())).observe(on_readback);
            }
            None => {
                let reason = "ForesightCamera needs a camera that renders into an Image (RenderTarget::Image)".to_string();
                warn!("foresight: entity {entity}: {reason}");
                cam.error = Some(reason);
            }
        }
    }
}

fn on_readback(event: On<ReadbackComplete>, mut cameras: Query<(&mut ForesightCamera, &Readback)>, images: Res<Assets<Image>>) {
    let Ok((mut cam, readback)) = cameras.get_mut(event.entity) else { return };
    let Readback::Texture(handle) = readback else { return };
    let Some(image) = images.get(handle) else { return };
    let (w, h) = (image.width() as usize, image.height() as usize);
    cam.error = cam.offer(&event.data, w, h).err();
}
