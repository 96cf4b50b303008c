//! Model-predictive control in imagination: the cross-entropy method (CEM) or MPPI over action
//! sequences of horizon H, every candidate of an iteration scored in one batched call of an
//! [`Imagination`] (the world model in latent space, or the physics oracle), replanning every
//! step (or every few) with the previous plan shifted as the warm start.

pub mod cost;
pub mod model;
pub mod policies;

use crate::rng::Rng;

/// Scores candidate action sequences from the current state; lower is better.
pub trait Imagination {
    /// `candidates[n][t]` is the action at step `t` of candidate `n` (in the scene's units).
    fn costs(&mut self, candidates: &[Vec<Vec<f32>>]) -> anyhow::Result<Vec<f32>>;
}

/// How candidates are turned into the next distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Refit mean and standard deviation to the `elites` cheapest candidates.
    Cem,
    /// Model-predictive path integral: a softmax-weighted mean of all candidates.
    Mppi,
}

/// Planner settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PlannerConfig {
    /// Steps imagined.
    pub horizon: usize,
    /// Candidates per iteration (scored in one call).
    pub candidates: usize,
    /// Refinement iterations per plan.
    pub iterations: usize,
    /// CEM: candidates kept.
    pub elites: usize,
    /// CEM or MPPI.
    pub method: Method,
    /// MPPI temperature, as a fraction of the mean cost gap to the best candidate.
    pub temperature: f32,
    /// Starting standard deviation, as a fraction of each channel's range.
    pub init_std: f32,
    /// Floor of the standard deviation (fraction of range).
    pub min_std: f32,
    /// Weight of the old mean when refitting (0 = replace).
    pub momentum: f32,
    /// Seed of the candidate noise.
    pub seed: u64,
    /// Steps that share one noise draw: candidates deviate from the mean by piecewise-constant
    /// noise (1: white noise per step). Held noise searches `horizon / hold` directions instead
    /// of `horizon`, so few candidates find sustained pushes.
    #[serde(default = "one")]
    pub hold: usize,
    /// Share of the noisy candidates drawn around a prior sequence ([`Planner::set_prior`], for
    /// example what a frame policy would do now) instead of around the mean; candidate 1 is the
    /// prior itself. Planning near a behaviour policy keeps the search where a learned model was
    /// trained (MBOP, TD-MPC's policy samples). Without a prior the setting does nothing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prior_share: f32,
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

fn one() -> usize {
    1
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig { horizon: 8, candidates: 64, iterations: 3, elites: 8, method: Method::Cem, temperature: 0.1, init_std: 0.5, min_std: 0.05, momentum: 0.1, seed: 0, hold: 4, prior_share: 0.0 }
    }
}

impl PlannerConfig {
    /// Refuses settings that cannot plan.
    pub fn validate(&self) -> Result<(), String> {
        if self.horizon == 0 || self.candidates < 2 || self.iterations == 0 || self.hold == 0 {
            return Err(format!("horizon {} / candidates {} / iterations {} / hold {}: need at least 1 / 2 / 1 / 1", self.horizon, self.candidates, self.iterations, self.hold));
        }
        if self.method == Method::Cem && (self.elites == 0 || self.elites > self.candidates) {
            return Err(format!("elites {} must be in 1..={}", self.elites, self.candidates));
        }
        if !(self.temperature > 0.0) || !(self.init_std > 0.0) || self.min_std < 0.0 || !(0.0..1.0).contains(&self.momentum) {
            return Err("temperature and init_std must be positive, min_std non-negative, momentum in [0, 1)".into());
        }
        if !(0.0..=1.0).contains(&self.prior_share) {
            return Err(format!("prior share {} must be in [0, 1]", self.prior_share));
        }
        Ok(())
    }
}

/// The result of one plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The cheapest sequence seen (H actions); its first action is executed.
    pub best: Vec<Vec<f32>>,
    /// Its cost.
    pub best_cost: f32,
    /// The final mean sequence.
    pub mean: Vec<Vec<f32>>,
    /// Candidates scored.
    pub evaluated: usize,
}

/// CEM / MPPI planner with warm start.
#[derive(Debug, Clone)]
pub struct Planner {
    cfg: PlannerConfig,
    low: Vec<f32>,
    high: Vec<f32>,
    mean: Vec<Vec<f32>>,
    prior: Option<Vec<Vec<f32>>>,
    rng: Rng,
}

impl Planner {
    /// A planner for actions within `low..=high` per channel.
    pub fn new(cfg: PlannerConfig, low: Vec<f32>, high: Vec<f32>) -> Result<Self, String> {
        cfg.validate()?;
        if low.len() != high.len() || low.is_empty() || low.iter().zip(&high).any(|(l, h)| !(h > l)) {
            return Err("action bounds must be non-empty with low < high".into());
        }
        let mid: Vec<f32> = low.iter().zip(&high).map(|(l, h)| (l + h) / 2.0).collect();
        let rng = Rng::new(cfg.seed ^ 0x706c_616e);
        Ok(Planner { mean: vec![mid; cfg.horizon], prior: None, cfg, low, high, rng })
    }

    /// The settings.
    pub fn config(&self) -> &PlannerConfig {
        &self.cfg
    }

    /// Forgets the warm start (a new episode).
    pub fn reset(&mut self) {
        let mid: Vec<f32> = self.low.iter().zip(&self.high).map(|(l, h)| (l + h) / 2.0).collect();
        self.mean = vec![mid; self.cfg.horizon];
    }

    /// The prior sequence of the next plans (`None`: none). Shorter sequences repeat their last
    /// action to the horizon; candidates made from it are clamped to the bounds like the others.
    pub fn set_prior(&mut self, prior: Option<Vec<Vec<f32>>>) -> Result<(), String> {
        self.prior = match prior {
            None => None,
            Some(p) => {
                let a = self.low.len();
                let last = p.last().ok_or("an empty prior sequence")?.clone();
                if p.iter().any(|x| x.len() != a || x.iter().any(|v| !v.is_finite())) {
                    return Err(format!("prior actions must have {a} finite values each"));
                }
                Some((0..self.cfg.horizon).map(|t| p.get(t).unwrap_or(&last).clone()).collect())
            }
        };
        Ok(())
    }

    /// How many candidates of a round are centred on the prior (the first of them is the prior
    /// itself): none without a prior.
    fn prior_candidates(&self) -> usize {
        match self.prior {
            Some(_) if self.cfg.prior_share > 0.0 => (((self.cfg.candidates - 1) as f32 * self.cfg.prior_share).round() as usize).max(1),
            _ => 0,
        }
    }

    /// Warm start after executing `steps` actions: the mean moves forward, the tail repeats.
    pub fn shift(&mut self, steps: usize) {
        for _ in 0..steps.min(self.cfg.horizon) {
            self.mean.remove(0);
            let last = self.mean.last().cloned().unwrap_or_else(|| self.low.iter().zip(&self.high).map(|(l, h)| (l + h) / 2.0).collect());
            self.mean.push(last);
        }
    }

    /// Plans from the current state of `imagination`: [`Planner::iterations`] rounds of
    /// [`Planner::propose`], one batched scoring call, [`Planner::update`].
    pub fn plan(&mut self, imagination: &mut dyn Imagination) -> anyhow::Result<Plan> {
        let mut search = self.begin();
        for _ in 0..self.cfg.iterations {
            let cands = self.propose(&search);
            let costs = imagination.costs(&cands)?;
            self.update(&mut search, &cands, &costs)?;
        }
        Ok(self.finish(search))
    }

    /// Starts a search (for callers that score candidates asynchronously, such as a Bevy agent
    /// waiting on the plugin): then `iterations` times `propose` / score / `update`, and `finish`.
    pub fn begin(&self) -> Search {
        let range: Vec<f32> = self.low.iter().zip(&self.high).map(|(l, h)| h - l).collect();
        Search { std: vec![range.iter().map(|r| r * self.cfg.init_std).collect(); self.cfg.horizon], best: None, evaluated: 0, iteration: 0 }
    }

    /// Candidates for the next round; candidate 0 is the current mean (the warm start). The
    /// others add noise scaled by the search's standard deviation, one draw per `hold` steps.
    /// With a prior and a prior share, candidates 1.. (that share of them) are the prior and the
    /// prior plus such noise.
    pub fn propose(&mut self, search: &Search) -> Vec<Vec<Vec<f32>>> {
        let (h, a, hold) = (self.cfg.horizon, self.low.len(), self.cfg.hold);
        let around_prior = self.prior_candidates();
        (0..self.cfg.candidates)
            .map(|n| {
                let centre = match &self.prior {
                    Some(p) if n >= 1 && n <= around_prior => p,
                    _ => &self.mean,
                };
                let exact = n == 0 || (n == 1 && around_prior > 0);
                let draws: Vec<Vec<f32>> = (0..h.div_ceil(hold)).map(|_| (0..a).map(|_| if exact { 0.0 } else { self.rng.normal() }).collect()).collect();
                (0..h).map(|t| (0..a).map(|k| (centre[t][k] + draws[t / hold][k] * search.std[t][k]).clamp(self.low[k], self.high[k])).collect()).collect()
            })
            .collect()
    }

    /// Refits the distribution to scored candidates.
    pub fn update(&mut self, search: &mut Search, cands: &[Vec<Vec<f32>>], costs: &[f32]) -> anyhow::Result<()> {
        let (h, a) = (self.cfg.horizon, self.low.len());
        let range: Vec<f32> = self.low.iter().zip(&self.high).map(|(l, h)| h - l).collect();
        anyhow::ensure!(costs.len() == cands.len() && !cands.is_empty(), "the imagination scored {} of {} candidates", costs.len(), cands.len());
        search.evaluated += cands.len();
        search.iteration += 1;
        let mut order: Vec<usize> = (0..cands.len()).collect();
        order.sort_by(|&i, &j| costs[i].total_cmp(&costs[j]));
        let top = order[0];
        if costs[top].is_finite() && search.best.as_ref().is_none_or(|(c, _)| costs[top] < *c) {
            search.best = Some((costs[top], cands[top].clone()));
        }
        // Weights: uniform over elites (CEM) or softmax of -cost / temperature (MPPI).
        let weights: Vec<(usize, f32)> = match self.cfg.method {
            Method::Cem => order.iter().take(self.cfg.elites).map(|&i| (i, 1.0 / self.cfg.elites as f32)).collect(),
            Method::Mppi => {
                // Scale-free: the temperature is a fraction of the mean cost gap to the best.
                let c0 = costs[top];
                let finite: Vec<f32> = costs.iter().cloned().filter(|c| c.is_finite()).collect();
                let gap = (finite.iter().sum::<f32>() / finite.len().max(1) as f32 - c0).max(1e-6);
                let w: Vec<f32> = costs.iter().map(|c| if c.is_finite() { (-(c - c0) / (self.cfg.temperature * gap)).exp() } else { 0.0 }).collect();
                let z: f32 = w.iter().sum::<f32>().max(1e-12);
                w.into_iter().enumerate().map(|(i, v)| (i, v / z)).collect()
            }
        };
        let m = self.cfg.momentum;
        for t in 0..h {
            for k in 0..a {
                let mu: f32 = weights.iter().map(|&(i, w)| w * cands[i][t][k]).sum();
                let var: f32 = weights.iter().map(|&(i, w)| w * (cands[i][t][k] - mu).powi(2)).sum();
                self.mean[t][k] = m * self.mean[t][k] + (1.0 - m) * mu;
                search.std[t][k] = (m * search.std[t][k] + (1.0 - m) * var.sqrt()).max(range[k] * self.cfg.min_std);
            }
        }
        Ok(())
    }

    /// The plan a finished search found.
    pub fn finish(&self, search: Search) -> Plan {
        let (best_cost, best) = search.best.unwrap_or((f32::INFINITY, self.mean.clone()));
        Plan { best, best_cost, mean: self.mean.clone(), evaluated: search.evaluated }
    }
}

/// The state of one search between rounds.
#[derive(Debug, Clone)]
pub struct Search {
    std: Vec<Vec<f32>>,
    best: Option<(f32, Vec<Vec<f32>>)>,
    evaluated: usize,
    /// Rounds done.
    pub iteration: usize,
}
