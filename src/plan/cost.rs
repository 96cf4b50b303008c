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
    ///
    /// With `around > 0` the agent's distance is measured round the body instead of through it:
    /// the shortest path that keeps `around` pixels from the body's centre (a circle about the
    /// contact distance) to the point where that circle meets the line from the goal, then
    /// straight in to the pushing position. An agent on the goal's side of the body is then far
    /// from its pushing position even when the straight line is short, and the cost falls
    /// steadily as it goes round: the manoeuvre is read from the agent's imagined positions,
    /// not from the pushes that a straight approach would imagine through the body.
    pub fn cost(&self, body: Option<[f32; 2]>, agent: Option<[f32; 2]>, approach: f32, standoff: f32, around: f32) -> f32 {
        let d = self.distance_px(body);
        let (Some(b), Some(a)) = (body, agent) else { return d + approach * self.lost_px };
        let dir = [b[0] - self.centre[0], b[1] - self.centre[1]];
        let n = (dir[0] * dir[0] + dir[1] * dir[1]).sqrt().max(1e-3);
        let u = [dir[0] / n, dir[1] / n];
        d + approach * if around > 0.0 { round_distance([a[0] - b[0], a[1] - b[1]], u, standoff, around) } else { ((a[0] - b[0] - u[0] * standoff).powi(2) + (a[1] - b[1] - u[1] * standoff).powi(2)).sqrt() }
    }

    /// The goal body and the agent located by colour in a frame.
    pub fn locate(&self, frame: &[u8]) -> (Option<[f32; 2]>, Option<[f32; 2]>) {
        (locate(frame, self.width, self.colour), locate(frame, self.width, self.agent_colour))
    }
}

/// The length of the shortest path from `v` (the agent, relative to the body's centre) to the
/// pushing position `standoff · u` that stays outside the circle of radius `r` about the centre
/// until it reaches the circle's point `r · u` (`u` a unit vector pointing away from the goal).
/// Inside the circle the way round is charged as along the circle (the agent touching a face of
/// the body is inside it, and must come out to the circle to pass a corner: charged at its own
/// distance, going round would first cost more, a barrier that held a disc against the block's
/// goal side for 90 steps in session 29), then radially to the pushing position.
fn round_distance(v: [f32; 2], u: [f32; 2], standoff: f32, r: f32) -> f32 {
    let d = (v[0] * v[0] + v[1] * v[1]).sqrt();
    let cos = if d > 1e-6 { ((v[0] * u[0] + v[1] * u[1]) / d).clamp(-1.0, 1.0) } else { 1.0 };
    let delta = cos.acos();
    if d < r {
        return r * delta + (d - standoff).abs();
    }
    // The tangent from the agent touches the circle `alpha` away from the agent's own angle.
    let alpha = (r / d).acos();
    let to_circle = if delta <= alpha {
        ((v[0] - r * u[0]).powi(2) + (v[1] - r * u[1]).powi(2)).sqrt()
    } else {
        (d * d - r * r).sqrt() + r * (delta - alpha)
    };
    to_circle + (r - standoff).abs()
}
