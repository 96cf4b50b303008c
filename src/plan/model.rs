//! The world model as the planner's imagination: candidates roll forward in latent space in one
//! batched call per step ([`WorldModel::rollout_latent`]); the cost is read from the last
//! predicted state (or, with a running task cost, the mean over every predicted state), either the
//! task cost on bodies located by colour in its decoded frames, or the distance to a goal image's
//! latent (V-JEPA 2-AC plans this way).

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
        /// Average the cost over the horizon's frames instead of taking the last one's.
        running: bool,
        /// The goal body's imagined displacement from where it is located in the last context
        /// frame is multiplied by this before costing (1: as imagined). Meant for a model that
        /// under-reacts to contact (its pushes imagined at a fraction of their true length, as
        /// the planner's audit measures); it scales the model's location error as well, and with
        /// the shipped push 1.3 planned worse than 1 (README, session 26).
        push_gain: f32,
    },
    /// Mean squared distance of the last predicted latent to this goal latent (normalised units,
    /// `C*h*w` values, from [`WorldModel::encode`] of a goal image).
    GoalLatent(Vec<f32>),
}

/// `imagined` moved away from `start` by `gain` times its imagined displacement (either missing:
/// `imagined` as it is).
pub fn calibrated_position(start: Option<[f32; 2]>, imagined: Option<[f32; 2]>, gain: f32) -> Option<[f32; 2]> {
    match (start, imagined) {
        (Some(s), Some(b)) => Some([s[0] + gain * (b[0] - s[0]), s[1] + gain * (b[1] - s[1])]),
        _ => imagined,
    }
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
        Ok(ModelImagination { model, context, past, start, sampler, cost, seed, lost: LostCount::default(), located_start, located: Vec::new(), every_step: false, located_steps: Vec::new() })
    }
}

impl Imagination for ModelImagination<'_> {
    fn costs(&mut self, candidates: &[Vec<Vec<f32>>]) -> anyhow::Result<Vec<f32>> {
        let queries: Vec<Query> = candidates.iter().map(|c| Query { context: self.context.clone(), past_actions: self.past.clone(), actions: c.clone(), samples: 1, seed: self.seed }).collect();
        let starts = vec![self.start.clone(); queries.len()];
        let futures = self.model.rollout_latent(&queries, &starts, &self.sampler)?;
        let last = |z: &Tensor| -> candle_core::Result<Tensor> { z.narrow(1, z.dim(1)? - 1, 1)?.squeeze(1)?.squeeze(0) };
        match &self.cost {
            ModelCost::Task { geometry, approach, standoff, running, push_gain } => {
                let from = self.located_start.0;
                let calibrated = |b: Option<[f32; 2]>| calibrated_position(from, b, *push_gain);
                // Every frame of every candidate (`(steps, C, h, w)` each), or only the last ones.
                let all = self.every_step || *running;
                let picked: Vec<Tensor> = futures.iter().map(|z| if all { z.squeeze(0) } else { last(z)?.unsqueeze(0) }).collect::<candle_core::Result<_>>()?;
                let per = picked.first().map_or(Ok(1), |z| z.dim(0))?.max(1);
                let frames = self.model.decode(&Tensor::cat(&picked, 0)?)?;
                self.located.clear();
                self.located_steps.clear();
                let mut costs = Vec::with_capacity(candidates.len());
                for seq in frames.chunks(per) {
                    let at: Vec<(Option<[f32; 2]>, Option<[f32; 2]>)> = seq.iter().map(|f| geometry.locate(f)).collect();
                    let (body, agent) = at[at.len() - 1];
                    self.lost.scored += 1;
                    self.lost.body += body.is_none() as usize;
                    self.located.push((body, agent));
                    costs.push(if *running {
                        at.iter().map(|&(b, a)| geometry.cost(calibrated(b), a, *approach, *standoff)).sum::<f32>() / at.len() as f32
                    } else {
                        geometry.cost(calibrated(body), agent, *approach, *standoff)
                    });
                    if all {
                        self.located_steps.push(at);
                    }
                }
                Ok(costs)
            }
            ModelCost::GoalLatent(goal) => {
                let n = goal.len();
                let goal = Tensor::from_vec(goal.clone(), (1, n), self.model.device())?;
                let last = Tensor::stack(&futures.iter().map(last).collect::<candle_core::Result<Vec<_>>>()?, 0)?;
                let d = last.flatten_from(1)?.broadcast_sub(&goal)?.sqr()?.mean(1)?;
                Ok(d.to_vec1::<f32>()?)
            }
        }
    }
}
