//! The world model as the planner's imagination: candidates roll forward in latent space in one
//! batched call per step ([`WorldModel::rollout_latent`]); the cost is read from the last
//! predicted state (or, with a running task cost, the mean over every predicted state), either the
//! task cost on bodies located by colour in its decoded frames, or the distance to a goal image's
//! latent (V-JEPA 2-AC plans this way). With several sampled futures per candidate its cost is
//! their mean, optionally plus a multiple of their spread.

use candle_core::Tensor;

use super::cost::GoalGeometry;
use super::Imagination;
use crate::model::diffusion::SamplerConfig;
use crate::world_model::{Query, WorldModel};

/// What a predicted future is scored by.
#[derive(Debug, Clone)]
pub enum ModelCost {
    /// [`GoalGeometry::cost`] on the last predicted frame (decoded, bodies located by colour), or
    /// with `running` its mean over every predicted frame of the horizon.
    Task {
        /// The scene's goal in pixels.
        geometry: GoalGeometry,
        /// Weight of the agent's distance to its pushing position.
        approach: f32,
        /// Pixels behind the body where a push starts.
        standoff: f32,
        /// Radius (pixels) the agent's approach keeps from the body's centre (0: straight).
        around: f32,
        /// Average the cost over the horizon's frames instead of taking the last one's.
        running: bool,
        /// The goal body's imagined displacement from where it is located in the last context
        /// frame is multiplied by this before costing (1: as imagined). Meant for a model that
        /// under-reacts to contact (its pushes imagined at a fraction of their true length, as
        /// the planner's audit measures); it scales the model's location error as well, and with
        /// the shipped push 1.3 planned worse than 1 (README, session 26).
        push_gain: f32,
        /// The same for the agent, from where it is located in the last context frame (1: as
        /// imagined). Meant for a model that under-predicts the agent's travel under held,
        /// saturated actions (`imagined_agent_motion_ratio`; session 27 measured 0.79 on the
        /// model planner's own states).
        agent_gain: f32,
        /// The goal body's imagined displacement is shortened by this many pixels before the
        /// gain (0: as imagined): the model imagines the block drifting by a pixel or two
        /// (towards the goal and along the agent's motion) where it truly stays put, and a
        /// planner reading costs from its frames takes those ghost pushes for progress
        /// (session 28: 1.3 px on average on the model planner's own states).
        push_deadzone: f32,
        /// When positive, a sample whose imagined agent never comes within this many pixels of
        /// the goal body's located start (in any imagined frame) leaves the body where it was:
        /// the model imagines the block drifting a pixel or two with the agent far from it, and
        /// with the agent out of reach that drift is all the body term ranks (session 29). The
        /// model then decodes every imagined frame.
        contact_gate: f32,
    },
    /// Mean squared distance of the last predicted latent to this goal latent (normalised units,
    /// `C*h*w` values, from [`WorldModel::encode`] of a goal image).
    GoalLatent(Vec<f32>),
}

/// `imagined` moved away from `start` by `gain` times its imagined displacement, after that
/// displacement is shortened by `deadzone` pixels (one shorter than that counts as none; either
/// position missing: `imagined` as it is).
pub fn calibrated_position(start: Option<[f32; 2]>, imagined: Option<[f32; 2]>, gain: f32, deadzone: f32) -> Option<[f32; 2]> {
    match (start, imagined) {
        (Some(s), Some(b)) => {
            let v = [b[0] - s[0], b[1] - s[1]];
            let len = (v[0] * v[0] + v[1] * v[1]).sqrt();
            let keep = if deadzone > 0.0 { (len - deadzone).max(0.0) / len.max(1e-6) } else { 1.0 };
            Some([s[0] + gain * keep * v[0], s[1] + gain * keep * v[1]])
        }
        _ => imagined,
    }
}

/// Whether an agent that followed `path` (its located positions, frame by frame) stayed at least
/// `gate` pixels from `body` (the goal body's start) all along. False without a body, a positive
/// gate or any located agent position: nothing to judge by.
pub fn out_of_reach(body: Option<[f32; 2]>, path: impl IntoIterator<Item = Option<[f32; 2]>>, gate: f32) -> bool {
    let Some(b) = body.filter(|_| gate > 0.0) else { return false };
    let mut seen = false;
    for a in path.into_iter().flatten() {
        if ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt() < gate {
            return false;
        }
        seen = true;
    }
    seen
}

/// Imagines with a world model from the current context.
pub struct ModelImagination<'a> {
    model: &'a WorldModel,
    context: Vec<Vec<u8>>,
    past: Option<Vec<Vec<f32>>>,
    start: Tensor,
    sampler: SamplerConfig,
    cost: ModelCost,
    seed: u64,
    /// With the task cost: candidates scored, and how many of their last frames showed no goal
    /// body (located by colour).
    pub lost: LostCount,
    /// With the task cost: the goal body and the agent located in the last context frame, and in
    /// each candidate's last imagined frame of the latest `costs` call (pixels; None: not found).
    pub located_start: (Option<[f32; 2]>, Option<[f32; 2]>),
    /// See `located_start`.
    pub located: Vec<(Option<[f32; 2]>, Option<[f32; 2]>)>,
    /// With the task cost: decode every imagined frame (not only the last) and locate the bodies
    /// in each, into `located_steps` (for audits; a running cost does it anyway).
    pub every_step: bool,
    /// Per candidate, the goal body and the agent in each imagined frame (empty unless
    /// `every_step` or a running cost).
    pub located_steps: Vec<Vec<(Option<[f32; 2]>, Option<[f32; 2]>)>>,
    /// Sampled futures per candidate (1: one). All candidates share the noise of each sample
    /// (common random numbers), so their costs differ by their actions only.
    pub samples: usize,
    /// A candidate's cost is the mean of its samples' costs plus this times their standard
    /// deviation (0: the mean; positive: pessimistic where the model's futures disagree, as
    /// ensemble planners such as PETS penalise epistemic spread).
    pub spread_weight: f32,
    /// Per candidate, each sample's cost in the latest `costs` call.
    pub sample_costs: Vec<Vec<f32>>,
}

/// The cost of one candidate from its samples' costs: mean plus `spread_weight` × standard
/// deviation (population).
pub fn aggregate_samples(costs: &[f32], spread_weight: f32) -> f32 {
    let n = costs.len().max(1) as f32;
    let mean = costs.iter().sum::<f32>() / n;
    if spread_weight == 0.0 {
        return mean;
    }
    let var = costs.iter().map(|c| (c - mean).powi(2)).sum::<f32>() / n;
    mean + spread_weight * var.sqrt()
}

/// Mean of the positions found (None when none is).
fn mean_position(found: impl Iterator<Item = Option<[f32; 2]>>) -> Option<[f32; 2]> {
    let (mut sum, mut n) = ([0.0f32; 2], 0usize);
    for p in found.flatten() {
        sum[0] += p[0];
        sum[1] += p[1];
        n += 1;
    }
    (n > 0).then(|| [sum[0] / n as f32, sum[1] / n as f32])
}

/// How often imagined last frames lost a body (the task cost then charges the most).
#[derive(Debug, Default, Clone, Copy)]
pub struct LostCount {
    /// Candidates scored.
    pub scored: usize,
    /// Of those, frames without the goal body.
    pub body: usize,
}

impl<'a> ModelImagination<'a> {
    /// From the last frames (1 to K) and the actions between them.
    pub fn new(model: &'a WorldModel, context: Vec<Vec<u8>>, past: Option<Vec<Vec<f32>>>, sampler: SamplerConfig, cost: ModelCost, seed: u64) -> anyhow::Result<Self> {
        let refs: Vec<&[u8]> = context.iter().map(|f| f.as_slice()).collect();
        let start = model.encode(&refs)?;
        if let ModelCost::GoalLatent(g) = &cost {
            let n: usize = model.meta.dit.latent.iter().product();
            anyhow::ensure!(g.len() == n, "the goal latent has {} values; the model's latent has {n}", g.len());
        }
        let located_start = match (&cost, context.last()) {
            (ModelCost::Task { geometry, .. }, Some(f)) => geometry.locate(f),
            _ => (None, None),
        };
        Ok(ModelImagination { model, context, past, start, sampler, cost, seed, lost: LostCount::default(), located_start, located: Vec::new(), every_step: false, located_steps: Vec::new(), samples: 1, spread_weight: 0.0, sample_costs: Vec::new() })
    }
}

impl Imagination for ModelImagination<'_> {
    fn costs(&mut self, candidates: &[Vec<Vec<f32>>]) -> anyhow::Result<Vec<f32>> {
        let k = self.samples.max(1);
        let queries: Vec<Query> = candidates.iter().map(|c| Query { context: self.context.clone(), past_actions: self.past.clone(), actions: c.clone(), samples: k, seed: self.seed }).collect();
        let starts = vec![self.start.clone(); queries.len()];
        // Per candidate `(k, steps, C, h, w)`.
        let futures = self.model.rollout_latent(&queries, &starts, &self.sampler)?;
        let last = |z: &Tensor| -> candle_core::Result<Tensor> { z.narrow(1, z.dim(1)? - 1, 1)?.squeeze(1) };
        let weight = self.spread_weight;
        match &self.cost {
            ModelCost::Task { geometry, approach, standoff, around, running, push_gain, agent_gain, push_deadzone, contact_gate } => {
                let (from, agent_from) = self.located_start;
                let calibrated = |b: Option<[f32; 2]>| calibrated_position(from, b, *push_gain, *push_deadzone);
                let moved = |a: Option<[f32; 2]>| calibrated_position(agent_from, a, *agent_gain, 0.0);
                // Every frame of every sample of every candidate (`(k * steps, C, h, w)` each), or
                // only the last ones (`(k, C, h, w)`).
                let all = self.every_step || *running || *contact_gate > 0.0;
                let picked: Vec<Tensor> = futures.iter().map(|z| if all { z.flatten(0, 1) } else { last(z) }).collect::<candle_core::Result<_>>()?;
                let per = picked.first().map_or(Ok(k), |z| z.dim(0))?.max(k);
                let steps = per / k;
                let frames = self.model.decode(&Tensor::cat(&picked, 0)?)?;
                self.located.clear();
                self.located_steps.clear();
                self.sample_costs.clear();
                let mut costs = Vec::with_capacity(candidates.len());
                for cand in frames.chunks(per) {
                    // Per sample, the bodies in each of its frames.
                    let at: Vec<Vec<(Option<[f32; 2]>, Option<[f32; 2]>)>> = cand.chunks(steps).map(|seq| seq.iter().map(|f| geometry.locate(f)).collect()).collect();
                    let per_sample: Vec<f32> = at
                        .iter()
                        .map(|seq| {
                            let (body, agent) = seq[seq.len() - 1];
                            self.lost.scored += 1;
                            self.lost.body += body.is_none() as usize;
                            // Out of the agent's reach, the body stays where it was.
                            let stays = out_of_reach(from, seq.iter().map(|q| q.1), *contact_gate);
                            let reached = |b: Option<[f32; 2]>| if stays { from } else { calibrated(b) };
                            if *running {
                                seq.iter().map(|&(b, a)| geometry.cost(reached(b), moved(a), *approach, *standoff, *around)).sum::<f32>() / seq.len() as f32
                            } else {
                                geometry.cost(reached(body), moved(agent), *approach, *standoff, *around)
                            }
                        })
                        .collect();
                    costs.push(aggregate_samples(&per_sample, weight));
                    self.sample_costs.push(per_sample);
                    // The audit's positions: the mean over the samples that show the body.
                    let mean_at = |s: usize| (mean_position(at.iter().map(|q| q[s].0)), mean_position(at.iter().map(|q| q[s].1)));
                    self.located.push(mean_at(steps - 1));
                    if all {
                        self.located_steps.push((0..steps).map(mean_at).collect());
                    }
                }
                Ok(costs)
            }
            ModelCost::GoalLatent(goal) => {
                let n = goal.len();
                let goal = Tensor::from_vec(goal.clone(), (1, n), self.model.device())?;
                // `(candidates * k, n)`: every sample's last latent.
                let last = Tensor::cat(&futures.iter().map(|z| last(z)?.flatten_from(1)).collect::<candle_core::Result<Vec<_>>>()?, 0)?;
                let d = last.broadcast_sub(&goal)?.sqr()?.mean(1)?.to_vec1::<f32>()?;
                self.sample_costs = d.chunks(k).map(|c| c.to_vec()).collect();
                Ok(self.sample_costs.iter().map(|c| aggregate_samples(c, weight)).collect())
            }
        }
    }
}
