//! Closed-loop control in the true scene with a planner whose imagination is the world model, the
//! physics oracle (the rapier world cloned and stepped: the upper bound), or nothing (random
//! costs: the planner's sampling distribution alone). The same planner settings, candidate and
//! iteration budget serve all three, and the same task cost on body positions in pixels.

use std::sync::Arc;
use std::time::Instant;

use foresight::camera::PixelCamera;
use foresight::plan::cost::GoalGeometry;
use foresight::plan::model::{ModelCost, ModelImagination};
use foresight::plan::policies::{FramePolicy, FramePolicyKind};
use foresight::plan::{Imagination, Planner, PlannerConfig};
use foresight::rng::Rng;
use foresight::scene::Scene;
use foresight::world_model::WorldModel;

use crate::oracle::Oracle;
use crate::physics::SimWorld;

/// Which imagination the planner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImaginationKind {
    /// The world model, in latent space.
    Model,
    /// The physics oracle (cloned rapier worlds).
    Oracle,
    /// Random costs (no imagination).
    Random,
}

/// Where the planner's prior sequence comes from (`PlannerConfig::prior_share` of the
/// candidates are drawn around it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriorKind {
    /// The frame-only scripted pusher ([`FramePolicy`], no noise) run on every real frame; its
    /// latest action, held over the horizon, is the prior. It sees the same frames in every
    /// imagination, so the model and the oracle get the same candidates.
    Scripted,
}

/// Cost shaping shared by every imagination.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CostShape {
    /// Weight of the agent's distance to its pushing position.
    pub approach: f32,
    /// Pixels behind the body where a push starts.
    pub standoff: f32,
    /// Score a candidate by its cost averaged over every state of the horizon instead of its
    /// last state's (errors of the model grow with the horizon; its early frames weigh as much).
    #[serde(default)]
    pub running: bool,
    /// Measure the agent's distance to its pushing position round the body, keeping this many
    /// pixels from its centre ([`foresight::plan::cost::GoalGeometry::cost`]; 0: straight).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub around: f32,
    /// Model imagination only: the goal body's imagined displacement is scaled by this before
    /// costing (`ModelCost::Task::push_gain`; 1: as imagined).
    #[serde(skip_serializing_if = "is_unit")]
    pub model_push_gain: f32,
    /// Model imagination only: the goal body's imagined displacement is shortened by this many
    /// pixels before costing (`ModelCost::Task::push_deadzone`; 0: as imagined).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub model_push_deadzone: f32,
    /// Model imagination only: an imagined agent that never comes this many pixels near the goal
    /// body leaves the body where it was (`ModelCost::Task::contact_gate`; 0: as imagined).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub model_contact_gate: f32,
    /// Model imagination only: the agent's imagined displacement is scaled by this before
    /// costing (`ModelCost::Task::agent_gain`; 1: as imagined).
    #[serde(skip_serializing_if = "is_unit")]
    pub model_agent_gain: f32,
}

fn is_unit(x: &f32) -> bool {
    *x == 1.0
}

impl Default for CostShape {
    fn default() -> Self {
        CostShape { approach: 0.3, standoff: 5.0, around: 0.0, running: false, model_push_gain: 1.0, model_push_deadzone: 0.0, model_contact_gate: 0.0, model_agent_gain: 1.0 }
    }
}

/// `foresight-sim plan`'s default budget (horizon, candidates per round, rounds, steps per noise
/// draw, actions executed per plan), shared with the planner data policy.
pub mod budget {
    /// Planning horizon.
    pub const HORIZON: usize = 8;
    /// Candidates per round.
    pub const CANDIDATES: usize = 16;
    /// CEM rounds per plan.
    pub const ITERATIONS: usize = 1;
    /// Steps sharing one noise draw.
    pub const HOLD: usize = 4;
    /// Actions executed per plan.
    pub const REPLAN_EVERY: usize = 4;

    /// CEM elites for a number of candidates (an eighth, at least one).
    pub fn elites(candidates: usize) -> usize {
        (candidates / 8).max(1)
    }
}

/// Goal body and agent positions in pixels (None: not visible).
type Located = (Option<[f32; 2]>, Option<[f32; 2]>);

/// The oracle as imagination: every candidate is played in a clone of the true world and scored
/// on the projected positions of its last state.
pub struct OracleImagination<'a> {
    start: &'a SimWorld,
    geometry: &'a GoalGeometry,
    camera: PixelCamera,
    shape: CostShape,
    /// The goal body and the agent (projected, pixels) after every step of each candidate of the
    /// latest `costs` call.
    pub positions: Vec<Vec<Located>>,
}

impl<'a> OracleImagination<'a> {
    /// From the true world's current state.
    pub fn new(start: &'a SimWorld, geometry: &'a GoalGeometry, shape: CostShape) -> Self {
        OracleImagination { start, geometry, camera: PixelCamera::new(&start.scene().camera), shape, positions: Vec::new() }
    }

    /// The goal body's and the agent's projected positions in the true current state.
    pub fn start_positions(&self) -> Located {
        let s = self.start.body_states();
        (self.camera.project(s[self.geometry.body].position), self.camera.project(s[self.geometry.agent].position))
    }

    /// Each candidate's last positions in the latest `costs` call.
    pub fn last_positions(&self) -> Vec<Located> {
        self.positions.iter().map(|at| at.last().copied().unwrap_or_else(|| self.start_positions())).collect()
    }
}

impl Imagination for OracleImagination<'_> {
    fn costs(&mut self, candidates: &[Vec<Vec<f32>>]) -> anyhow::Result<Vec<f32>> {
        type Scored = (f32, Vec<Located>);
        let score = |seq: &Vec<Vec<f32>>| -> anyhow::Result<Scored> {
            let mut w = self.start.clone();
            let mut at = Vec::with_capacity(seq.len());
            for a in seq {
                w.step(a)?;
                let s = w.body_states();
                at.push((self.camera.project(s[self.geometry.body].position), self.camera.project(s[self.geometry.agent].position)));
            }
            let (shape, g) = (self.shape, self.geometry);
            let cost = |&(body, agent): &Located| g.cost(body, agent, shape.approach, shape.standoff, shape.around);
            let c = match at.last() {
                None => cost(&self.start_positions()),
                Some(last) if !shape.running => cost(last),
                Some(_) => at.iter().map(cost).sum::<f32>() / at.len() as f32,
            };
            Ok((c, at))
        };
        // Candidates are independent: two halves on two threads.
        let half = candidates.len().div_ceil(2);
        let (a, b) = candidates.split_at(half);
        let (ra, rb) = std::thread::scope(|s| {
            let h = s.spawn(|| b.iter().map(score).collect::<anyhow::Result<Vec<Scored>>>());
            let ra = a.iter().map(score).collect::<anyhow::Result<Vec<Scored>>>();
            (ra, h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("an oracle thread panicked"))))
        });
        let mut out = ra?;
        out.extend(rb?);
        let costs = out.iter().map(|(c, _)| *c).collect();
        self.positions = out.into_iter().map(|(_, at)| at).collect();
        Ok(costs)
    }
}

/// The world model's costs audited by the oracle: every candidate the model scores is also played
/// in clones of the true world, and how the two rankings agree is recorded (the oracle's share of
/// the time is kept apart, so planning time stays the model's).
struct Audited<'a, 'm> {
    model: ModelImagination<'m>,
    oracle: OracleImagination<'a>,
    audit: &'a mut Audit,
    /// Where each round's costs go (`ControlConfig::audit_dump`), and what identifies the round.
    dump: Option<(&'a std::path::Path, u64, usize)>,
    /// Return the oracle's costs (the model only shadows it, `ControlConfig::shadow_model`).
    follow_oracle: bool,
    /// A second model scoring the same candidates for the dump (`run_episode`'s `second`).
    second: Option<ModelImagination<'m>>,
}

/// Agreement of the model's candidate costs with the oracle's, summed over plans.
#[derive(Debug, Default, Clone)]
struct Audit {
    spearman: f64,
    regret_px: f64,
    calls: usize,
    seconds: f64,
    lost: foresight::plan::model::LostCount,
    /// Candidates where both imaginations located the goal body / the agent, and the summed
    /// distances (px) between the model's imagined last positions and the true ones.
    body_located: usize,
    body_error: f64,
    agent_located: usize,
    agent_error: f64,
    /// Over candidates whose goal body truly moved at least `PUSHED_PX`: summed true and imagined
    /// displacements of the body from the start (each from its own start position).
    pushed: usize,
    pushed_true: f64,
    pushed_imagined: f64,
    /// Over candidates whose agent was located at both ends in both imaginations: summed true and
    /// imagined displacements of the agent.
    agent_moved_true: f64,
    agent_moved_imagined: f64,
    /// Per horizon step (when the model located the bodies in every imagined frame): summed
    /// distances between imagined and true positions, and how many were located in both.
    body_error_by_step: Vec<(f64, usize)>,
    agent_error_by_step: Vec<(f64, usize)>,
}

/// A candidate pushes the goal body when it truly moves at least this far (pixels).
const PUSHED_PX: f32 = 1.0;

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

impl Audit {
    /// Adds one plan's per-step positions (model and truth, `[candidate][step]`).
    fn steps(&mut self, model: &[Vec<Located>], truth: &[Vec<Located>]) {
        for (m, t) in model.iter().zip(truth) {
            let n = m.len().min(t.len());
            for sums in [&mut self.body_error_by_step, &mut self.agent_error_by_step] {
                if sums.len() < n {
                    sums.resize(n, (0.0, 0));
                }
            }
            for (s, (&(mb, ma), &(tb, ta))) in m.iter().zip(t).enumerate() {
                for (sums, pair) in [(&mut self.body_error_by_step, (mb, tb)), (&mut self.agent_error_by_step, (ma, ta))] {
                    if let (Some(a), Some(b)) = pair {
                        sums[s].0 += dist(a, b) as f64;
                        sums[s].1 += 1;
                    }
                }
            }
        }
    }

    /// Adds one plan's positions: the model's located start and imagined ends, the true start and
    /// ends.
    fn positions(&mut self, model_start: (Option<[f32; 2]>, Option<[f32; 2]>), model: &[(Option<[f32; 2]>, Option<[f32; 2]>)], true_start: (Option<[f32; 2]>, Option<[f32; 2]>), truth: &[(Option<[f32; 2]>, Option<[f32; 2]>)]) {
        let ((model_start, model_agent), (true_start, true_agent)) = (model_start, true_start);
        for (&(mb, ma), &(tb, ta)) in model.iter().zip(truth) {
            if let (Some(ms), Some(me), Some(ts), Some(te)) = (model_agent, ma, true_agent, ta) {
                self.agent_moved_true += dist(ts, te) as f64;
                self.agent_moved_imagined += dist(ms, me) as f64;
            }
            if let (Some(m), Some(t)) = (mb, tb) {
                self.body_located += 1;
                self.body_error += dist(m, t) as f64;
            }
            if let (Some(m), Some(t)) = (ma, ta) {
                self.agent_located += 1;
                self.agent_error += dist(m, t) as f64;
            }
            if let (Some(ts), Some(te)) = (true_start, tb) {
                let moved = dist(ts, te);
                if moved >= PUSHED_PX {
                    self.pushed += 1;
                    self.pushed_true += moved as f64;
                    // An imagined body that vanished or was never located counts as unmoved.
                    self.pushed_imagined += match (model_start, mb) {
                        (Some(ms), Some(me)) => dist(ms, me) as f64,
                        _ => 0.0,
                    };
                }
            }
        }
    }
}

impl Imagination for Audited<'_, '_> {
    fn costs(&mut self, candidates: &[Vec<Vec<f32>>]) -> anyhow::Result<Vec<f32>> {
        let before = self.model.lost;
        let model = self.model.costs(candidates)?;
        let after = self.model.lost;
        self.audit.lost.scored += after.scored - before.scored;
        self.audit.lost.body += after.body - before.body;
        let t0 = Instant::now();
        let truth = self.oracle.costs(candidates)?;
        self.audit.positions(self.model.located_start, &self.model.located, self.oracle.start_positions(), &self.oracle.last_positions());
        self.audit.steps(&self.model.located_steps, &self.oracle.positions);
        let pairs = |c: &[f32]| -> Vec<(f64, f64)> { c.iter().map(|&x| (x as f64, 0.0)).collect() };
        let rho = foresight::plan::policies::spearman(&pairs(&model), &pairs(&truth));
        let chosen = (0..model.len()).min_by(|&i, &j| model[i].total_cmp(&model[j])).unwrap_or(0);
        let best = truth.iter().cloned().fold(f32::INFINITY, f32::min);
        if let Some(second) = self.second.as_mut() {
            second.costs(candidates)?;
        }
        if let Some((path, seed, step)) = self.dump {
            use std::io::Write;
            let mut line = serde_json::json!({
                "seed": seed,
                "step": step,
                "model": self.model.sample_costs,
                "oracle": truth,
                "chosen": chosen,
                "model_start": self.model.located_start,
                "model_last": self.model.located,
                "oracle_start": self.oracle.start_positions(),
                "oracle_last": self.oracle.last_positions(),
                "goal_centre": self.oracle.geometry.centre,
                "shape": self.oracle.shape,
            });
            if let (Some(second), Some(obj)) = (&self.second, line.as_object_mut()) {
                obj.insert("second_model".into(), serde_json::json!(second.sample_costs));
                obj.insert("second_last".into(), serde_json::json!(second.located));
            }
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| anyhow::anyhow!("--audit-dump {}: {e}", path.display()))?;
            writeln!(f, "{line}").map_err(|e| anyhow::anyhow!("--audit-dump {}: {e}", path.display()))?;
        }
        if rho.is_finite() {
            self.audit.spearman += rho;
            self.audit.regret_px += (truth[chosen] - best) as f64;
            self.audit.calls += 1;
        }
        self.audit.seconds += t0.elapsed().as_secs_f64();
        Ok(if self.follow_oracle { truth } else { model })
    }
}

/// Random costs: the planner then executes samples of its own distribution.
pub struct RandomImagination(pub Rng);

impl Imagination for RandomImagination {
    fn costs(&mut self, candidates: &[Vec<Vec<f32>>]) -> anyhow::Result<Vec<f32>> {
        Ok(candidates.iter().map(|_| self.0.uniform()).collect())
    }
}

/// Settings of a closed-loop run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ControlConfig {
    /// The planner.
    pub planner: PlannerConfig,
    /// Execute this many actions of each plan before replanning.
    pub replan_every: usize,
    /// Steps before an episode counts as failed.
    pub max_steps: usize,
    /// Cost shaping.
    pub shape: CostShape,
    /// Model imagination: decode every imagined frame to audit the body positions at every
    /// horizon step (the extra decoding counts as planning time).
    #[serde(default)]
    pub audit_steps: bool,
    /// The world model's sampler while imagining (None: the checkpoint's default).
    pub sampler: Option<foresight::model::diffusion::SamplerConfig>,
    /// A policy whose action seeds part of the candidates (None: the mean only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<PriorKind>,
    /// Model imagination: sampled futures per candidate (`ModelImagination::samples`).
    #[serde(skip_serializing_if = "is_one")]
    pub model_samples: usize,
    /// Model imagination: a candidate's cost is its samples' mean plus this × their standard
    /// deviation (`ModelImagination::spread_weight`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub model_spread_weight: f32,
    /// Model imagination: append one JSON line per plan round to this file, with every
    /// candidate's per-sample model costs and its oracle cost (to compare cost aggregations
    /// offline on the same plans).
    #[serde(skip)]
    pub audit_dump: Option<std::path::PathBuf>,
    /// Oracle imagination with a model: the oracle plans and acts, and the model scores the same
    /// candidates alongside, audited as with `--imagination model`. The oracle's episodes do not
    /// depend on the model, so every model or sampler setting is audited on the same states and
    /// candidates (a paired comparison; the planning time is then the model's plus the oracle's).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadow_model: bool,
}

fn is_one(x: &usize) -> bool {
    *x == 1
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

/// One episode's outcome.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpisodeResult {
    /// World seed.
    pub seed: u64,
    /// Whether the goal body reached the goal region (true state).
    pub success: bool,
    /// Steps until it did (or the limit).
    pub steps: usize,
    /// Final distance of the goal body to the region's centre, pixels (true state).
    pub final_distance_px: f32,
    /// Planning seconds per executed action.
    pub seconds_per_action: f64,
    /// Model imagination: mean Spearman correlation of the model's candidate costs with the
    /// oracle's costs of the same candidates from the same true state (1: the model ranks the
    /// plans as physics would).
    #[serde(default)]
    pub cost_spearman_vs_oracle: Option<f64>,
    /// Model imagination: mean oracle cost (px) of the candidate the model ranked first, above
    /// the oracle's best candidate of the same batch.
    #[serde(default)]
    pub regret_px: Option<f64>,
    /// Model imagination: fraction of scored candidates whose last imagined frame showed no goal
    /// body (charged the largest distance).
    #[serde(default)]
    pub imagined_body_lost: Option<f64>,
    /// Model imagination: mean distance (px) between the goal body located in a candidate's last
    /// imagined frame and its true position after the same actions.
    #[serde(default)]
    pub imagined_body_error_px: Option<f64>,
    /// Model imagination: the same for the agent.
    #[serde(default)]
    pub imagined_agent_error_px: Option<f64>,
    /// Model imagination: over candidates that truly push the goal body (at least 1 px), the
    /// imagined displacement of the body over the true one (1: the model moves it as physics
    /// does; below 1: it under-reacts to contact).
    #[serde(default)]
    pub imagined_push_ratio: Option<f64>,
    /// Model imagination: how many candidates truly pushed the goal body.
    #[serde(default)]
    pub pushing_candidates: Option<usize>,
    /// Model imagination: the agent's imagined displacement over its true one, summed over the
    /// candidates (1: the model moves the agent as far as physics does).
    #[serde(default)]
    pub imagined_agent_motion_ratio: Option<f64>,
    /// Model imagination with the per-step audit: `imagined_body_error_px` at horizon steps
    /// 1, 2, ..., H.
    #[serde(default)]
    pub imagined_body_error_px_by_step: Option<Vec<f64>>,
    /// The same for the agent.
    #[serde(default)]
    pub imagined_agent_error_px_by_step: Option<Vec<f64>>,
}

/// What the first episode looked like: real frames and, per step, the imagined frame of it.
pub struct Filmstrip {
    /// Real frames, one per step (the first is the start).
    pub real: Vec<Vec<u8>>,
    /// The imagination's frame for the same step (model: decoded; oracle: rendered), if any.
    pub imagined: Vec<Option<Vec<u8>>>,
}

/// Runs one episode from `seed` in the true scene. `film` collects frames when given. With the
/// model as imagination (or shadowing the oracle) and `cfg.audit_dump`, a `second` model scores
/// the same candidates from the same context beside it, for the dump only (a paired comparison of
/// two checkpoints on the states the first one plans through).
#[allow(clippy::too_many_arguments)]
pub fn run_episode<'m>(
    scene: &Arc<Scene>,
    seed: u64,
    kind: ImaginationKind,
    model: Option<&'m WorldModel>,
    second: Option<&'m WorldModel>,
    oracle: &mut Oracle,
    cfg: &ControlConfig,
    mut film: Option<&mut Filmstrip>,
) -> anyhow::Result<EpisodeResult> {
    let geometry = GoalGeometry::new(scene).ok_or_else(|| anyhow::anyhow!("scene `{}` has no goal to plan for", scene.name))?;
    let low: Vec<f32> = scene.actions.iter().map(|a| a.low).collect();
    let high: Vec<f32> = scene.actions.iter().map(|a| a.high).collect();
    let mut planner = Planner::new(PlannerConfig { seed: cfg.planner.seed ^ seed, ..cfg.planner.clone() }, low, high).map_err(|e| anyhow::anyhow!(e))?;
    let camera = PixelCamera::new(&scene.camera);
    let mut world = SimWorld::new(scene.clone(), seed)?;
    let k = model.map_or(1, |m| m.meta.context);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut actions: Vec<Vec<f32>> = Vec::new();
    let needs_frames = kind == ImaginationKind::Model || cfg.shadow_model || film.is_some() || cfg.prior.is_some();
    if needs_frames {
        frames.push(oracle.observe(&[&world])?.remove(0));
    }
    // The prior policy acts on every real frame (its velocity estimate needs each of them).
    let mut prior = match cfg.prior {
        Some(PriorKind::Scripted) => Some(FramePolicy::new(scene, FramePolicyKind::Scripted { noise: 0.0 }, seed).map_err(|e| anyhow::anyhow!("--prior: {e}"))?),
        None => None,
    };
    let mut prior_action = prior.as_mut().map(|p| p.act(&frames[0]));
    if let Some(f) = film.as_deref_mut() {
        f.real.push(frames[0].clone());
        f.imagined.push(None);
    }
    let mut rng = Rng::new(seed ^ 0x7261_6e64);
    let mut planning = 0.0f64;
    let mut audit = Audit::default();
    let inside = |w: &SimWorld| {
        let s = w.body_states();
        camera.project(s[geometry.body].position).is_some_and(|p| geometry.inside(p))
    };
    let mut steps = 0;
    let mut success = inside(&world);
    while !success && steps < cfg.max_steps {
        let t0 = Instant::now();
        planner.set_prior(prior_action.clone().map(|a| vec![a])).map_err(|e| anyhow::anyhow!("prior: {e}"))?;
        let plan = match kind {
            ImaginationKind::Oracle if !cfg.shadow_model => planner.plan(&mut OracleImagination::new(&world, &geometry, cfg.shape))?,
            ImaginationKind::Random => planner.plan(&mut RandomImagination(Rng::new(rng.next_u64())))?,
            ImaginationKind::Model | ImaginationKind::Oracle => {
                let m = model.ok_or_else(|| anyhow::anyhow!("--imagination model (and --shadow-model) needs --checkpoint"))?;
                let from = frames.len().saturating_sub(k);
                let ctx = frames[from..].to_vec();
                let past = actions[actions.len() + 1 - ctx.len()..].to_vec();
                let cost = ModelCost::Task { geometry: geometry.clone(), approach: cfg.shape.approach, standoff: cfg.shape.standoff, around: cfg.shape.around, running: cfg.shape.running, push_gain: cfg.shape.model_push_gain, agent_gain: cfg.shape.model_agent_gain, push_deadzone: cfg.shape.model_push_deadzone, contact_gate: cfg.shape.model_contact_gate };
                let imagine = |m: &'m WorldModel| -> anyhow::Result<ModelImagination<'m>> {
                    let mut im = ModelImagination::new(m, ctx.clone(), Some(past.clone()), cfg.sampler.unwrap_or(m.meta.sampler), cost.clone(), seed ^ steps as u64)?;
                    im.samples = cfg.model_samples.max(1);
                    im.spread_weight = cfg.model_spread_weight;
                    Ok(im)
                };
                let second = second.map(imagine).transpose()?;
                let mut model = imagine(m)?;
                model.every_step = cfg.audit_steps;
                let before = audit.seconds;
                let dump = cfg.audit_dump.as_deref().map(|p| (p, seed, steps));
                let follow_oracle = kind == ImaginationKind::Oracle;
                let plan = planner.plan(&mut Audited { model, oracle: OracleImagination::new(&world, &geometry, cfg.shape), audit: &mut audit, dump, follow_oracle, second })?;
                if !follow_oracle {
                    planning -= audit.seconds - before;
                }
                plan
            }
        };
        planning += t0.elapsed().as_secs_f64();
        let n = cfg.replan_every.clamp(1, plan.best.len());
        // What the imagination expected for the executed steps (first episode only).
        let imagined: Vec<Vec<u8>> = match (&film, kind) {
            (Some(_), ImaginationKind::Model) => {
                let m = model.ok_or_else(|| anyhow::anyhow!("no model"))?;
                let from = frames.len().saturating_sub(k);
                let q = foresight::world_model::Query { context: frames[from..].to_vec(), past_actions: Some(actions[actions.len() + 1 - (frames.len() - from)..].to_vec()), actions: plan.best[..n].to_vec(), samples: 1, seed };
                m.predict(&q, &m.meta.sampler)?.frames.remove(0)
            }
            (Some(_), ImaginationKind::Oracle) => {
                let ep = oracle.replay(&world, &plan.best[..n])?;
                (1..ep.num_frames()).map(|t| ep.frame(t).to_vec()).collect()
            }
            _ => Vec::new(),
        };
        for (i, a) in plan.best[..n].iter().enumerate() {
            world.step(a)?;
            actions.push(a.clone());
            steps += 1;
            if needs_frames {
                frames.push(oracle.observe(&[&world])?.remove(0));
                if let (Some(p), Some(f)) = (prior.as_mut(), frames.last()) {
                    prior_action = Some(p.act(f));
                }
                if frames.len() > k + 1 && film.is_none() {
                    frames.remove(0);
                    actions.remove(0);
                }
            }
            if let Some(f) = film.as_deref_mut() {
                f.real.push(frames.last().cloned().unwrap_or_default());
                f.imagined.push(imagined.get(i).cloned());
            }
            success = inside(&world);
            if success || steps >= cfg.max_steps {
                break;
            }
        }
        planner.shift(n);
    }
    let s = world.body_states();
    let final_distance_px = geometry.distance_px(camera.project(s[geometry.body].position));
    let audited = |x: f64| (audit.calls > 0).then(|| x / audit.calls as f64);
    Ok(EpisodeResult {
        seed,
        success,
        steps,
        final_distance_px,
        seconds_per_action: planning / steps.max(1) as f64,
        cost_spearman_vs_oracle: audited(audit.spearman),
        regret_px: audited(audit.regret_px),
        imagined_body_lost: (audit.lost.scored > 0).then(|| audit.lost.body as f64 / audit.lost.scored as f64),
        imagined_body_error_px: (audit.body_located > 0).then(|| audit.body_error / audit.body_located as f64),
        imagined_agent_error_px: (audit.agent_located > 0).then(|| audit.agent_error / audit.agent_located as f64),
        imagined_push_ratio: (audit.pushed > 0).then(|| audit.pushed_imagined / audit.pushed_true),
        pushing_candidates: (audit.calls > 0).then_some(audit.pushed),
        imagined_agent_motion_ratio: (audit.agent_moved_true > 0.0).then(|| audit.agent_moved_imagined / audit.agent_moved_true),
        imagined_body_error_px_by_step: by_step(&audit.body_error_by_step),
        imagined_agent_error_px_by_step: by_step(&audit.agent_error_by_step),
    })
}

/// Mean error per horizon step (None when nothing was audited per step).
fn by_step(sums: &[(f64, usize)]) -> Option<Vec<f64>> {
    (!sums.is_empty()).then(|| sums.iter().map(|&(e, n)| if n > 0 { e / n as f64 } else { f64::NAN }).collect())
}

/// Wilson score interval of a success rate at 95%.
pub fn wilson95(successes: usize, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let (p, n, z) = (successes as f64 / n as f64, n as f64, 1.96f64);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Position errors and the push ratio on fixed positions: two candidates truly push the
    /// body (4 px and 2 px), the model moves it 1 px in the first and loses it in the second;
    /// a third candidate does not push.
    #[test]
    fn audit_positions_measure_errors_and_how_far_pushes_are_imagined() {
        let mut a = Audit::default();
        let model = [(Some([11.0, 10.0]), Some([0.0, 0.0])), (None, Some([3.0, 4.0])), (Some([10.0, 10.0]), Some([5.0, 5.0]))];
        let truth = [(Some([14.0, 10.0]), Some([0.0, 0.0])), (Some([10.0, 12.0]), Some([0.0, 0.0])), (Some([10.0, 10.5]), Some([5.0, 5.0]))];
        a.positions((Some([10.0, 10.0]), Some([0.0, 0.0])), &model, (Some([10.0, 10.0]), Some([0.0, 0.0])), &truth);
        assert_eq!((a.body_located, a.agent_located, a.pushed), (2, 3, 2));
        assert!((a.body_error - (3.0 + 0.5)).abs() < 1e-6, "{}", a.body_error);
        assert!((a.agent_error - 5.0).abs() < 1e-6, "{}", a.agent_error);
        assert!((a.pushed_true - 6.0).abs() < 1e-6 && (a.pushed_imagined - 1.0).abs() < 1e-6);
        // The agent: imagined 0 + 5 + √50 against true 0 + 0 + √50.
        assert!((a.agent_moved_true - 50f64.sqrt()).abs() < 1e-5 && (a.agent_moved_imagined - 5.0 - 50f64.sqrt()).abs() < 1e-5);
    }

    /// Per-step errors: two candidates of two steps; a body missing in the model's frame is left
    /// out of that step's mean, and a candidate with fewer steps only adds to the first.
    #[test]
    fn audit_steps_average_errors_per_horizon_step() {
        let mut a = Audit::default();
        let p = |x: f32| Some([x, 0.0]);
        let model = vec![vec![(p(1.0), p(0.0)), (p(2.0), p(0.0))], vec![(None, p(3.0))]];
        let truth = vec![vec![(p(0.0), p(0.0)), (p(5.0), p(4.0))], vec![(p(9.0), p(0.0)), (p(9.0), p(0.0))]];
        a.steps(&model, &truth);
        assert_eq!(a.body_error_by_step, vec![(1.0, 1), (3.0, 1)]);
        assert_eq!(a.agent_error_by_step, vec![(3.0, 2), (4.0, 1)]);
        assert_eq!(by_step(&a.agent_error_by_step), Some(vec![1.5, 4.0]));
        assert_eq!(by_step(&[]), None);
    }
}
