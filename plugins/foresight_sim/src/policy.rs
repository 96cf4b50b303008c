//! Data-collection policies: smooth random actions (Ornstein-Uhlenbeck), held random actions (the
//! distribution a planner's candidates are drawn from), a scripted goal-seeking policy that works
//! for every scene's action type, the oracle planner with exploration (the states a planner
//! visits and the candidates it weighs there), pushes towards random targets (anywhere), straight
//! runs past the goal body (glancing), and zero actions.
//!
//! The scripted policy decides where the agent should move (behind the goal body, so that moving
//! on pushes it to the goal region, going around it when on the wrong side), turns that into a
//! desired velocity of the agent, and maps the velocity to the scene's channels: forces (push),
//! impulses (bounce) or joint velocities through a damped least-squares inverse of the arm's
//! Jacobian. It reads the true physics state; it exists to make contact-rich data. Policies that
//! see frames only belong to planning and evaluation.

use std::collections::VecDeque;

use foresight::plan::cost::GoalGeometry;
use foresight::plan::{Imagination, Planner, PlannerConfig};
use foresight::rng::Rng;
use foresight::scene::{ActionTarget, Role};

use crate::control::{budget, CostShape, OracleImagination};
use crate::physics::SimWorld;

/// The policies `foresight-sim datagen --policy` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyKind {
    /// Smooth random actions (an Ornstein-Uhlenbeck process per channel).
    Random,
    /// Goal-seeking, contact-making, with a little OU noise.
    Scripted,
    /// Random actions drawn like `foresight-sim plan`'s candidates (normal around the middle of
    /// each range with half the range as standard deviation, clamped, so often saturated), each
    /// held for 4 steps: the hard, sustained pushes a planner asks the model about.
    Held,
    /// The planner of `foresight-sim plan` with the physics oracle as its imagination (its
    /// default budget: horizon 8, 16 candidates, 1 round, hold 4, 4 actions per plan), executing
    /// the best candidate of each plan, or, in half of the plans, one of the other candidates it
    /// weighed: the states a planner drives the scene into and the actions it asks the world
    /// model about there (DAgger-style data for the model planner). Scenes with a goal only.
    Planner,
    /// The scripted pusher, but towards a point drawn anywhere in the arena instead of the goal
    /// (a new one every 16 steps): contact-rich pushes in every direction, most of them not
    /// towards the goal the frames show. The scripted and planner data push the goal body
    /// towards the goal nearly always, and a model trained on them imagines pushes away from
    /// the goal at a tenth of their length (session 28), which a planner then exploits.
    Anywhere,
    /// Straight runs of the disc along lines that pass the goal body at a random offset (up to
    /// 0.7 m either side of its centre, in a random direction, at 1–3 m/s): it goes to the
    /// line's start 1 m before the body, then runs straight on. Near the middle the run pushes
    /// the body head-on, further out it clips a corner, turns the body and slides on past its
    /// side, or passes it untouched. The model of session 28 imagines such glancing contacts as
    /// head-on stops (the disc imagined at half its true travel beside the block).
    Glancing,
    /// All zeros.
    Zero,
}

/// Share of the planner policy's plans that execute a random candidate instead of the best.
const PLANNER_EXPLORE: f32 = 0.5;

/// The oracle planner bound to one episode.
#[derive(Debug, Clone)]
struct PlannerPolicy {
    planner: Planner,
    geometry: GoalGeometry,
    queue: VecDeque<Vec<f32>>,
}

impl PolicyKind {
    /// Name stored in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Random => "random",
            PolicyKind::Scripted => "scripted",
            PolicyKind::Held => "held",
            PolicyKind::Planner => "planner",
            PolicyKind::Anywhere => "anywhere",
            PolicyKind::Glancing => "glancing",
            PolicyKind::Zero => "zero",
        }
    }
}

/// A policy bound to one episode (cloned, it plans ahead on a cloned world).
#[derive(Debug, Clone)]
pub struct Policy {
    kind: PolicyKind,
    rng: Rng,
    ou: Vec<f32>,
    /// Standard deviation of the OU noise added to scripted actions, as a fraction of the range.
    noise: f32,
    /// Scripted: a per-episode offset of the push point, for variety.
    aim: f32,
    /// Held: the current action and the steps it still holds.
    held: (Vec<f32>, usize),
    /// Planner: built on the first action (it needs the scene's goal).
    plan: Option<Box<PlannerPolicy>>,
    /// Anywhere: the current target and the steps it still holds.
    target: Option<(V3, usize)>,
    /// Glancing: the current run.
    run: Option<Run>,
}

/// One straight run of the glancing policy, relative to the goal body.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Unit direction of the run, in the floor plane.
    dir: V3,
    /// Signed distance of the line from the body's centre (metres).
    offset: f32,
    /// Speed of the run (m/s).
    speed: f32,
    /// Steps the run still holds.
    left: usize,
    /// Steps it has run since the disc reached its start (0: still on the way there).
    ran: usize,
}

/// Steps one glancing run lasts, the way to its start included.
const RUN_STEPS: usize = 32;

type V3 = [f32; 3];

/// Steps each action of the held policy lasts (the planner's default `--hold`).
const HOLD_STEPS: usize = 4;

/// Steps the anywhere policy pushes towards one target.
const TARGET_STEPS: usize = 16;

fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn scale(a: V3, s: f32) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
fn dot(a: V3, b: V3) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: V3, b: V3) -> V3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn norm(a: V3) -> f32 {
    dot(a, a).sqrt()
}
fn unit(a: V3) -> V3 {
    scale(a, 1.0 / norm(a).max(1e-6))
}
/// `v` shortened to at most `max` long.
fn capped(v: V3, max: f32) -> V3 {
    let n = norm(v);
    if n > max { scale(v, max / n) } else { v }
}

impl Policy {
    /// A policy seeded from the episode seed.
    pub fn new(kind: PolicyKind, seed: u64, dim: usize) -> Self {
        let mut rng = Rng::new(seed ^ 0x0070_6f6c_6963_79);
        let aim = rng.range(-0.4, 0.4);
        Policy { kind, rng, ou: vec![0.0; dim], noise: 0.1, aim, held: (Vec::new(), 0), plan: None, target: None, run: None }
    }

    /// Changes the noise of the scripted policy (fraction of each channel's range).
    pub fn with_noise(mut self, noise: f32) -> Self {
        self.noise = noise;
        self
    }

    fn ou_step(&mut self, theta: f32, sigma: f32) {
        for x in &mut self.ou {
            *x += -theta * *x + sigma * self.rng.normal();
        }
    }

    /// The action for the world's current state.
    pub fn act(&mut self, world: &SimWorld) -> Vec<f32> {
        let scene = world.scene().clone();
        let dim = scene.actions.len();
        match self.kind {
            PolicyKind::Zero => vec![0.0; dim],
            PolicyKind::Random => {
                self.ou_step(0.15, 0.3);
                scene.actions.iter().zip(&self.ou).map(|(ch, &x)| {
                    let (mid, half) = ((ch.high + ch.low) / 2.0, (ch.high - ch.low) / 2.0);
                    (mid + half * x).clamp(ch.low, ch.high)
                }).collect()
            }
            PolicyKind::Held => {
                if self.held.1 == 0 {
                    let rng = &mut self.rng;
                    self.held = (scene.actions.iter().map(|ch| ((ch.high + ch.low) / 2.0 + 0.5 * (ch.high - ch.low) * rng.normal()).clamp(ch.low, ch.high)).collect(), HOLD_STEPS);
                }
                self.held.1 -= 1;
                self.held.0.clone()
            }
            PolicyKind::Planner => self.planned(world),
            PolicyKind::Scripted | PolicyKind::Anywhere | PolicyKind::Glancing => {
                let target = (self.kind == PolicyKind::Anywhere).then(|| self.anywhere(&scene));
                let base = self.scripted(world, target);
                self.ou_step(0.3, self.noise);
                base.iter().zip(&scene.actions).zip(&self.ou).map(|((&a, ch), &n)| (a + n * (ch.high - ch.low) / 2.0).clamp(ch.low, ch.high)).collect()
            }
        }
    }

    /// The planner policy's next action: a new plan (one CEM round over the oracle) whenever the
    /// previous one's actions are spent. Without a goal (datagen refuses such scenes) or when the
    /// oracle fails, the middle of each action range.
    fn planned(&mut self, world: &SimWorld) -> Vec<f32> {
        let scene = world.scene();
        let mid: Vec<f32> = scene.actions.iter().map(|ch| (ch.low + ch.high) / 2.0).collect();
        if self.plan.is_none() {
            let Some(geometry) = GoalGeometry::new(scene) else { return mid };
            let cfg = PlannerConfig { horizon: budget::HORIZON, candidates: budget::CANDIDATES, iterations: budget::ITERATIONS, elites: budget::elites(budget::CANDIDATES), hold: budget::HOLD, seed: self.rng.next_u64(), ..PlannerConfig::default() };
            let Ok(planner) = Planner::new(cfg, scene.actions.iter().map(|a| a.low).collect(), scene.actions.iter().map(|a| a.high).collect()) else { return mid };
            self.plan = Some(Box::new(PlannerPolicy { planner, geometry, queue: VecDeque::new() }));
        }
        let Some(p) = self.plan.as_deref_mut() else { return mid };
        if p.queue.is_empty() {
            let mut search = p.planner.begin();
            let cands = p.planner.propose(&search);
            let Ok(costs) = OracleImagination::new(world, &p.geometry, CostShape::default()).costs(&cands) else { return mid };
            if p.planner.update(&mut search, &cands, &costs).is_err() {
                return mid;
            }
            let best = p.planner.finish(search).best;
            let explore = self.rng.uniform() < PLANNER_EXPLORE;
            let seq = if explore { cands[(self.rng.next_u64() % cands.len() as u64) as usize].clone() } else { best };
            p.queue = seq.into_iter().take(budget::REPLAN_EVERY).collect();
            p.planner.shift(budget::REPLAN_EVERY);
        }
        p.queue.pop_front().unwrap_or(mid)
    }

    /// The anywhere policy's target: a point drawn uniformly in the square ±1.4 m about the
    /// camera's look-at point in x and z (for `push`, seen from above, the arena inside its
    /// walls), held for [`TARGET_STEPS`] steps.
    fn anywhere(&mut self, scene: &foresight::scene::Scene) -> V3 {
        match self.target {
            Some((t, left)) if left > 0 => {
                self.target = Some((t, left - 1));
                t
            }
            _ => {
                let c = scene.camera.look_at;
                let t = [c[0] + self.rng.range(-1.4, 1.4), c[1], c[2] + self.rng.range(-1.4, 1.4)];
                self.target = Some((t, TARGET_STEPS - 1));
                t
            }
        }
    }

    /// The glancing policy's desired velocity of the disc (at `p_agent`, moving at `v_agent`):
    /// towards the current run's start (round the body when it is in the way), then straight
    /// along the run.
    fn glancing(&mut self, scene: &foresight::scene::Scene, p_agent: V3, v_agent: V3, p_obj: V3, reach: f32) -> V3 {
        let (right, up, fwd) = foresight::camera::PixelCamera::new(&scene.camera).basis();
        let start_of = |r: &Run| add(p_obj, add(scale(r.dir, -1.0), scale(unit(cross(fwd, r.dir)), r.offset)));
        let mut run = match self.run {
            Some(r) if r.left > 0 => r,
            _ => {
                // A line whose start lies within 1.7 m of the view's centre (inside `push`'s
                // walls), if one of eight draws gives one.
                let mut draw = || {
                    let a = self.rng.range(0.0, std::f32::consts::TAU);
                    Run { dir: add(scale(right, a.cos()), scale(up, a.sin())), offset: self.rng.range(-0.7, 0.7), speed: self.rng.range(1.0, 3.0), left: RUN_STEPS, ran: 0 }
                };
                let inside = |r: &Run| {
                    let d = sub(start_of(r), scene.camera.look_at);
                    dot(d, right).abs() < 1.7 && dot(d, up).abs() < 1.7
                };
                let mut r = draw();
                for _ in 1..8 {
                    if inside(&r) {
                        break;
                    }
                    r = draw();
                }
                r
            }
        };
        run.left -= 1;
        let side = unit(cross(fwd, run.dir));
        let rel = sub(p_agent, p_obj);
        let (along, lateral) = (dot(rel, run.dir), dot(rel, side));
        let start = start_of(&run);
        let v = if run.ran > 0 || norm(sub(start, p_agent)) < 0.25 {
            // Past the body by a metre, or stopped (by a wall), the run is over.
            run.ran += 1;
            if along > 1.0 || (run.ran > 4 && norm(v_agent) < 0.3) {
                run.left = 0;
            }
            scale(run.dir, run.speed)
        } else {
            let waypoint = if along > -reach && lateral.abs() < 1.2 * reach {
                // The body is in the way: round it on the line's side, level with the start.
                add(p_obj, add(scale(side, 1.6 * reach * if run.offset >= 0.0 { 1.0 } else { -1.0 }), scale(run.dir, -1.0)))
            } else {
                start
            };
            capped(scale(sub(waypoint, p_agent), 3.0), 3.0)
        };
        self.run = Some(run);
        sub(v, scale(fwd, dot(v, fwd)))
    }

    /// Where the agent should be heading and the desired velocity of its driven point: towards
    /// `towards` when given, else the scene's goal.
    fn scripted(&mut self, world: &SimWorld, towards: Option<V3>) -> Vec<f32> {
        let scene = world.scene();
        let states = world.body_states();
        let agent = world.agent_body();
        let p_agent = states[agent].position;
        // The body to push and where to: the goal's, else the nearest object towards the centre.
        let (obj, target) = match scene.goal.as_ref().and_then(|g| Some((scene.body_index(&g.body)?, scene.region(&g.region)?.center))) {
            Some((obj, goal)) => (obj, towards.unwrap_or(goal)),
            None => {
                let obj = (0..states.len())
                    .filter(|&i| scene.bodies[i].role == Role::Object)
                    .min_by(|&a, &b| norm(sub(states[a].position, p_agent)).total_cmp(&norm(sub(states[b].position, p_agent))))
                    .unwrap_or(agent);
                (obj, towards.unwrap_or(scene.camera.look_at))
            }
        };
        let desired_v = if obj == agent || scene.bodies[obj].role == Role::Agent {
            scale(sub(target, p_agent), 2.0)
        } else if self.kind == PolicyKind::Glancing {
            let reach = scene.bodies[obj].shape.bounding_radius() + scene.bodies[agent].shape.bounding_radius();
            self.glancing(scene, p_agent, states[agent].linvel, states[obj].position, reach)
        } else {
            let p_obj = states[obj].position;
            let mut to_goal = sub(target, p_obj);
            // Push within the plane the camera sees.
            let (_, _, fwd) = foresight::camera::PixelCamera::new(&scene.camera).basis();
            to_goal = sub(to_goal, scale(fwd, dot(to_goal, fwd)));
            let dir = unit(to_goal);
            let side = unit(cross(fwd, dir));
            let reach = scene.bodies[obj].shape.bounding_radius() + scene.bodies[agent].shape.bounding_radius();
            let behind = add(sub(p_obj, scale(dir, reach + 0.1)), scale(side, self.aim * 0.3));
            let rel = sub(p_agent, p_obj);
            let along = dot(rel, dir);
            let lateral = dot(rel, side);
            let waypoint = if along > -0.5 * reach && lateral.abs() < 1.2 * reach {
                // On the wrong side: go around the object.
                add(p_obj, add(scale(side, 1.6 * reach * if lateral >= 0.0 { 1.0 } else { -1.0 }), scale(dir, -0.5 * reach)))
            } else if along < -0.5 * reach && (lateral - self.aim * 0.3).abs() < 0.3 * reach {
                // Lined up behind the object: push through it towards the goal.
                add(p_obj, scale(dir, reach))
            } else {
                behind
            };
            let v = scale(sub(waypoint, p_agent), 3.0);
            capped(sub(v, scale(fwd, dot(v, fwd))), 3.0)
        };
        let lin = states[agent].linvel;
        let mass = scene.bodies[agent].mass;
        // Joint-space velocity for joint channels: damped least squares on the arm's Jacobian.
        let joint_cmd = self.joint_velocities(world, p_agent, desired_v);
        let impulse_due = self.rng.uniform() < 0.35;
        scene
            .actions
            .iter()
            .enumerate()
            .map(|(c, ch)| match &ch.target {
                ActionTarget::Force { direction, scale: s, .. } => {
                    // Velocity feedback plus a feed-forward that cancels floor friction (μ ≈ 0.5).
                    let g = norm(scene.physics.gravity);
                    let f = add(scale(sub(desired_v, lin), 15.0 * mass), scale(unit(desired_v), 0.5 * mass * g * norm(desired_v).min(1.0)));
                    dot(f, unit(*direction)) / s
                }
                ActionTarget::Impulse { direction, scale: s, .. } => {
                    if impulse_due {
                        dot(scale(sub(desired_v, lin), mass), unit(*direction)) / s
                    } else {
                        0.0
                    }
                }
                ActionTarget::JointVelocity { scale: s, .. } => joint_cmd.get(c).copied().unwrap_or(0.0) / s,
            })
            .collect()
    }

    /// For each action channel that drives a joint, the joint rate that moves `point` at `v`.
    fn joint_velocities(&self, world: &SimWorld, point: V3, v: V3) -> Vec<f32> {
        let scene = world.scene();
        let chans: Vec<(usize, usize)> = scene
            .actions
            .iter()
            .enumerate()
            .filter_map(|(c, ch)| match &ch.target {
                ActionTarget::JointVelocity { joint, .. } => scene.joints.iter().position(|j| &j.name == joint).map(|ji| (c, ji)),
                _ => None,
            })
            .collect();
        let mut out = vec![0.0; scene.actions.len()];
        if chans.is_empty() {
            return out;
        }
        // Columns of the 3×n Jacobian: axis × (point − anchor).
        let cols: Vec<V3> = chans
            .iter()
            .map(|&(_, ji)| match (world.joint_anchor(ji), world.joint_axis(ji)) {
                (Some(a), Some(ax)) => cross(ax, sub(point, a)),
                _ => [0.0; 3],
            })
            .collect();
        // q̇ = Jᵀ (J Jᵀ + λ² I)⁻¹ v
        let mut m = [[0.0f32; 3]; 3];
        for c in &cols {
            for i in 0..3 {
                for j in 0..3 {
                    m[i][j] += c[i] * c[j];
                }
            }
        }
        for (i, row) in m.iter_mut().enumerate() {
            row[i] += 0.05;
        }
        let y = solve3(m, v);
        for (k, &(c, _)) in chans.iter().enumerate() {
            out[c] = dot(cols[k], y);
        }
        out
    }
}

/// Solves a 3×3 system by Cramer's rule (the matrix is symmetric positive definite here).
fn solve3(m: [[f32; 3]; 3], b: V3) -> V3 {
    let det = |m: [[f32; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(m);
    if d.abs() < 1e-12 {
        return [0.0; 3];
    }
    let mut x = [0.0; 3];
    for (k, xk) in x.iter_mut().enumerate() {
        let mut mk = m;
        for i in 0..3 {
            mk[i][k] = b[i];
        }
        *xk = det(mk) / d;
    }
    x
}
