//! `foresight-sim eval-generate`: the generative modes (issue 6) measured on held-out episodes
//! against the truth and, for edits under new actions, against the oracle's replay.
//!
//! - Text: from each held-out start frame, a 16-frame video from the caption alone (no actions),
//!   once with the episode's true caption and once with a counterfactual caption (another
//!   episode's, describing different motion); each video's motion (body positions located by
//!   colour, first frame against frame 16) is checked against both captions. Text controls the
//!   outcome when a video agrees with its own caption more than with the other one. Reported per
//!   phrasing (trained templates, held-out templates) and guidance scale; a caption-free video
//!   gives the baseline.
//! - Image to video: position error over 16 frames from one frame, beside the rollout from 4.
//! - Edit: distance to the input at several strengths (must rise), and an edit under mirrored
//!   actions scored against the oracle's replay of those actions, beside the unedited video.
//! - Interpolation: video A (frames 0-3) to video B (frames 12-15) of one episode: distance of
//!   the first and last transition frames from A's end and B's start, a one-blob-per-body
//!   continuous-path score against the cross-fade's, and position error against the truth.
//! - Backward extension: 16 frames before frames 16-19, position error against the truth.
//! - Uncertainty: 8 samples of a 16-step rollout; Pearson correlation between each pixel's
//!   spread and the sample mean's error against the truth.

use std::sync::Arc;

use foresight::data::events::{clip_motion, motion_agreement, phrase_motion, Phrasing, CLIP_STEPS, HELDOUT_PHRASING, TRAIN_PHRASING};
use foresight::data::{Dataset, Episode};
use foresight::eval::metrics::{dist, mean_abs_diff, path_score};
use foresight::generate::{cross_fade, mean_frame, pearson, spread_map, Generate};
use foresight::model::diffusion::SamplerConfig;
use foresight::rng::Rng;
use foresight::scene::Scene;
use foresight::world_model::{Query, WorldModel};
use serde::Serialize;

use crate::oracle::Oracle;
use crate::physics::SimWorld;

/// What to measure.
#[derive(Debug, Clone)]
pub struct GenEvalConfig {
    /// Held-out episodes (at most).
    pub episodes: usize,
    /// Noise seed.
    pub seed: u64,
    /// Caption guidance scales to compare (1: none).
    pub text_guidance: Vec<f32>,
    /// Edit strengths for the monotonicity curve.
    pub strengths: Vec<f32>,
    /// Strengths of the edits under new actions.
    pub edit_strengths: Vec<f32>,
    /// Samples for the uncertainty map.
    pub samples: usize,
}

impl Default for GenEvalConfig {
    fn default() -> Self {
        GenEvalConfig { episodes: 32, seed: 7, text_guidance: vec![1.0, 3.0], strengths: vec![0.0, 0.25, 0.5, 0.75, 1.0], edit_strengths: vec![0.5, 0.75, 0.9, 1.0], samples: 8 }
    }
}

/// Text control for one phrasing and guidance scale.
#[derive(Debug, Clone, Serialize)]
pub struct TextRow {
    /// `train` or `heldout` templates.
    pub phrasing: String,
    /// Caption guidance scale.
    pub guidance: f32,
    /// Mean agreement of each video with its own caption (fraction of bodies whose motion matches).
    pub own_accuracy: f64,
    /// Mean agreement of each video with the other caption of its pair.
    pub cross_accuracy: f64,
}

/// Text control.
#[derive(Debug, Clone, Serialize)]
pub struct TextReport {
    /// One row per phrasing × guidance.
    pub rows: Vec<TextRow>,
    /// Caption-free videos against the true captions.
    pub no_text_true_accuracy: f64,
    /// Caption-free videos against the counterfactual captions.
    pub no_text_counterfactual_accuracy: f64,
    /// Pairs (start, true caption, counterfactual caption).
    pub pairs: usize,
    /// Example: the first pair's captions.
    pub example: [String; 2],
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct GenEvalReport {
    /// Checkpoint.
    pub checkpoint: String,
    /// Held-out episodes used.
    pub episodes: usize,
    /// Text control (absent for a checkpoint without text).
    pub text: Option<TextReport>,
    /// Mean body position error per step, 16 frames from one frame with the true actions.
    pub image_to_video_position_error_px: Vec<f64>,
    /// The same from 4 context frames (the usual rollout), same target frames shifted by 3.
    pub rollout_from_4_position_error_px: Vec<f64>,
    /// Edit strengths.
    pub edit_strengths: Vec<f32>,
    /// Mean absolute pixel difference from the input video at each strength (0-255).
    pub edit_distance_to_input: Vec<f64>,
    /// Whether that distance rises with strength.
    pub edit_monotonic: bool,
    /// Strengths of the edits under mirrored actions.
    pub edit_new_actions_strengths: Vec<f32>,
    /// Edit under mirrored actions at each of those strengths: position error against the
    /// oracle's replay of the mirrored actions.
    pub edit_new_actions_position_error_px: Vec<f64>,
    /// The unedited video against the same replay.
    pub unedited_position_error_px: f64,
    /// Interpolation (absent for a forward-only checkpoint).
    pub interpolation: Option<InterpolationReport>,
    /// Backward extension: mean position error per step back from the context (absent when
    /// forward-only).
    pub backward_position_error_px: Option<Vec<f64>>,
    /// Pearson correlation of per-pixel spread and per-pixel error of the sample mean.
    pub uncertainty_pearson: f64,
    /// Mean error (0-255) of pixels in the top tenth by spread, and in the bottom half.
    pub uncertainty_error_top_decile: f64,
    /// See above.
    pub uncertainty_error_bottom_half: f64,
}

/// Interpolation figures.
#[derive(Debug, Clone, Serialize)]
pub struct InterpolationReport {
    /// Transition frames.
    pub frames: usize,
    /// Mean body distance (px) of the first transition frame from A's last frame.
    pub start_distance_px: f64,
    /// Mean body distance (px) of the last transition frame from B's first frame.
    pub end_distance_px: f64,
    /// Fraction of (frame, body) with exactly one blob within 8 px of the previous position.
    pub path_score: f64,
    /// The same for the pixel cross-fade.
    pub cross_fade_path_score: f64,
    /// Mean body position error against the true in-between frames.
    pub truth_position_error_px: f64,
}

/// Mean over bodies visible in the truth; a body missing from the prediction costs half the
/// frame's diagonal (as in `foresight eval`).
fn position_error(wm: &WorldModel, pred: &[u8], truth: &[u8]) -> Option<f64> {
    let [h, w] = wm.meta.resolution;
    let half = ((h * h + w * w) as f32).sqrt() / 2.0;
    let (p, t) = (wm.locate_bodies(pred), wm.locate_bodies(truth));
    let errs: Vec<f64> = p.iter().zip(&t).filter_map(|(p, t)| t.map(|t| p.map_or(half, |p| dist(p, t)) as f64)).collect();
    (!errs.is_empty()).then(|| errs.iter().sum::<f64>() / errs.len() as f64)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Per-step means of per-episode series.
fn per_step(series: &[Vec<f64>]) -> Vec<f64> {
    let n = series.iter().map(|s| s.len()).max().unwrap_or(0);
    (0..n).map(|t| mean(&series.iter().filter_map(|s| s.get(t).copied()).collect::<Vec<_>>())).collect()
}

fn motion_of(wm: &WorldModel, first: &[u8], last: &[u8]) -> Vec<Option<&'static str>> {
    let nan = [f32::NAN; 2];
    let a: Vec<[f32; 2]> = wm.locate_bodies(first).into_iter().map(|p| p.unwrap_or(nan)).collect();
    let b: Vec<[f32; 2]> = wm.locate_bodies(last).into_iter().map(|p| p.unwrap_or(nan)).collect();
    clip_motion(&a, &b)
}

fn text_report(wm: &WorldModel, eps: &[Episode], cfg: &GenEvalConfig, sampler: &SamplerConfig) -> anyhow::Result<Option<TextReport>> {
    if wm.meta.dit.text.is_none() {
        return Ok(None);
    }
    let names: Vec<String> = wm.meta.bodies.iter().map(|b| b.name.clone()).collect();
    let truth: Vec<Vec<Option<&'static str>>> = eps.iter().map(|e| motion_of(wm, e.frame(0), e.frame(CLIP_STEPS))).collect();
    // Counterfactual: the next episode (cyclically) whose motion differs most.
    let pairs: Vec<(usize, Vec<Option<&'static str>>)> = (0..eps.len())
        .filter_map(|i| {
            let j = (1..eps.len()).map(|d| (i + d) % eps.len()).min_by(|&a, &b| motion_agreement(&truth[i], &truth[a]).total_cmp(&motion_agreement(&truth[i], &truth[b])))?;
            (motion_agreement(&truth[i], &truth[j]) < 1.0).then(|| (i, truth[j].clone()))
        })
        .collect();
    anyhow::ensure!(!pairs.is_empty(), "no held-out start has a counterfactual caption");
    let mut rng = Rng::new(cfg.seed ^ 0x7e47);
    let mut rows = Vec::new();
    let mut example = [String::new(), String::new()];
    let base = |i: usize, text: Option<String>| Generate { context: vec![eps[i].frame(0).to_vec()], text, horizon: CLIP_STEPS, samples: 1, seed: cfg.seed ^ i as u64, ..Default::default() };
    for (pname, phrasing) in [("train", &TRAIN_PHRASING), ("heldout", &HELDOUT_PHRASING)] {
        let phrasing: &Phrasing = phrasing;
        let mut reqs = Vec::new();
        for (i, cf) in &pairs {
            let own = phrase_motion(&names, &truth[*i], phrasing, |n| rng.below(n));
            let other = phrase_motion(&names, cf, phrasing, |n| rng.below(n));
            if example[0].is_empty() {
                example = [own.clone(), other.clone()];
            }
            reqs.push(base(*i, Some(own)));
            reqs.push(base(*i, Some(other)));
        }
        for &g in &cfg.text_guidance {
            let s = SamplerConfig { text_guidance: g, ..*sampler };
            let out = wm.generate(&reqs, &s)?;
            let (mut own, mut cross) = (Vec::new(), Vec::new());
            for (pi, (i, cf)) in pairs.iter().enumerate() {
                let captions = [&truth[*i], cf];
                for (k, cap) in captions.iter().enumerate() {
                    let v = &out[2 * pi + k].frames[0];
                    let m = motion_of(wm, eps[*i].frame(0), &v[CLIP_STEPS - 1]);
                    own.push(motion_agreement(&m, cap));
                    cross.push(motion_agreement(&m, captions[1 - k]));
                }
            }
            rows.push(TextRow { phrasing: pname.into(), guidance: g, own_accuracy: mean(&own), cross_accuracy: mean(&cross) });
        }
    }
    let reqs: Vec<Generate> = pairs.iter().map(|(i, _)| base(*i, None)).collect();
    let out = wm.generate(&reqs, sampler)?;
    let (mut t, mut c) = (Vec::new(), Vec::new());
    for ((i, cf), o) in pairs.iter().zip(&out) {
        let m = motion_of(wm, eps[*i].frame(0), &o.frames[0][CLIP_STEPS - 1]);
        t.push(motion_agreement(&m, &truth[*i]));
        c.push(motion_agreement(&m, cf));
    }
    Ok(Some(TextReport { rows, no_text_true_accuracy: mean(&t), no_text_counterfactual_accuracy: mean(&c), pairs: pairs.len(), example }))
}

/// Runs every measurement on the held-out dataset `ds` (episodes of at least 20 steps).
pub fn evaluate_generative(wm: &WorldModel, scene: &Arc<Scene>, ds: &mut Dataset, cfg: &GenEvalConfig, checkpoint: String) -> anyhow::Result<GenEvalReport> {
    let overlap = ds.manifest.episodes.iter().filter(|e| wm.meta.train_seeds.contains(&e.seed)).count();
    anyhow::ensure!(overlap == 0, "{}: {overlap} episodes were used in training; evaluate on held-out seeds", ds.dir().display());
    let h16 = CLIP_STEPS;
    let eps: Vec<Episode> = (0..ds.len().min(cfg.episodes)).map(|i| ds.episode(i)).collect::<Result<Vec<_>, _>>()?.into_iter().filter(|e| e.steps() >= h16 + 4).collect();
    anyhow::ensure!(!eps.is_empty(), "{}: no episode has the {} steps the evaluation needs", ds.dir().display(), h16 + 4);
    let sampler = wm.meta.sampler;
    let acts = |e: &Episode, from: usize, n: usize| -> Vec<Vec<f32>> { (from..from + n).map(|t| e.action(t).to_vec()).collect() };

    let text = text_report(wm, &eps, cfg, &sampler)?;

    // Image to video against the 4-frame rollout.
    let reqs: Vec<Generate> = eps.iter().enumerate().map(|(i, e)| Generate { context: vec![e.frame(0).to_vec()], actions: Some(acts(e, 0, h16)), horizon: h16, samples: 1, seed: cfg.seed ^ i as u64, ..Default::default() }).collect();
    let one = wm.generate(&reqs, &sampler)?;
    let i2v: Vec<Vec<f64>> = eps.iter().zip(&one).map(|(e, g)| (0..h16).filter_map(|t| position_error(wm, &g.frames[0][t], e.frame(t + 1))).collect()).collect();
    let queries: Vec<Query> = eps
        .iter()
        .enumerate()
        .map(|(i, e)| Query { context: (0..4).map(|t| e.frame(t).to_vec()).collect(), past_actions: Some(acts(e, 0, 3)), actions: acts(e, 3, h16), samples: 1, seed: cfg.seed ^ i as u64 })
        .collect();
    let four = wm.predict_batch(&queries, &sampler)?;
    let r4: Vec<Vec<f64>> = eps.iter().zip(&four).map(|(e, p)| (0..h16).filter_map(|t| position_error(wm, &p.frames[0][t], e.frame(t + 4))).collect()).collect();

    // Edit strength curve (no new conditions: the true actions) and an edit under mirrored actions.
    let video = |e: &Episode| -> Vec<Vec<u8>> { (0..=h16).map(|t| e.frame(t).to_vec()).collect() };
    let mut edit_distance = Vec::new();
    for &strength in &cfg.strengths {
        let reqs: Vec<Generate> = eps.iter().enumerate().map(|(i, e)| Ok(Generate::edit(&video(e), strength, Some(acts(e, 0, h16)), None)?.sampled(1, cfg.seed ^ i as u64))).collect::<anyhow::Result<_>>()?;
        let out = wm.generate(&reqs, &sampler)?;
        let d: Vec<f64> = eps.iter().zip(&out).map(|(e, g)| g.frames[0].iter().zip(&video(e)[1..]).map(|(a, b)| mean_abs_diff(a, b)).sum::<f64>() / h16 as f64).collect();
        edit_distance.push(mean(&d));
    }
    let edit_monotonic = edit_distance.windows(2).all(|w| w[1] >= w[0]);
    let mut oracle = Oracle::new(scene.clone(), eps.len().min(16))?;
    let mirrored: Vec<Vec<Vec<f32>>> = eps.iter().map(|e| acts(e, 0, h16).into_iter().map(|a| a.iter().map(|v| -v).collect()).collect()).collect();
    let worlds: Vec<SimWorld> = eps.iter().map(|e| SimWorld::new(scene.clone(), e.seed)).collect::<Result<_, _>>()?;
    let replays = oracle.replay_many(&worlds.iter().collect::<Vec<_>>(), &mirrored)?;
    let mut unedited_err = Vec::new();
    for (i, (e, rep)) in eps.iter().zip(&replays).enumerate() {
        anyhow::ensure!(rep.frame(0) == e.frame(0), "episode {i}: the oracle's start frame differs from the dataset's (seed {:016x}); the scene changed since the data was recorded", e.seed);
        let v = video(e);
        unedited_err.extend((0..h16).filter_map(|t| position_error(wm, &v[t + 1], rep.frame(t + 1))));
    }
    let mut edited = Vec::new();
    for &strength in &cfg.edit_strengths {
        let reqs: Vec<Generate> = eps
            .iter()
            .zip(&mirrored)
            .enumerate()
            .map(|(i, (e, m))| Ok(Generate::edit(&video(e), strength, Some(m.clone()), None)?.sampled(1, cfg.seed ^ i as u64)))
            .collect::<anyhow::Result<_>>()?;
        let out = wm.generate(&reqs, &sampler)?;
        let err: Vec<f64> = out.iter().zip(&replays).flat_map(|(g, rep)| (0..h16).filter_map(|t| position_error(wm, &g.frames[0][t], rep.frame(t + 1))).collect::<Vec<_>>()).collect();
        edited.push(mean(&err));
    }

    // Interpolation and backward extension need a bidirectional checkpoint.
    let colours: Vec<[u8; 3]> = wm.meta.bodies.iter().map(|b| b.colour).collect();
    let w = wm.meta.resolution[1];
    let (interpolation, backward) = if wm.meta.dit.bidirectional {
        let n = 8;
        let (mut sd, mut ed, mut ps, mut cf, mut te) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, e) in eps.iter().enumerate() {
            let a: Vec<Vec<u8>> = (0..4).map(|t| e.frame(t).to_vec()).collect();
            let b: Vec<Vec<u8>> = (4 + n..8 + n).map(|t| e.frame(t).to_vec()).collect();
            let g = wm.interpolate(&a, &b, n, 1, cfg.seed ^ i as u64, &sampler)?;
            let tr = &g.frames[0];
            let body_dist = |x: &[u8], y: &[u8]| -> Option<f64> {
                let d: Vec<f64> = wm.locate_bodies(x).iter().zip(wm.locate_bodies(y)).filter_map(|(p, q)| Some(dist((*p)?, q?) as f64)).collect();
                (!d.is_empty()).then(|| mean(&d))
            };
            sd.extend(body_dist(&tr[0], &a[3]));
            ed.extend(body_dist(&tr[n - 1], &b[0]));
            let start = wm.locate_bodies(&a[3]);
            ps.push(path_score(&tr.iter().map(|f| f.as_slice()).collect::<Vec<_>>(), w, &colours, &start, 8.0));
            let fade = cross_fade(&a[3], &b[0], n);
            cf.push(path_score(&fade.iter().map(|f| f.as_slice()).collect::<Vec<_>>(), w, &colours, &start, 8.0));
            te.extend((0..n).filter_map(|t| position_error(wm, &tr[t], e.frame(4 + t))));
        }
        let interp = InterpolationReport { frames: n, start_distance_px: mean(&sd), end_distance_px: mean(&ed), path_score: mean(&ps), cross_fade_path_score: mean(&cf), truth_position_error_px: mean(&te) };
        let mut back = Vec::new();
        for (i, e) in eps.iter().enumerate() {
            let v: Vec<Vec<u8>> = (h16..h16 + 4).map(|t| e.frame(t).to_vec()).collect();
            let g = wm.extend(&v, h16, true, Some(acts(e, 0, h16)), None, 1, cfg.seed ^ i as u64, &sampler)?;
            // g.frames[0][t] is frame t (chronological); report by distance back from the context.
            back.push((0..h16).rev().filter_map(|t| position_error(wm, &g.frames[0][t], e.frame(t))).collect::<Vec<_>>());
        }
        (Some(interp), Some(per_step(&back)))
    } else {
        (None, None)
    };

    // Uncertainty: spread against error, pooled over pixels of every step of every episode.
    let (mut spread, mut error) = (Vec::new(), Vec::new());
    let uq: Vec<Query> = queries.iter().map(|q| Query { samples: cfg.samples, ..q.clone() }).collect();
    for (e, p) in eps.iter().zip(wm.predict_batch(&uq, &sampler)?) {
        for t in 0..h16 {
            let s: Vec<&[u8]> = p.frames.iter().map(|f| f[t].as_slice()).collect();
            let m = mean_frame(&s);
            let truth = e.frame(t + 4);
            spread.extend(spread_map(&s).into_iter().map(|v| v as f64));
            error.extend(m.chunks_exact(3).zip(truth.chunks_exact(3)).map(|(a, b)| (0..3).map(|c| a[c].abs_diff(b[c]) as f64).sum::<f64>() / 3.0));
        }
    }
    let mut order: Vec<usize> = (0..spread.len()).collect();
    order.sort_by(|&a, &b| spread[b].total_cmp(&spread[a]));
    let top = &order[..order.len() / 10];
    let bottom = &order[order.len() / 2..];
    Ok(GenEvalReport {
        checkpoint,
        episodes: eps.len(),
        text,
        image_to_video_position_error_px: per_step(&i2v),
        rollout_from_4_position_error_px: per_step(&r4),
        edit_strengths: cfg.strengths.clone(),
        edit_distance_to_input: edit_distance,
        edit_monotonic,
        edit_new_actions_strengths: cfg.edit_strengths.clone(),
        edit_new_actions_position_error_px: edited,
        unedited_position_error_px: mean(&unedited_err),
        interpolation,
        backward_position_error_px: backward,
        uncertainty_pearson: pearson(&spread, &error),
        uncertainty_error_top_decile: mean(&top.iter().map(|&i| error[i]).collect::<Vec<_>>()),
        uncertainty_error_bottom_half: mean(&bottom.iter().map(|&i| error[i]).collect::<Vec<_>>()),
    })
}

/// A Markdown summary.
pub fn markdown(r: &GenEvalReport) -> String {
    let f = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" ");
    let mut s = format!("# Generative modes: {} on {} held-out episodes\n\n", r.checkpoint, r.episodes);
    if let Some(t) = &r.text {
        s += &format!("## Text ({} pairs; e.g. \"{}\" vs \"{}\")\n\n| phrasing | guidance | own caption | other caption |\n|---|---|---|---|\n", t.pairs, t.example[0], t.example[1]);
        for row in &t.rows {
            s += &format!("| {} | {} | {:.3} | {:.3} |\n", row.phrasing, row.guidance, row.own_accuracy, row.cross_accuracy);
        }
        s += &format!("| no text | - | {:.3} (true) | {:.3} (counterfactual) |\n\n", t.no_text_true_accuracy, t.no_text_counterfactual_accuracy);
    }
    s += &format!("## Image to video\nposition error per step from 1 frame: {}\nfrom 4 frames: {}\nmeans {:.2} vs {:.2} px\n\n", f(&r.image_to_video_position_error_px), f(&r.rollout_from_4_position_error_px), mean(&r.image_to_video_position_error_px), mean(&r.rollout_from_4_position_error_px));
    s += &format!(
        "## Edit\nstrengths {:?}: distance to input {} (monotonic: {})\nunder mirrored actions, against the oracle's replay of them: edited at strengths {:?}: {} px; unedited {:.2} px\n\n",
        r.edit_strengths,
        r.edit_distance_to_input.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" "),
        r.edit_monotonic,
        r.edit_new_actions_strengths,
        f(&r.edit_new_actions_position_error_px),
        r.unedited_position_error_px
    );
    if let Some(i) = &r.interpolation {
        s += &format!(
            "## Interpolation ({} frames)\nstart {:.2} px from A, end {:.2} px from B; path score {:.3} (cross-fade {:.3}); error vs truth {:.2} px\n\n",
            i.frames, i.start_distance_px, i.end_distance_px, i.path_score, i.cross_fade_path_score, i.truth_position_error_px
        );
    }
    if let Some(b) = &r.backward_position_error_px {
        s += &format!("## Backward extension\nposition error by steps back: {}\n\n", f(b));
    }
    s += &format!(
        "## Uncertainty\nPearson(spread, error) {:.3}; error of the top 10% spread pixels {:.2}, bottom half {:.2}\n",
        r.uncertainty_pearson, r.uncertainty_error_top_decile, r.uncertainty_error_bottom_half
    );
    s
}
