//! Task costs on body positions in pixels, the same for every imagination: the model's bodies are
//! located by colour in predicted frames, the oracle's are projected from physics states.

use crate::camera::PixelCamera;
use crate::eval::metrics::locate;
use crate::scene::Scene;

/// The scene's goal in pixels: which body must reach which projected box.
#[derive(Debug, Clone)]
pub struct GoalGeometry {
    /// The goal body (scene index) and its colour.
    pub body: usize,
    /// Its flat colour.
    pub colour: [u8; 3],
    /// The agent body (scene index) and its colour.
    pub agent: usize,
    /// The agent's colour.
    pub agent_colour: [u8; 3],
    /// The goal region's centre, pixels.
    pub centre: [f32; 2],
    /// The region's projected box, pixels.
    pub lo: [f32; 2],
    /// Upper corner.
    pub hi: [f32; 2],
    /// Metres per pixel at the look-at plane.
    pub m_per_px: f32,
    /// Half the frame's diagonal: the distance charged for a body that cannot be found.
    pub lost_px: f32,
    /// Reward weights.
    pub distance_weight: f32,
    /// Bonus while inside.
    pub success_bonus: f32,
    /// Frame width.
    pub width: usize,
}

impl GoalGeometry {
    /// The goal of `scene`, or `None` when it has none.
    pub fn new(scene: &Scene) -> Option<Self> {
        let goal = scene.goal.as_ref()?;
        let body = scene.body_index(&goal.body)?;
        let region = scene.region(&goal.region)?;
        let (h, w) = scene.resolution();
        let cam = PixelCamera::new(&scene.camera);
        let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        for c in 0..8 {
            let corner: [f32; 3] = std::array::from_fn(|k| region.center[k] + if c >> k & 1 == 1 { region.half_extents[k] } else { -region.half_extents[k] });
            if let Some(p) = cam.project(corner) {
                for k in 0..2 {
                    lo[k] = lo[k].min(p[k]);
                    hi[k] = hi[k].max(p[k]);
                }
            }
        }
        let agent = scene.agent_body();
        Some(GoalGeometry {
            body,
            colour: scene.bodies[body].colour,
            agent,
            agent_colour: scene.bodies[agent].colour,
            centre: cam.project(region.center).unwrap_or([w as f32 / 2.0, h as f32 / 2.0]),
            lo,
            hi,
            m_per_px: cam.ortho_extent().map_or(1.0, |(_, height)| height / h as f32),
            lost_px: ((h * h + w * w) as f32).sqrt() / 2.0,
            distance_weight: goal.reward.distance_weight,
            success_bonus: goal.reward.success_bonus,
            width: w,
        })
    }

    /// Whether a body at `p` (pixels) is inside the goal box.
    pub fn inside(&self, p: [f32; 2]) -> bool {
        (0..2).all(|k| p[k] >= self.lo[k] && p[k] <= self.hi[k])
    }

    /// Distance in pixels from `p` to the goal's centre (the lost distance for `None`).
    pub fn distance_px(&self, p: Option<[f32; 2]>) -> f32 {
        p.map_or(self.lost_px, |p| ((p[0] - self.centre[0]).powi(2) + (p[1] - self.centre[1]).powi(2)).sqrt())
    }

    /// `(reward, success)` of a state where the goal body is at `p`.
    pub fn reward(&self, p: Option<[f32; 2]>) -> (f32, bool) {
        let inside = p.is_some_and(|p| self.inside(p));
        (-self.distance_weight * self.distance_px(p) * self.m_per_px + if inside { self.success_bonus } else { 0.0 }, inside)
    }

    /// The planning cost of a state (pixels): the goal body's distance to the goal, plus
    /// `approach` times the agent's distance to the point `standoff` pixels behind the body on
    /// the line from the goal (where a push towards the goal starts). Lost bodies cost the most.
    pub fn cost(&self, body: Option<[f32; 2]>, agent: Option<[f32; 2]>, approach: f32, standoff: f32) -> f32 {
        let d = self.distance_px(body);
        let (Some(b), Some(a)) = (body, agent) else { return d + approach * self.lost_px };
        let dir = [b[0] - self.centre[0], b[1] - self.centre[1]];
        let n = (dir[0] * dir[0] + dir[1] * dir[1]).sqrt().max(1e-3);
        let behind = [b[0] + dir[0] / n * standoff, b[1] + dir[1] / n * standoff];
        d + approach * ((a[0] - behind[0]).powi(2) + (a[1] - behind[1]).powi(2)).sqrt()
    }

    /// The goal body and the agent located by colour in a frame.
    pub fn locate(&self, frame: &[u8]) -> (Option<[f32; 2]>, Option<[f32; 2]>) {
        (locate(frame, self.width, self.colour), locate(frame, self.width, self.agent_colour))
    }
}
