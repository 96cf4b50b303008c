//! Policies that see frames only (bodies located by colour), so the same code acts in the world
//! model and in the true scene; and the statistics that compare a policy ranking in the two.

use crate::camera::PixelCamera;
use crate::rng::Rng;
use crate::scene::{ActionTarget, Scene};

use super::cost::GoalGeometry;

/// What a frame policy does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FramePolicyKind {
    /// Goes behind the goal body (seen from the goal) and pushes it towards the goal, with
    /// smooth noise of this standard deviation (fraction of the action range) added.
    Scripted {
        /// Noise level.
        noise: f32,
    },
    /// Smooth random actions.
    Random,
    /// No action.
    Zero,
}

/// A policy acting on frames of a push-like scene (force or impulse actions on the agent).
#[derive(Debug, Clone)]
pub struct FramePolicy {
    kind: FramePolicyKind,
    geometry: GoalGeometry,
    /// `channel[i]` = the image-space direction (right, down) of action channel `i`, in pixels
    /// of motion per unit (only its direction matters).
    channels: Vec<[f32; 2]>,
    low: Vec<f32>,
    high: Vec<f32>,
    rng: Rng,
    ou: Vec<f32>,
    last_agent: Option<[f32; 2]>,
    /// Centre distance (px) at which the agent touches the goal body, seen from above.
    clearance: f32,
    /// Frame `(height, width)`.
    size: (usize, usize),
    /// While going round the body: which way (the sign of the turn), kept until lined up.
    orbit: Option<f32>,
}

impl FramePolicy {
    /// A policy for `scene`; refuses scenes without a goal or with joint actions.
    pub fn new(scene: &Scene, kind: FramePolicyKind, seed: u64) -> Result<Self, String> {
        let geometry = GoalGeometry::new(scene).ok_or_else(|| format!("scene `{}` has no goal", scene.name))?;
        let cam = PixelCamera::new(&scene.camera);
        let (right, up, _) = cam.basis();
        let dot = |a: [f32; 3], b: [f32; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        let channels = scene
            .actions
            .iter()
            .map(|a| match &a.target {
                ActionTarget::Force { direction, .. } | ActionTarget::Impulse { direction, .. } => Ok([dot(*direction, right), -dot(*direction, up)]),
                ActionTarget::JointVelocity { .. } => Err(format!("frame policies drive forces and impulses; `{}` is a joint velocity", a.name)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Footprints on the floor: the largest horizontal reach of each shape.
        let reach = |b: &crate::scene::BodySpec| match b.shape {
            crate::scene::Shape::Ball { radius } | crate::scene::Shape::Cylinder { radius, .. } => radius,
            crate::scene::Shape::Cuboid { half_extents: h } => (h[0] * h[0] + h[2] * h[2]).sqrt(),
        };
        let clearance = (reach(&scene.bodies[geometry.agent]) + reach(&scene.bodies[geometry.body])) / geometry.m_per_px;
        Ok(FramePolicy {
            kind,
            clearance,
            size: scene.resolution(),
            orbit: None,
            geometry,
            channels,
            low: scene.actions.iter().map(|a| a.low).collect(),
            high: scene.actions.iter().map(|a| a.high).collect(),
            rng: Rng::new(seed ^ 0x6672_616d_65),
            ou: vec![0.0; scene.actions.len()],
            last_agent: None,
        })
    }

    /// A name for reports.
    pub fn name(&self) -> String {
        match self.kind {
            FramePolicyKind::Scripted { noise } if noise == 0.0 => "scripted".into(),
            FramePolicyKind::Scripted { noise } => format!("noisy-scripted-{noise:.2}"),
            FramePolicyKind::Random => "random".into(),
            FramePolicyKind::Zero => "zero".into(),
        }
    }

    fn ou_step(&mut self, sigma: f32) {
        for x in &mut self.ou {
            *x += -0.15 * *x + sigma * self.rng.normal();
        }
    }

    /// Desired image-space motion of the agent at `a` to push the body at `b` to the goal: go
    /// round the body (never through it) to the point behind it, seen from the goal, then push
    /// along the line to the goal, correcting sideways drift.
    fn steer(&mut self, b: [f32; 2], a: [f32; 2]) -> [f32; 2] {
        let g = self.geometry.centre;
        let c = self.clearance;
        let d = [g[0] - b[0], g[1] - b[1]];
        let dn = (d[0] * d[0] + d[1] * d[1]).sqrt().max(1e-3);
        let u = [d[0] / dn, d[1] / dn];
        let p = [a[0] - b[0], a[1] - b[1]];
        let along = p[0] * u[0] + p[1] * u[1];
        // Signed offset from the push line (positive on the left of u).
        let side = p[0] * -u[1] + p[1] * u[0];
        let r = (p[0] * p[0] + p[1] * p[1]).sqrt().max(1e-3);
        if along < -0.5 * c && side.abs() < 0.3 * c {
            self.orbit = None;
            // Lined up behind: push through the body towards the goal, steering back onto the line.
            return [u[0] * 6.0 + u[1] * side * 0.8, u[1] * 6.0 - u[0] * side * 0.8];
        }
        let behind = [b[0] - u[0] * (c + 2.0), b[1] - u[1] * (c + 2.0)];
        if along > -0.5 * c && r < c + 4.0 {
            // Beside or in front of the body: circle round it on the side the agent is on,
            // keeping out of contact.
            // Of the two ways round, take the one that heads away from the goal side, unless it
            // runs into the frame's edge (a wall) within a few steps.
            let tangent = [-p[1] / r, p[0] / r];
            let (h, w) = (self.size.0 as f32, self.size.1 as f32);
            let room = |t: [f32; 2]| {
                let q = [a[0] + t[0] * 8.0, a[1] + t[1] * 8.0];
                q[0].min(w - 1.0 - q[0]).min(q[1]).min(h - 1.0 - q[1])
            };
            let turn = |sign: f32| [tangent[0] * sign, tangent[1] * sign];
            let sign = match self.orbit {
                // Keep turning the same way (no dithering), unless that way is blocked.
                Some(sg) if room(turn(sg)) >= 0.25 * c || room(turn(-sg)) <= room(turn(sg)) => sg,
                Some(sg) => -sg,
                None => {
                    let away = if tangent[0] * u[0] + tangent[1] * u[1] <= 0.0 { 1.0 } else { -1.0 };
                    if room(turn(away)) < 0.5 * c && room(turn(-away)) > room(turn(away)) { -away } else { away }
                }
            };
            self.orbit = Some(sign);
            let t = turn(sign);
            let out = (c + 3.0 - r).max(0.0);
            return [t[0] * 6.0 + p[0] / r * out, t[1] * 6.0 + p[1] / r * out];
        }
        self.orbit = None;
        [behind[0] - a[0], behind[1] - a[1]]
    }

    /// The action for this frame.
    pub fn act(&mut self, frame: &[u8]) -> Vec<f32> {
        let n = self.channels.len();
        let mid = |i: usize, s: &Self| (s.low[i] + s.high[i]) / 2.0;
        let half = |i: usize, s: &Self| (s.high[i] - s.low[i]) / 2.0;
        match self.kind {
            FramePolicyKind::Zero => (0..n).map(|i| mid(i, self).clamp(self.low[i], self.high[i])).collect(),
            FramePolicyKind::Random => {
                self.ou_step(0.3);
                (0..n).map(|i| (mid(i, self) + self.ou[i] * half(i, self)).clamp(self.low[i], self.high[i])).collect()
            }
            FramePolicyKind::Scripted { noise } => {
                let (body, agent) = self.geometry.locate(frame);
                // Desired image-space motion: to the point behind the body, then through it.
                let want = match (body, agent) {
                    (Some(b), Some(a)) => self.steer(b, a),
                    _ => [0.0, 0.0],
                };
                // Damping from the agent's motion between frames.
                let vel = match (agent, self.last_agent) {
                    (Some(a), Some(p)) => [a[0] - p[0], a[1] - p[1]],
                    _ => [0.0, 0.0],
                };
                self.last_agent = agent;
                let cmd = [0.25 * want[0] - 0.6 * vel[0], 0.25 * want[1] - 0.6 * vel[1]];
                self.ou_step(1.0);
                (0..n)
                    .map(|i| {
                        let c = self.channels[i];
                        let cn = (c[0] * c[0] + c[1] * c[1]).sqrt().max(1e-6);
                        let v = (cmd[0] * c[0] + cmd[1] * c[1]) / cn;
                        (mid(i, self) + (v.clamp(-1.0, 1.0) + noise * self.ou[i]) * half(i, self)).clamp(self.low[i], self.high[i])
                    })
                    .collect()
            }
        }
    }
}

/// Spearman rank correlation of two score lists, where each item's score is `(primary, tie)`:
/// items are ranked by the primary score, ties broken by the second; equal pairs share the mean
/// rank.
pub fn spearman(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    fn ranks(v: &[(f64, f64)]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].0.total_cmp(&v[j].0).then(v[i].1.total_cmp(&v[j].1)));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..=j] {
                r[k] = (i + j) as f64 / 2.0 + 1.0;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        return f64::NAN;
    }
    cov / (va * vb).sqrt()
}

/// Mean absolute difference of paired values.
pub fn mean_abs_error(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len().max(1) as f64
}
