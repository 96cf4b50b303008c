//! `foresight eval`: predicted futures against the recorded truth on held-out episodes
//! (DESIGN.md, "How we measure"), with the copy-last and constant-velocity baselines, the
//! autoencoder's ceiling and controllability measured in the same run.

pub mod metrics;
pub mod plot;

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Episode};
use crate::model::diffusion::SamplerConfig;
use crate::scene::Role;
use crate::world_model::{Query, WorldModel};
use metrics::{dist, psnr, ssim};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Context frames given to the model.
    pub context: usize,
    /// Steps predicted.
    pub horizon: usize,
    /// First frame of each window: the context is frames `start..start + context` of an episode
    /// (0: from the episode's first frame, the protocol's default).
    pub start: usize,
    /// A second, long rollout (0 to skip); episodes too short for it are left out of it.
    pub long_horizon: usize,
    /// At most this many episodes.
    pub max_episodes: usize,
    /// Sampler.
    pub sampler: SamplerConfig,
    /// Noise seed.
    pub seed: u64,
}

/// Per-horizon curves (index h is step h+1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Curves {
    /// Mean PSNR, dB.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub psnr: Vec<f64>,
    /// Mean SSIM.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub ssim: Vec<f64>,
    /// Mean position error over bodies, pixels.
    pub position_error_px: Vec<f64>,
    /// Position error of the body the actions drive.
    pub agent_position_error_px: Vec<f64>,
    /// Position error of object bodies that truly moved more than 2 px in the window.
    pub pushed_position_error_px: Vec<f64>,
}

/// The evaluation report (`--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The model's curves.
    #[serde(flatten)]
    pub model: Curves,
    /// Predicting the last context frame forever.
    pub copy_last: Curves,
    /// Extrapolating located positions at constant velocity (positions only).
    pub constant_velocity: Curves,
    /// PSNR at the last horizon with the true actions minus with actions shuffled across episodes.
    pub controllability_db: f64,
    /// Agent error at the last horizon with shuffled actions divided by that with the true ones.
    pub controllability_ratio: f64,
    /// Fraction of (frame, body) pairs visible in the truth but not found in the prediction.
    pub missing_fraction: f64,
    /// The same per horizon: where in a rollout bodies are lost.
    #[serde(default)]
    pub missing_fraction_per_horizon: Vec<f64>,
    /// Per horizon, of the windows whose truth shows the agent, the fraction whose prediction
    /// loses it (its error there is half the frame's diagonal).
    #[serde(default)]
    pub agent_missing_fraction: Vec<f64>,
    /// PSNR of the autoencoder's reconstructions of the true future frames (the ceiling).
    pub autoencoder_psnr: f64,
    /// Mean position error over bodies (all horizons) in those reconstructions: how far the
    /// autoencoder alone moves the located bodies, the floor of every position error.
    #[serde(default)]
    pub autoencoder_position_error_px: f64,
    /// The same for the agent.
    #[serde(default)]
    pub autoencoder_agent_position_error_px: f64,
    /// Episodes evaluated.
    pub episodes: usize,
    /// Data-collection policy of the episodes.
    pub policy: String,
    /// Context frames.
    pub context: usize,
    /// Horizon.
    pub horizon: usize,
    /// First frame of each window.
    #[serde(default)]
    pub start: usize,
    /// The long rollout: `{horizon, episodes, model, copy_last}`, if any episode was long enough.
    pub long_horizon: Option<LongHorizon>,
    /// Sampler used.
    pub sampler: SamplerConfig,
    /// Seconds spent.
    pub seconds: f64,
    /// Each evaluated window of the model, in dataset order: the means above can hide a few
    /// failures (a contact, a lost body); these find them.
    #[serde(default)]
    pub per_episode: Vec<EpisodeScore>,
}

/// One evaluation window of the model against the truth (`per_episode` in the report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeScore {
    /// Index of the episode in the dataset.
    pub episode: usize,
    /// The episode's seed.
    pub seed: u64,
    /// Transitions of the whole episode in which the agent touched another body.
    pub contact_steps: usize,
    /// Object bodies that moved more than 2 px in the window (the "pushed" ones).
    pub pushed_bodies: usize,
    /// PSNR per horizon, dB.
    pub psnr: Vec<f64>,
    /// The agent's position error per horizon (null where the truth does not show it), px.
    pub agent_position_error_px: Vec<Option<f64>>,
    /// The same for copy-last.
    pub copy_last_agent_position_error_px: Vec<Option<f64>>,
    /// Mean position error over the visible bodies per horizon (null where none is), px.
    pub position_error_px: Vec<Option<f64>>,
    /// (frame, body) pairs visible in the truth but not found in the prediction.
    pub missing: usize,
}

/// The long-horizon part of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongHorizon {
    /// Steps.
    pub horizon: usize,
    /// Episodes long enough.
    pub episodes: usize,
    /// Model curves.
    pub model: Curves,
    /// Copy-last curves.
    pub copy_last: Curves,
}

/// Accumulates per-horizon sums.
#[derive(Default)]
struct Acc {
    sum: Vec<f64>,
    n: Vec<usize>,
}

impl Acc {
    fn new(h: usize) -> Self {
        Acc { sum: vec![0.0; h], n: vec![0; h] }
    }
    fn add(&mut self, h: usize, v: f64) {
        self.sum[h] += v;
        self.n[h] += 1;
    }
    fn mean(&self) -> Vec<f64> {
        self.sum.iter().zip(&self.n).map(|(s, &n)| if n == 0 { f64::NAN } else { s / n as f64 }).collect()
    }
}

/// Curve accumulators for one predictor.
struct CurveAcc {
    psnr: Acc,
    ssim: Acc,
    pos: Acc,
    agent: Acc,
    pushed: Acc,
    /// 1 for each (frame, body) pair lost, 0 for each found, per horizon.
    lost: Acc,
    /// The same for the agent alone.
    agent_lost: Acc,
}

impl CurveAcc {
    fn new(h: usize) -> Self {
        CurveAcc { psnr: Acc::new(h), ssim: Acc::new(h), pos: Acc::new(h), agent: Acc::new(h), pushed: Acc::new(h), lost: Acc::new(h), agent_lost: Acc::new(h) }
    }
    fn curves(&self, pixels: bool) -> Curves {
        Curves {
            psnr: if pixels { self.psnr.mean() } else { vec![] },
            ssim: if pixels { self.ssim.mean() } else { vec![] },
            position_error_px: self.pos.mean(),
            agent_position_error_px: self.agent.mean(),
            pushed_position_error_px: self.pushed.mean(),
        }
    }
}

/// What is known about one evaluation window.
struct Window<'a> {
    index: usize,
    ep: &'a Episode,
    truth: Vec<&'a [u8]>,
    true_pos: Vec<Vec<Option<[f32; 2]>>>,
    pushed: Vec<bool>,
}

/// Scores predicted frames (or, with `positions`, predicted positions) of one window, adding
/// them to `acc`; returns the window's own scores (PSNR only for frames).
fn score(acc: &mut CurveAcc, win: &Window, wm: &WorldModel, frames: Option<&[Vec<u8>]>, positions: Option<&[Vec<Option<[f32; 2]>>]>) -> EpisodeScore {
    let [h, w] = wm.meta.resolution;
    let half_diag = ((h * h + w * w) as f32).sqrt() / 2.0;
    let agent = wm.meta.bodies.iter().rposition(|b| b.role == Role::Agent);
    let mut own = EpisodeScore {
        episode: win.index,
        seed: win.ep.seed,
        contact_steps: win.ep.contact_steps,
        pushed_bodies: win.pushed.iter().filter(|&&p| p).count(),
        psnr: Vec::new(),
        agent_position_error_px: Vec::new(),
        copy_last_agent_position_error_px: Vec::new(),
        position_error_px: Vec::new(),
        missing: 0,
    };
    for (t, truth) in win.truth.iter().enumerate() {
        let pred_pos: Vec<Option<[f32; 2]>> = match (frames, positions) {
            (Some(f), _) => {
                let p = psnr(&f[t], truth);
                acc.psnr.add(t, p);
                own.psnr.push(p);
                acc.ssim.add(t, ssim(&f[t], truth, h, w));
                wm.locate_bodies(&f[t])
            }
            (None, Some(p)) => p[t].clone(),
            (None, None) => break,
        };
        let mut errs = Vec::new();
        let mut agent_err = None;
        for (bi, tp) in win.true_pos[t].iter().enumerate() {
            let Some(tp) = tp else { continue };
            let lost = if pred_pos[bi].is_some() { 0.0 } else { 1.0 };
            let e = match pred_pos[bi] {
                Some(pp) => dist(pp, *tp),
                None => {
                    own.missing += 1;
                    half_diag
                }
            } as f64;
            acc.lost.add(t, lost);
            errs.push(e);
            if Some(bi) == agent {
                acc.agent.add(t, e);
                acc.agent_lost.add(t, lost);
                agent_err = Some(e);
            }
            if win.pushed[bi] {
                acc.pushed.add(t, e);
            }
        }
        own.agent_position_error_px.push(agent_err);
        let mean_err = (!errs.is_empty()).then(|| errs.iter().sum::<f64>() / errs.len() as f64);
        if let Some(m) = mean_err {
            acc.pos.add(t, m);
        }
        own.position_error_px.push(mean_err);
    }
    own
}

fn windows<'a>(eps: &'a [Episode], wm: &WorldModel, s0: usize, k: usize, horizon: usize) -> Vec<Window<'a>> {
    eps.iter()
        .enumerate()
        .filter(|(_, e)| e.steps() + 1 >= s0 + k + horizon)
        .map(|(index, ep)| {
            let truth: Vec<&[u8]> = (s0 + k..s0 + k + horizon).map(|t| ep.frame(t)).collect();
            let locate_all = |f: &[u8]| wm.locate_bodies(f);
            let true_pos: Vec<Vec<Option<[f32; 2]>>> = truth.iter().map(|f| locate_all(f)).collect();
            let start = locate_all(ep.frame(s0 + k - 1));
            let pushed = wm
                .meta
                .bodies
                .iter()
                .enumerate()
                .map(|(bi, b)| {
                    b.role == Role::Object && start[bi].is_some_and(|s| true_pos.iter().any(|p| p[bi].is_some_and(|p| dist(p, s) > 2.0)))
                })
                .collect();
            Window { index, ep, truth, true_pos, pushed }
        })
        .collect()
}

fn queries(wins: &[Window], s0: usize, k: usize, horizon: usize, seed: u64, shuffle: bool) -> Vec<Query> {
    let n = wins.len();
    wins.iter()
        .enumerate()
        .map(|(i, win)| {
            let ep = win.ep;
            let src = if shuffle { wins[(i + 1) % n].ep } else { ep };
            Query {
                context: (s0..s0 + k).map(|t| ep.frame(t).to_vec()).collect(),
                past_actions: Some((s0..s0 + k - 1).map(|t| ep.action(t).to_vec()).collect()),
                actions: (s0 + k - 1..s0 + k - 1 + horizon).map(|t| src.action(t).to_vec()).collect(),
                samples: 1,
                seed: seed ^ crate::rng::mix64(i as u64),
            }
        })
        .collect()
}

/// Runs the protocol.
pub fn evaluate(wm: &WorldModel, ds: &mut Dataset, cfg: &EvalConfig) -> anyhow::Result<EvalReport> {
    let started = std::time::Instant::now();
    let (k, horizon) = (cfg.context, cfg.horizon);
    anyhow::ensure!(k >= 1 && k <= wm.meta.context, "--context {k} must be in 1..={}", wm.meta.context);
    anyhow::ensure!(horizon >= 1, "--horizon must be at least 1");
    anyhow::ensure!(ds.manifest.resolution == wm.meta.resolution, "the data is {:?}, the model {:?}", ds.manifest.resolution, wm.meta.resolution);
    anyhow::ensure!(ds.manifest.action_spec.dim == wm.meta.action_spec.dim, "the data has {}-d actions, the model {}-d", ds.manifest.action_spec.dim, wm.meta.action_spec.dim);
    let trained: std::collections::HashSet<u64> = wm.meta.train_seeds.iter().copied().collect();
    let overlap = ds.manifest.episodes.iter().filter(|e| trained.contains(&e.seed)).count();
    anyhow::ensure!(overlap == 0, "{} of the {} episodes in {} were used to train this checkpoint; evaluate on held-out seeds", overlap, ds.len(), ds.dir().display());
    let n = ds.len().min(cfg.max_episodes);
    let eps: Vec<Episode> = (0..n).map(|i| ds.episode(i)).collect::<Result<_, _>>()?;
    let policy = ds.manifest.episodes.first().map(|e| e.policy.clone()).unwrap_or_default();
    let s0 = cfg.start;
    let wins = windows(&eps, wm, s0, k, horizon);
    anyhow::ensure!(!wins.is_empty(), "no episode has {} frames (start {s0} + context {k} + horizon {horizon})", s0 + k + horizon);

    let run = |wins: &[Window], horizon: usize, shuffle: bool| -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
        let qs = queries(wins, s0, k, horizon, cfg.seed, shuffle);
        let mut out = Vec::with_capacity(qs.len());
        for chunk in qs.chunks(32) {
            for p in wm.predict_batch(chunk, &cfg.sampler)? {
                out.push(p.frames.into_iter().next().unwrap_or_default());
            }
        }
        Ok(out)
    };
    let preds = run(&wins, horizon, false)?;
    let shuffled = run(&wins, horizon, true)?;
    let mut model = CurveAcc::new(horizon);
    let mut copy = CurveAcc::new(horizon);
    let mut cv = CurveAcc::new(horizon);
    let mut shuf = CurveAcc::new(horizon);
    let mut ae_psnr = (0.0, 0usize);
    let mut ae_pos = CurveAcc::new(horizon);
    let mut per_episode = Vec::with_capacity(wins.len());
    for (i, win) in wins.iter().enumerate() {
        let mut own = score(&mut model, win, wm, Some(&preds[i]), None);
        score(&mut shuf, win, wm, Some(&shuffled[i]), None);
        let last = win.ep.frame(s0 + k - 1).to_vec();
        own.copy_last_agent_position_error_px = score(&mut copy, win, wm, Some(&vec![last; horizon]), None).agent_position_error_px;
        per_episode.push(own);
        // Constant velocity from the last two context frames' located positions.
        let p1 = wm.locate_bodies(win.ep.frame(s0 + k - 1));
        let p0 = if k >= 2 { wm.locate_bodies(win.ep.frame(s0 + k - 2)) } else { p1.clone() };
        let extrap: Vec<Vec<Option<[f32; 2]>>> = (0..horizon)
            .map(|t| {
                p1.iter()
                    .zip(&p0)
                    .map(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) => Some([a[0] + (a[0] - b[0]) * (t + 1) as f32, a[1] + (a[1] - b[1]) * (t + 1) as f32]),
                        (Some(a), None) => Some(*a),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        score(&mut cv, win, wm, None, Some(&extrap));
        let refs: Vec<&[u8]> = win.truth.clone();
        let recon = wm.decode(&wm.encode(&refs)?)?;
        score(&mut ae_pos, win, wm, Some(&recon), None);
        for (a, b) in recon.iter().zip(&win.truth) {
            ae_psnr.0 += psnr(a, b);
            ae_psnr.1 += 1;
        }
    }
    let m = model.curves(true);
    let s = shuf.curves(true);
    let ae_curves = ae_pos.curves(false);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let last = horizon - 1;
    let long_horizon = if cfg.long_horizon > horizon {
        let lw = windows(&eps, wm, s0, k, cfg.long_horizon);
        if lw.is_empty() {
            None
        } else {
            let lp = run(&lw, cfg.long_horizon, false)?;
            let mut lm = CurveAcc::new(cfg.long_horizon);
            let mut lc = CurveAcc::new(cfg.long_horizon);
            for (i, win) in lw.iter().enumerate() {
                score(&mut lm, win, wm, Some(&lp[i]), None);
                score(&mut lc, win, wm, Some(&vec![win.ep.frame(s0 + k - 1).to_vec(); cfg.long_horizon]), None);
            }
            Some(LongHorizon { horizon: cfg.long_horizon, episodes: lw.len(), model: lm.curves(true), copy_last: lc.curves(true) })
        }
    } else {
        None
    };
    Ok(EvalReport {
        controllability_db: m.psnr[last] - s.psnr[last],
        controllability_ratio: s.agent_position_error_px[last] / m.agent_position_error_px[last].max(1e-6),
        missing_fraction: model.lost.sum.iter().sum::<f64>() / model.lost.n.iter().sum::<usize>().max(1) as f64,
        missing_fraction_per_horizon: model.lost.mean(),
        agent_missing_fraction: model.agent_lost.mean(),
        autoencoder_psnr: ae_psnr.0 / ae_psnr.1.max(1) as f64,
        autoencoder_position_error_px: mean(&ae_curves.position_error_px),
        autoencoder_agent_position_error_px: mean(&ae_curves.agent_position_error_px),
        model: m,
        copy_last: copy.curves(true),
        constant_velocity: cv.curves(false),
        episodes: wins.len(),
        policy,
        context: k,
        horizon,
        start: s0,
        long_horizon,
        sampler: cfg.sampler,
        seconds: started.elapsed().as_secs_f64(),
        per_episode,
    })
}

/// The report as Markdown.
pub fn markdown(r: &EvalReport, title: &str) -> String {
    let mut s = format!("# {title}\n\n{} held-out episodes (policy `{}`), windows from frame {}, context {}, horizon {}, sampler {:?}.\n\n", r.episodes, r.policy, r.start, r.context, r.horizon, r.sampler);
    s.push_str("| horizon | PSNR model | PSNR copy-last | SSIM model | position err model (px) | copy-last | const. velocity | agent err model | agent copy-last | pushed err model | pushed copy-last | bodies lost | agent lost |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    // Reports written before the per-horizon losses were kept have none.
    let pct = |v: &[f64], i: usize| v.get(i).map_or_else(|| "–".to_string(), |x| format!("{:.0}%", 100.0 * x));
    let h = r.horizon;
    let mut rows: Vec<usize> = vec![0, 1, 3, 7, 15, 31, 63].into_iter().filter(|&i| i < h).collect();
    if !rows.contains(&(h - 1)) {
        rows.push(h - 1);
    }
    for i in rows {
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |\n",
            i + 1,
            r.model.psnr[i],
            r.copy_last.psnr[i],
            r.model.ssim[i],
            r.model.position_error_px[i],
            r.copy_last.position_error_px[i],
            r.constant_velocity.position_error_px[i],
            r.model.agent_position_error_px[i],
            r.copy_last.agent_position_error_px[i],
            r.model.pushed_position_error_px[i],
            r.copy_last.pushed_position_error_px[i],
            pct(&r.missing_fraction_per_horizon, i),
            pct(&r.agent_missing_fraction, i),
        ));
    }
    s.push_str(&format!(
        "\nAutoencoder ceiling {:.2} dB, position error {:.2} px (agent {:.2}). Controllability {:.2} dB, ratio {:.2}. Missing bodies {:.1}%.\n",
        r.autoencoder_psnr,
        r.autoencoder_position_error_px,
        r.autoencoder_agent_position_error_px,
        r.controllability_db,
        r.controllability_ratio,
        100.0 * r.missing_fraction
    ));
    s.push_str(&worst_episodes(&r.per_episode, 5));
    if let Some(l) = &r.long_horizon {
        let i = l.horizon - 1;
        s.push_str(&format!(
            "\nLong rollout ({} episodes): at step {} PSNR {:.2} dB (copy-last {:.2}), position error {:.2} px (copy-last {:.2}).\n",
            l.episodes, l.horizon, l.model.psnr[i], l.copy_last.psnr[i], l.model.position_error_px[i], l.copy_last.position_error_px[i]
        ));
    }
    s
}

/// The windows whose agent error at the last horizon is largest (at most `n`), and how many of
/// them hold half of the total: whether the mean is a few failures or a spread.
fn worst_episodes(per_episode: &[EpisodeScore], n: usize) -> String {
    let at_end = |e: &EpisodeScore| e.agent_position_error_px.last().copied().flatten();
    let mut scored: Vec<(&EpisodeScore, f64)> = per_episode.iter().filter_map(|e| at_end(e).map(|v| (e, v))).collect();
    if scored.is_empty() {
        return String::new();
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.episode.cmp(&b.0.episode)));
    let total: f64 = scored.iter().map(|(_, v)| v).sum();
    // The fewest worst windows whose errors add up to half the total.
    let half = 1 + scored.iter().scan(0.0, |held, (_, v)| {
        *held += v;
        Some(*held)
    }).position(|held| held >= total / 2.0).unwrap_or(0);
    let h = scored[0].0.agent_position_error_px.len();
    let q = h.div_ceil(4).max(1);
    let fmt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    let mut s = format!(
        "\nThe agent's error at horizon {h}: the worst {half} of {} windows hold half of it. The worst {}:\n\n| episode | seed | agent err h1 | h{} | h{h} | copy-last h{h} | pushed bodies | contact steps | missing |\n|---|---|---|---|---|---|---|---|---|\n",
        scored.len(),
        n.min(scored.len()),
        q,
    );
    for (e, _) in scored.iter().take(n) {
        let a = &e.agent_position_error_px;
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            e.episode,
            e.seed,
            fmt(a[0]),
            fmt(a[q - 1]),
            fmt(a[h - 1]),
            fmt(e.copy_last_agent_position_error_px.get(h - 1).copied().flatten()),
            e.pushed_bodies,
            e.contact_steps,
            e.missing
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(episode: usize, agent: Vec<Option<f64>>) -> EpisodeScore {
        EpisodeScore {
            episode,
            seed: 100 + episode as u64,
            contact_steps: 0,
            pushed_bodies: 0,
            psnr: vec![30.0; agent.len()],
            copy_last_agent_position_error_px: agent.iter().map(|_| Some(5.0)).collect(),
            agent_position_error_px: agent,
            position_error_px: vec![],
            missing: 0,
        }
    }

    #[test]
    fn worst_episodes_rank_by_the_last_horizon_and_count_the_half() {
        let eps = vec![
            window(0, vec![Some(0.5), Some(1.0)]),
            window(1, vec![Some(2.0), Some(12.0)]),
            window(2, vec![Some(0.1), None]),
            window(3, vec![Some(0.3), Some(2.0)]),
        ];
        let s = worst_episodes(&eps, 2);
        assert!(s.contains("the worst 1 of 3 windows hold half of it"), "{s}");
        let rows: Vec<&str> = s.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| episode")).collect();
        assert_eq!(rows.len(), 2, "{s}");
        assert!(rows[0].starts_with("| 1 | 101 | 2.00 | 2.00 | 12.00 | 5.00 |"), "{}", rows[0]);
        assert!(rows[1].starts_with("| 3 | 103 |"), "{}", rows[1]);
        assert_eq!(worst_episodes(&[window(0, vec![None])], 5), "");
        let exact = worst_episodes(&[window(0, vec![Some(0.0)]), window(1, vec![Some(0.0)])], 5);
        assert!(exact.contains("the worst 1 of 2 windows"), "{exact}");
    }
}
