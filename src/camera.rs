//! Camera maths shared by the simulator (which renders) and the core (which projects states and
//! goal regions into pixels). Conventions follow Bevy's: a right-handed view with the camera
//! looking down its -z axis, a vertical field of view or a fixed visible height.

use crate::scene::{CameraSpec, Projection};

/// A camera ready to project world points to pixels.
#[derive(Debug, Clone)]
pub struct PixelCamera {
    eye: [f32; 3],
    right: [f32; 3],
    up: [f32; 3],
    forward: [f32; 3],
    projection: Projection,
    height: f32,
    width: f32,
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn normalize(a: [f32; 3]) -> [f32; 3] {
    let n = dot(a, a).sqrt().max(1e-12);
    [a[0] / n, a[1] / n, a[2] / n]
}

impl PixelCamera {
    /// From a scene's camera.
    pub fn new(spec: &CameraSpec) -> Self {
        let forward = normalize(sub(spec.look_at, spec.position));
        let right = normalize(cross(forward, spec.up));
        let up = cross(right, forward);
        PixelCamera {
            eye: spec.position,
            right,
            up,
            forward,
            projection: spec.projection.clone(),
            height: spec.resolution[0] as f32,
            width: spec.resolution[1] as f32,
        }
    }

    /// Orthonormal basis (right, up, forward) of the view, world coordinates.
    pub fn basis(&self) -> ([f32; 3], [f32; 3], [f32; 3]) {
        (self.right, self.up, self.forward)
    }

    /// Visible width and height in metres at the look-at plane for orthographic cameras.
    pub fn ortho_extent(&self) -> Option<(f32, f32)> {
        match self.projection {
            Projection::Orthographic { height } => Some((height * self.width / self.height, height)),
            Projection::Perspective { .. } => None,
        }
    }

    /// Projects a world point to pixel coordinates `(x, y)` = (column, row), where the centre of
    /// the top-left pixel is (0, 0). Points behind a perspective camera give `None`.
    pub fn project(&self, p: [f32; 3]) -> Option<[f32; 2]> {
        let d = sub(p, self.eye);
        let (x, y, z) = (dot(d, self.right), dot(d, self.up), dot(d, self.forward));
        let (ndc_x, ndc_y) = match self.projection {
            Projection::Orthographic { height } => {
                let half_h = height / 2.0;
                let half_w = half_h * self.width / self.height;
                (x / half_w, y / half_h)
            }
            Projection::Perspective { fov_y_deg } => {
                if z <= 1e-6 {
                    return None;
                }
                let t = (fov_y_deg.to_radians() / 2.0).tan();
                (x / (z * t * self.width / self.height), y / (z * t))
            }
        };
        Some([(ndc_x + 1.0) / 2.0 * self.width - 0.5, (1.0 - ndc_y) / 2.0 * self.height - 0.5])
    }
}
