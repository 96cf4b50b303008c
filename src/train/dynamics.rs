//! Stage 2: train the diffusion transformer on latents of the frozen autoencoder, and write the
//! world-model checkpoint (autoencoder + transformer + metadata).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::autoencoder::{load_autoencoder, StageState};
use super::checkpoint::{json_path, load_into_varmap, load_json, load_tensors, save_json, save_tensors, varmap_tensors};
use super::config::{is_zero, lr_at, StageConfig};
use super::data::FramePool;
use super::optim::{AdamW, AdamWConfig};
use crate::data::{Episode, Manifest};
use crate::model::diffusion::{sample, seeded_noise, Conditioning, SamplerConfig};
use crate::data::events::{clip_motion, phrase_motion, CLIP_STEPS, TRAIN_PHRASING};
use crate::data::STATE_PX;
use crate::model::dit::{DitConfig, DitExtras, DitInput, ANCHOR_RANGE};
use crate::model::text::{tokenize, TextConfig};
use crate::rng::Rng;
use crate::world_model::{WorldModel, WorldModelMeta, WM_FORMAT_VERSION};

/// Transformer sizes chosen in the training config (the rest comes from data and autoencoder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicsConfig {
    /// Context frames K.
    pub context: usize,
    /// Spatial patch side in latent cells.
    pub patch: usize,
    /// Token width.
    pub dim: usize,
    /// Blocks.
    pub depth: usize,
    /// Heads.
    pub heads: usize,
    /// MLP ratio.
    pub mlp_ratio: usize,
    /// Probability of dropping the actions (classifier-free guidance).
    pub action_dropout: f64,
    /// Largest context noise level drawn in training.
    pub max_context_noise: f64,
    /// Extra loss weight on latent cells that change (`1 + w·moving`).
    pub moving_weight: f64,
    /// Caption encoder: the model learns text conditioning on clip captions (issue 6).
    #[serde(default)]
    pub text: Option<TextConfig>,
    /// Backward prediction and anchor frames (extension backwards, interpolation).
    #[serde(default)]
    pub bidirectional: bool,
    /// Fraction of each batch drawn as captioned clips (with `text`).
    #[serde(default)]
    pub text_fraction: f64,
    /// Fraction of the other windows that run backwards in time (with `bidirectional`).
    #[serde(default)]
    pub reverse_fraction: f64,
    /// Fraction of windows given an anchor frame 1 to 32 steps beyond the target.
    #[serde(default)]
    pub anchor_fraction: f64,
    /// Frames predicted jointly per call (absent: 1, or the `--init` checkpoint's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<usize>,
    /// Actions also enter every token's input (kept on when the `--init` checkpoint has them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub token_actions: bool,
    /// Fraction of the forward, uncaptioned windows whose last 1 to `self_context_depth` context
    /// frames are replaced by the model's own predictions (drawn without gradient by the
    /// checkpoint's sampler from the true frames before them), while the target stays the true
    /// frame: the model learns to correct the errors it feeds itself in a rollout instead of
    /// compounding them. When the checkpoint's sampler re-encodes (`"reencode": true`), so are
    /// these predictions, as in a rollout. 0 (absent) trains on true context only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub self_context: f64,
    /// Most context frames replaced by predictions in one window (absent: 2).
    #[serde(default = "default_self_depth")]
    pub self_context_depth: usize,
    /// Fraction of windows drawn as forward, uncaptioned windows whose target is a frame in which
    /// an object (not the agent) moved at least `MOVING_PX` pixels: contacts and what follows
    /// them are a small share of the frames (about 12% in push), and the model learns them least.
    /// Validation keeps uniform windows. 0 (absent) draws every window uniformly.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub moving_fraction: f64,
    /// Weight of a loss in pixels beside the latent one: on the windows drawn at noise level 1
    /// (the only level a one-step sampler visits), the predicted first frame and the true one
    /// are decoded by the frozen decoder and compared by their absolute difference, pixels that
    /// change from the last context frame weighted `1 + moving_weight`. The squared latent
    /// error is least for the mean of the futures, which fades a small body whose place is
    /// uncertain by a pixel or two; the absolute pixel error is least for their per-pixel
    /// median, which keeps its colour. 0 (absent) trains on latents only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pixel_weight: f64,
    /// With `pixel_weight`: pixels of saturated colour in the true frame (the bodies, as the
    /// autoencoder's `colour_weight` picks them) weigh `1 + w` times more in the pixel loss, so a
    /// small body counts where it stays still too. 0 (absent): no colour weighting.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pixel_colour_weight: f64,
}

/// A pixel whose value (in [-1, 1]) moves at least this far in some channel from the last context
/// frame counts as changed for `pixel_weight`'s weighting (about 13 of 255 levels).
const PIXEL_CHANGE: f64 = 0.1;

/// An object that moved at least this far (pixels) from the frame before makes a frame a
/// `moving_fraction` target.
pub const MOVING_PX: f32 = 0.5;

fn default_self_depth() -> usize {
    2
}

impl DynamicsConfig {
    fn check(&self) -> anyhow::Result<()> {
        for (name, v) in [("action_dropout", self.action_dropout), ("text_fraction", self.text_fraction), ("reverse_fraction", self.reverse_fraction), ("anchor_fraction", self.anchor_fraction), ("self_context", self.self_context), ("moving_fraction", self.moving_fraction)] {
            anyhow::ensure!((0.0..=1.0).contains(&v), "dynamics: {name} {v} must be in [0, 1]");
        }
        for (name, v) in [("pixel_weight", self.pixel_weight), ("pixel_colour_weight", self.pixel_colour_weight)] {
            anyhow::ensure!(v >= 0.0 && v.is_finite(), "dynamics: {name} {v} must be finite and at least 0");
        }
        anyhow::ensure!(self.self_context == 0.0 || (1..self.context).contains(&self.self_context_depth), "dynamics: self_context_depth {} must be in 1..{}", self.self_context_depth, self.context);
        Ok(())
    }
}

/// Latents of every frame of an episode, normalised by the autoencoder's scale.
struct EpisodeLatents {
    z: Vec<f32>,
    actions: Vec<f32>,
    frames: usize,
    /// Pixel position of every body in every frame (frame-major).
    pos: Vec<[f32; 2]>,
}

/// FNV-style 64-bit hash of bytes, mixed per 8-byte word (a cache key, not a checksum against
/// tampering).
fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = crate::rng::mix64(seed ^ bytes.len() as u64);
    let mut words = bytes.chunks_exact(8);
    for w in words.by_ref() {
        h = crate::rng::mix64(h ^ u64::from_le_bytes(w.try_into().unwrap_or_default()));
    }
    for &b in words.remainder() {
        h = crate::rng::mix64(h ^ b as u64);
    }
    h
}

/// The latent cache's key of an autoencoder: its encoder's weights (`encoder.*`, by name) and
/// its latent scale, the only things a latent depends on; a decoder trained on a frozen encoder
/// (`"freeze_encoder": true`) keeps the cache.
fn encoder_key(weights: &Path) -> anyhow::Result<u64> {
    let meta: super::autoencoder::AutoencoderMeta = load_json(&json_path(weights))?;
    let tensors = load_tensors(weights, &Device::Cpu)?;
    let mut names: Vec<&String> = tensors.keys().filter(|k| k.starts_with("encoder.")).collect();
    anyhow::ensure!(!names.is_empty(), "{} holds no encoder tensors (encoder.*)", weights.display());
    names.sort();
    let mut key = hash_bytes(0x1a7e, &meta.latent_scale.to_le_bytes());
    for name in names {
        let values: Vec<f32> = tensors[name].to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
        key = hash_bytes(hash_bytes(key, name.as_bytes()), &values.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
    }
    Ok(key)
}

/// Latents of every episode. With `cache` = (folder, key of the autoencoder's weights), an
/// episode's latents are read from `folder/<ae key>-<frames key>.f32` when that file holds the
/// right number of values, and written there (atomically) after encoding otherwise; encoding is
/// deterministic, so a cached run trains on the same bytes.
fn encode_episodes(wm: &WorldModel, eps: &[Episode], cache: Option<(&Path, u64)>) -> anyhow::Result<Vec<EpisodeLatents>> {
    let mut out = Vec::with_capacity(eps.len());
    let cells: usize = wm.meta.dit.latent.iter().product();
    let (mut hits, mut written) = (0usize, 0usize);
    for ep in eps {
        let frames: Vec<&[u8]> = (0..ep.num_frames()).map(|t| ep.frame(t)).collect();
        let file = cache.map(|(dir, ae)| dir.join(format!("{ae:016x}-{:016x}.f32", hash_bytes(ae, &ep.frames))));
        let cached = file.as_ref().and_then(|f| std::fs::read(f).ok()).filter(|b| b.len() == cells * frames.len() * 4);
        let z: Vec<f32> = match cached {
            Some(b) => {
                hits += 1;
                b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            }
            None => {
                let z: Vec<f32> = wm.encode(&frames)?.flatten_all()?.to_vec1()?;
                if let Some(f) = &file {
                    crate::data::write_atomic(f, &z.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())?;
                    written += 1;
                }
                z
            }
        };
        let actions = (0..ep.steps()).map(|t| wm.normalise_action(ep.action(t))).collect::<Result<Vec<_>, _>>()?.concat();
        let bodies = wm.meta.bodies.len();
        let n = crate::data::STATE_FIELDS.len();
        let pos = (0..ep.num_frames())
            .flat_map(|t| {
                let st = ep.state(t);
                (0..bodies).map(move |b| st.get(b * n + STATE_PX..b * n + STATE_PX + 2).map_or([f32::NAN; 2], |p| [p[0], p[1]]))
            })
            .collect();
        out.push(EpisodeLatents { z, actions, frames: ep.num_frames(), pos });
    }
    if let Some((dir, _)) = cache {
        eprintln!("latent cache {}: {hits} episodes read, {written} encoded and written", dir.display());
    }
    Ok(out)
}

/// One training batch.
struct Batch {
    context: Tensor,
    context_mask: Tensor,
    actions: Tensor,
    action_mask: Tensor,
    drop_actions: Tensor,
    target: Tensor,
    text: Option<(Tensor, Tensor)>,
    text_keep: Tensor,
    progress: Tensor,
    reverse: Tensor,
    anchor: Tensor,
    anchor_mask: Tensor,
    anchor_dist: Tensor,
}

/// How windows are drawn.
struct Sampling<'a> {
    dit: &'a DitConfig,
    dyn_cfg: &'a DynamicsConfig,
    delta_scale: f32,
    /// Body names (captions).
    names: &'a [String],
    /// `(episode, frame)` of the frames an object moved into (`moving_fraction`'s targets).
    moving: &'a [(usize, usize)],
}

/// `(episode, frame)` of every frame in which a body of role `object` moved at least `MOVING_PX`
/// pixels from the frame before (by the recorded states).
fn moving_frames(eps: &[EpisodeLatents], objects: &[usize], bodies: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (i, e) in eps.iter().enumerate() {
        for t in 1..e.frames {
            let moved = objects.iter().any(|&b| {
                let (p, q) = (e.pos[(t - 1) * bodies + b], e.pos[t * bodies + b]);
                let d = ((q[0] - p[0]).powi(2) + (q[1] - p[1]).powi(2)).sqrt();
                d >= MOVING_PX
            });
            if moved {
                out.push((i, t));
            }
        }
    }
    out
}

/// Draws `b` windows. Most are plain: a target frame and 1 to K context frames before it, with
/// their actions. With `bidirectional`, some run backwards (the target is the frame before its
/// context; actions are the ones between the same frames) and some carry an anchor frame 1 to 32
/// steps beyond the target. With `text`, a share are captioned clips: a 16-step clip, its
/// caption (from the true body positions, in a drawn phrasing), the target's place in it, and
/// context that starts no earlier than the clip (as when a video is generated from one image).
fn make_batch(eps: &[EpisodeLatents], rng: &mut Rng, b: usize, sm: &Sampling, device: &Device) -> candle_core::Result<Batch> {
    let cfg = sm.dit;
    let dc = sm.dyn_cfg;
    let [lc, lh, lw] = cfg.latent;
    let cells = lc * lh * lw;
    let (k, a_dim, f) = (cfg.context, cfg.action_dim, cfg.chunk);
    let slots = cfg.action_slots();
    let nb = sm.names.len();
    let mut ctx = vec![0f32; b * k * cells];
    let mut cmask = vec![0f32; b * k];
    let mut acts = vec![0f32; b * slots * a_dim];
    let mut amask = vec![0f32; b * slots];
    let mut drop = vec![0f32; b];
    let mut target = vec![0f32; b * f * cells];
    let mut tokens: Vec<Option<crate::model::text::Tokens>> = vec![None; b];
    let mut text_keep = vec![0f32; b];
    let mut progress = vec![0f32; b];
    let mut reverse = vec![0f32; b];
    let mut anchor = vec![0f32; b * cells];
    let mut anchor_mask = vec![0f32; b];
    let mut anchor_dist = vec![0f32; b];
    for i in 0..b {
        // A window on a frame an object moved into (`moving_fraction`), else a uniform one.
        let focus = if dc.moving_fraction > 0.0 && !sm.moving.is_empty() && (rng.uniform() as f64) < dc.moving_fraction {
            let (ei, t) = sm.moving[rng.below(sm.moving.len())];
            // The chunk's F frames must fit.
            (t + f <= eps[ei].frames).then_some((ei, t))
        } else {
            None
        };
        let e = &eps[focus.map_or_else(|| rng.below(eps.len()), |(ei, _)| ei)];
        // The caption encoder's config when this window is a captioned clip.
        let clip_text = cfg.text.as_ref().filter(|_| focus.is_none() && e.frames > CLIP_STEPS && CLIP_STEPS >= f && (rng.uniform() as f64) < dc.text_fraction);
        let captioned = clip_text.is_some();
        let dir: isize = if focus.is_none() && !captioned && cfg.bidirectional && (rng.uniform() as f64) < dc.reverse_fraction { -1 } else { 1 };
        let last = e.frames as isize - 1;
        // First target frame t (the chunk's F frames run from it in the window's direction) and
        // how many frames lie behind it.
        let (t, behind) = if let Some((_, t)) = focus {
            (t as isize, t)
        } else if let Some(text_cfg) = clip_text {
            let s0 = rng.below(e.frames - CLIP_STEPS);
            let j = 1 + rng.below(CLIP_STEPS + 1 - f);
            let first: Vec<[f32; 2]> = e.pos[s0 * nb..(s0 + 1) * nb].to_vec();
            let end = s0 + CLIP_STEPS;
            let motion = clip_motion(&first, &e.pos[end * nb..(end + 1) * nb]);
            let caption = phrase_motion(sm.names, &motion, &TRAIN_PHRASING, |n| rng.below(n));
            // A caption longer than the encoder reads trains as an uncaptioned clip.
            tokens[i] = tokenize(&caption, text_cfg).ok();
            let dropped = rng.uniform() < 0.15;
            text_keep[i] = if dropped || tokens[i].is_none() { 0.0 } else { 1.0 };
            progress[i] = j as f32 / CLIP_STEPS as f32;
            ((s0 + j) as isize, j)
        } else if dir > 0 {
            let t = 1 + rng.below(e.frames - f);
            (t as isize, t)
        } else {
            let t = f - 1 + rng.below(e.frames - f);
            (t as isize, e.frames - 1 - t)
        };
        reverse[i] = (dir < 0) as u8 as f32;
        let n = 1 + rng.below(k.min(behind));
        for j in 0..n {
            let slot = k - n + j;
            let f = (t - dir * (n - j) as isize) as usize;
            // The action between frame f and the next one in the window's direction.
            let a = if dir > 0 { f } else { f - 1 };
            ctx[(i * k + slot) * cells..(i * k + slot + 1) * cells].copy_from_slice(&e.z[f * cells..(f + 1) * cells]);
            cmask[i * k + slot] = 1.0;
            acts[(i * slots + slot) * a_dim..(i * slots + slot + 1) * a_dim].copy_from_slice(&e.actions[a * a_dim..(a + 1) * a_dim]);
            amask[i * slots + slot] = 1.0;
        }
        // The chunk's further frames and the actions that lead to them.
        for j in 1..f {
            let a = if dir > 0 { t as usize + j - 1 } else { t as usize - j };
            let slot = k - 1 + j;
            acts[(i * slots + slot) * a_dim..(i * slots + slot + 1) * a_dim].copy_from_slice(&e.actions[a * a_dim..(a + 1) * a_dim]);
            amask[i * slots + slot] = 1.0;
        }
        let p = (t - dir) as usize;
        for j in 0..f {
            let tj = (t + dir * j as isize) as usize;
            for c in 0..cells {
                target[(i * f + j) * cells + c] = (e.z[tj * cells + c] - e.z[p * cells + c]) / sm.delta_scale;
            }
        }
        // The chunk's last frame.
        let t = (t + dir * (f as isize - 1)) as usize;
        let drop_p = if captioned { 0.5 } else { dc.action_dropout as f32 };
        drop[i] = (rng.uniform() < drop_p) as u8 as f32;
        if cfg.bidirectional && !captioned && (rng.uniform() as f64) < dc.anchor_fraction {
            // From the chunk's last frame: 1..32 beyond it, or (F > 1) one of its frames after
            // the first, as at the end of an interpolation.
            let room = if dir > 0 { last - t as isize } else { t as isize } as usize;
            let choices = room.min(ANCHOR_RANGE as usize) + f - 1;
            if choices >= 1 {
                let d = 2 - f as isize + rng.below(choices) as isize;
                let af = (t as isize + dir * d) as usize;
                anchor[i * cells..(i + 1) * cells].copy_from_slice(&e.z[af * cells..(af + 1) * cells]);
                anchor_mask[i] = 1.0;
                anchor_dist[i] = d as f32 / ANCHOR_RANGE;
            }
        }
    }
    let text = match &cfg.text {
        Some(tc) if tokens.iter().any(|t| t.is_some()) => {
            let rows: Vec<Option<&crate::model::text::Tokens>> = tokens.iter().map(|t| t.as_ref()).collect();
            Some(crate::model::text::stack(&rows, tc, device)?)
        }
        _ => None,
    };
    let v = |x: Vec<f32>| Tensor::from_vec(x, b, device);
    Ok(Batch {
        context: Tensor::from_vec(ctx, (b, k, lc, lh, lw), device)?,
        context_mask: Tensor::from_vec(cmask, (b, k), device)?,
        actions: Tensor::from_vec(acts, (b, slots, a_dim), device)?,
        action_mask: Tensor::from_vec(amask, (b, slots), device)?,
        drop_actions: v(drop)?,
        target: Tensor::from_vec(target, (b, f * lc, lh, lw), device)?,
        text,
        text_keep: v(text_keep)?,
        progress: v(progress)?,
        reverse: v(reverse)?,
        anchor: Tensor::from_vec(anchor, (b, lc, lh, lw), device)?,
        anchor_mask: v(anchor_mask)?,
        anchor_dist: v(anchor_dist)?,
    })
}

/// Replaces the last 1 to `self_context_depth` context frames of a `self_context` share of the
/// batch's forward, uncaptioned, unanchored windows with at least two context frames by the
/// model's own predictions, oldest first (each drawn by `sampler` from the frames before it, the
/// already replaced ones included, with the true actions), and moves the targets so that they
/// still lead to the true frames.
/// Returns how many frames each window had replaced.
fn self_condition(wm: &WorldModel, batch: &mut Batch, dc: &DynamicsConfig, sampler: &SamplerConfig, rng: &mut Rng) -> candle_core::Result<Vec<usize>> {
    let b = batch.target.dim(0)?;
    if dc.self_context == 0.0 {
        return Ok(vec![0; b]);
    }
    let dev = batch.target.device().clone();
    let (k, delta_scale) = (wm.meta.context, wm.meta.delta_scale);
    let [lc, lh, lw] = wm.meta.dit.latent;
    let cells = lc * lh * lw;
    let (f, slots, a_dim) = (wm.meta.dit.chunk, wm.meta.dit.action_slots(), wm.meta.dit.action_dim);
    let cmask: Vec<f32> = batch.context_mask.flatten_all()?.to_vec1()?;
    let (reverse, progress, anchored): (Vec<f32>, Vec<f32>, Vec<f32>) = (batch.reverse.to_vec1()?, batch.progress.to_vec1()?, batch.anchor_mask.to_vec1()?);
    let depth: Vec<usize> = (0..b)
        .map(|i| {
            let n = (0..k).filter(|&s| cmask[i * k + s] > 0.0).count();
            let eligible = reverse[i] == 0.0 && progress[i] == 0.0 && anchored[i] == 0.0 && n >= 2;
            if eligible && (rng.uniform() as f64) < dc.self_context {
                1 + rng.below(dc.self_context_depth.min(n - 1))
            } else {
                0
            }
        })
        .collect();
    let Some(&deepest) = depth.iter().max().filter(|&&d| d > 0) else { return Ok(depth) };
    let mut ctx: Vec<f32> = batch.context.flatten_all()?.to_vec1()?;
    let acts: Vec<f32> = batch.actions.flatten_all()?.to_vec1()?;
    let amask: Vec<f32> = batch.action_mask.flatten_all()?.to_vec1()?;
    let old_last: Vec<f32> = (0..b).flat_map(|i| ctx[(i * k + k - 1) * cells..(i * k + k) * cells].to_vec()).collect();
    for l in (1..=deepest).rev() {
        let rows: Vec<usize> = (0..b).filter(|&i| depth[i] >= l).collect();
        let m = rows.len();
        // The window that ends l frames earlier: every context and action slot moves l later.
        let (mut c2, mut cm2) = (vec![0f32; m * k * cells], vec![0f32; m * k]);
        let (mut a2, mut am2) = (vec![0f32; m * slots * a_dim], vec![0f32; m * slots]);
        for (r, &i) in rows.iter().enumerate() {
            for s in l..k {
                c2[(r * k + s) * cells..(r * k + s + 1) * cells].copy_from_slice(&ctx[(i * k + s - l) * cells..(i * k + s - l + 1) * cells]);
                cm2[r * k + s] = cmask[i * k + s - l];
            }
            for s in l..slots {
                a2[(r * slots + s) * a_dim..(r * slots + s + 1) * a_dim].copy_from_slice(&acts[(i * slots + s - l) * a_dim..(i * slots + s - l + 1) * a_dim]);
                am2[r * slots + s] = amask[i * slots + s - l];
            }
        }
        let (context, context_mask) = (Tensor::from_vec(c2, (m, k, lc, lh, lw), &dev)?, Tensor::from_vec(cm2, (m, k), &dev)?);
        let (actions, action_mask) = (Tensor::from_vec(a2, (m, slots, a_dim), &dev)?, Tensor::from_vec(am2, (m, slots), &dev)?);
        let drop_actions = Tensor::zeros(m, candle_core::DType::F32, &dev)?;
        let cond = Conditioning { context: &context, context_mask: &context_mask, actions: &actions, action_mask: &action_mask, drop_actions: &drop_actions, extras: None };
        let noise = seeded_noise(rng, &[m, f * lc, lh, lw], &dev)?;
        let delta: Vec<f32> = sample(&wm.dit, &cond, &noise, sampler)?.narrow(1, 0, lc)?.detach().flatten_all()?.to_vec1()?;
        let mut made = vec![0f32; m * cells];
        for (r, &i) in rows.iter().enumerate() {
            let prev = (i * k + k - l - 1) * cells;
            for c in 0..cells {
                made[r * cells + c] = ctx[prev + c] + delta[r * cells + c] * delta_scale;
            }
        }
        if sampler.reencode {
            // As in a re-encoding rollout: the prediction becomes context as an 8-bit image. A
            // rollout that re-encodes every n-th chunk feeds raw predicted latents in between:
            // here each replaced frame is re-encoded with probability 1/n.
            let picked: Vec<usize> = (0..m).filter(|_| sampler.reencode_every <= 1 || rng.below(sampler.reencode_every) == 0).collect();
            if !picked.is_empty() {
                let chosen: Vec<f32> = picked.iter().flat_map(|&r| made[r * cells..(r + 1) * cells].iter().copied()).collect();
                let images = reencode(wm, &Tensor::from_vec(chosen, (picked.len(), lc, lh, lw), &dev)?)?;
                for (j, &r) in picked.iter().enumerate() {
                    made[r * cells..(r + 1) * cells].copy_from_slice(&images[j * cells..(j + 1) * cells]);
                }
            }
        }
        for (r, &i) in rows.iter().enumerate() {
            let slot = (i * k + k - l) * cells;
            ctx[slot..slot + cells].copy_from_slice(&made[r * cells..(r + 1) * cells]);
        }
    }
    let mut target: Vec<f32> = batch.target.flatten_all()?.to_vec1()?;
    for i in (0..b).filter(|&i| depth[i] > 0) {
        let last = (i * k + k - 1) * cells;
        for j in 0..f {
            for c in 0..cells {
                target[(i * f + j) * cells + c] += (old_last[i * cells + c] - ctx[last + c]) / delta_scale;
            }
        }
    }
    batch.context = Tensor::from_vec(ctx, (b, k, lc, lh, lw), &dev)?;
    batch.target = Tensor::from_vec(target, batch.target.shape(), &dev)?;
    Ok(depth)
}

/// Decodes normalised latents `(N, C, h, w)` to 8-bit frames and encodes them again.
fn reencode(wm: &WorldModel, z: &Tensor) -> candle_core::Result<Vec<f32>> {
    let err = |e: crate::world_model::WorldModelError| candle_core::Error::Msg(e.to_string());
    let frames = wm.decode(z).map_err(err)?;
    wm.encode(&frames.iter().map(|f| f.as_slice()).collect::<Vec<_>>()).map_err(err)?.flatten_all()?.to_vec1()
}

/// The rectified-flow x-prediction loss of one batch, with context noise, action dropout and a
/// weight `1 / max(τ, 0.5)²` (so τ = 1, the only level a one-step sampler visits, is not starved)
/// times `1 + moving_weight` on cells that change.
fn batch_loss(wm: &WorldModel, batch: &Batch, dyn_cfg: &DynamicsConfig, rng: &mut Rng) -> candle_core::Result<Tensor> {
    let dev = batch.target.device();
    let (b, k) = (batch.target.dim(0)?, wm.meta.context);
    let [lc, lh, lw] = wm.meta.dit.latent;
    let taus: Vec<f32> = (0..b).map(|_| if rng.uniform() < 0.3 { 1.0 } else { rng.uniform() }).collect();
    let sig: Vec<f32> = (0..b).map(|_| rng.uniform() * dyn_cfg.max_context_noise as f32).collect();
    let tau = Tensor::from_vec(taus.clone(), b, dev)?;
    let sigma = Tensor::from_vec(sig, b, dev)?;
    let eps = seeded_noise(rng, &[b, wm.meta.dit.chunk * lc, lh, lw], dev)?;
    let t4 = tau.reshape((b, 1, 1, 1))?;
    let noisy = (batch.target.broadcast_mul(&(1.0 - &t4)?)? + eps.broadcast_mul(&t4)?)?;
    let ctx_eps = seeded_noise(rng, &[b, k, lc, lh, lw], dev)?;
    let ctx_noise = ctx_eps.broadcast_mul(&sigma.reshape((b, 1, 1, 1, 1))?)?.broadcast_mul(&batch.context_mask.reshape((b, k, 1, 1, 1))?)?;
    let context = (&batch.context + ctx_noise)?;
    let extras = DitExtras {
        text: batch.text.as_ref().map(|(w, m)| (w, m)),
        text_keep: &batch.text_keep,
        progress: &batch.progress,
        reverse: &batch.reverse,
        anchor: &batch.anchor,
        anchor_mask: &batch.anchor_mask,
        anchor_dist: &batch.anchor_dist,
    };
    let pred = wm.dit.forward(&DitInput {
        noisy: &noisy,
        context: &context,
        context_mask: &batch.context_mask,
        tau: &tau,
        context_noise: &sigma,
        actions: &batch.actions,
        action_mask: &batch.action_mask,
        drop_actions: &batch.drop_actions,
        extras: Some(&extras),
    })?;
    let w_tau: Vec<f32> = taus.iter().map(|t| 1.0 / t.max(0.5).powi(2)).collect();
    let w_tau = Tensor::from_vec(w_tau, (b, 1, 1, 1), dev)?;
    let moving = (batch.target.abs()?.ge(0.5)?.to_dtype(candle_core::DType::F32)? * dyn_cfg.moving_weight)? + 1.0;
    let err = (&pred - &batch.target)?.sqr()?;
    let loss = err.broadcast_mul(&w_tau)?.mul(&moving?)?.mean_all()?;
    if dyn_cfg.pixel_weight == 0.0 {
        return Ok(loss);
    }
    // The windows at noise level 1, for the pixel loss.
    let rows: Vec<u32> = taus.iter().enumerate().filter(|&(_, &t)| t == 1.0).map(|(i, _)| i as u32).collect();
    if rows.is_empty() {
        return Ok(loss);
    }
    Ok((loss + (pixel_loss(wm, batch, &pred, &rows, dyn_cfg.moving_weight, dyn_cfg.pixel_colour_weight)? * dyn_cfg.pixel_weight)?)?)
}

/// `pixel_weight`'s term: the mean absolute difference between the decoded predicted and true
/// first target frames of windows `rows`, pixels that change from the last context frame
/// weighted `1 + moving_weight`, times `1 + colour_weight` on the true frame's saturated pixels.
fn pixel_loss(wm: &WorldModel, batch: &Batch, pred: &Tensor, rows: &[u32], moving_weight: f64, colour_weight: f64) -> candle_core::Result<Tensor> {
    let idx = Tensor::new(rows, pred.device())?;
    let lc = wm.meta.dit.latent[0];
    let k = wm.meta.context;
    // Targets are deltas from the last context frame in units of `delta_scale` (after
    // `self_condition` too, which moves them so that they still lead to the true frames).
    let last = batch.context.narrow(1, k - 1, 1)?.squeeze(1)?.contiguous()?.index_select(&idx, 0)?;
    let frame = |delta: &Tensor| -> candle_core::Result<Tensor> {
        let z = (&last + (delta.narrow(1, 0, lc)?.contiguous()?.index_select(&idx, 0)? * wm.meta.delta_scale as f64)?)?;
        wm.autoencoder.decode(&(z * wm.meta.latent_scale as f64)?)
    };
    let predicted = frame(pred)?;
    let truth = frame(&batch.target)?.detach();
    let before = wm.autoencoder.decode(&(&last * wm.meta.latent_scale as f64)?)?.detach();
    let changed = ((&truth - &before)?.abs()?.max_keepdim(1)?.ge(PIXEL_CHANGE)?.to_dtype(candle_core::DType::F32)? * moving_weight)? + 1.0;
    let weight = (changed? * super::autoencoder::colour_weights(&truth, colour_weight)?)?;
    (predicted - truth)?.abs()?.broadcast_mul(&weight)?.mean_all()
}

/// What stage 2 needs from the rest of training.
pub struct DynamicsJob<'a> {
    /// Data.
    pub pool: &'a FramePool,
    /// The dataset's manifest (scene, actions, bodies).
    pub manifest: &'a Manifest,
    /// Transformer sizes and regularisation.
    pub config: &'a DynamicsConfig,
    /// Schedule.
    pub stage: &'a StageConfig,
    /// Default sampler stored in the checkpoint.
    pub sampler: SamplerConfig,
    /// Seed.
    pub seed: u64,
    /// Output directory (holds `autoencoder.safetensors` from stage 1).
    pub out: &'a Path,
    /// Continue a killed run.
    pub resume: bool,
    /// Folder of cached episode latents (see [`encode_episodes`]).
    pub latent_cache: Option<&'a Path>,
    /// The command line, stored in the checkpoint.
    pub command: String,
    /// Fine-tune from this world-model checkpoint: its transformer sizes, weights and delta
    /// scale are used (its autoencoder is installed as stage 1 by the caller).
    pub init: Option<&'a Path>,
}

/// Where a stage stopped.
pub enum StageEnd {
    /// All steps done.
    Finished(WorldModelMeta),
    /// The step budget of this invocation ran out; a checkpoint was written.
    Paused(u64),
}

/// Trains (or resumes) stage 2; writes `out/world_model.safetensors` + `.json`.
pub fn train_dynamics(job: &DynamicsJob, budget: &mut u64, mut progress: impl FnMut(u64, f64, f64, Option<f64>)) -> anyhow::Result<StageEnd> {
    let device = Device::Cpu;
    let out = job.out;
    let ae = load_autoencoder(&out.join("autoencoder.safetensors"), &device)?;
    let m = job.manifest;
    let dc = job.config;
    let init = match job.init {
        Some(p) => Some((WorldModel::load(p)?, load_tensors(p, &device)?)),
        None => None,
    };
    let dit_cfg = match &init {
        // Another action vector is allowed: only the action embedding starts afresh.
        Some((init, _)) => DitConfig {
            action_dim: m.action_spec.dim,
            latent: ae.meta.config.latent_shape().into(),
            text: dc.text.clone().or(init.meta.dit.text.clone()),
            bidirectional: dc.bidirectional || init.meta.dit.bidirectional,
            chunk: dc.chunk.unwrap_or(init.meta.dit.chunk),
            token_actions: dc.token_actions || init.meta.dit.token_actions,
            ..init.meta.dit.clone()
        },
        None => DitConfig {
            latent: ae.meta.config.latent_shape().into(),
            patch: dc.patch,
            context: dc.context,
            action_dim: m.action_spec.dim,
            dim: dc.dim,
            depth: dc.depth,
            heads: dc.heads,
            mlp_ratio: dc.mlp_ratio,
            text: dc.text.clone(),
            bidirectional: dc.bidirectional,
            chunk: dc.chunk.unwrap_or(1),
            token_actions: dc.token_actions,
        },
    };
    dc.check()?;
    dit_cfg.validate().map_err(|e| anyhow::anyhow!("dynamics: {e}"))?;
    let mut meta = WorldModelMeta {
        format_version: WM_FORMAT_VERSION,
        scene: m.scene.clone(),
        scene_hash: m.scene_hash.clone(),
        resolution: m.resolution,
        dt: m.dt,
        frame_skip: m.frame_skip,
        action_spec: m.action_spec.clone(),
        bodies: m.bodies.clone(),
        context: dit_cfg.context,
        latent_scale: ae.meta.latent_scale,
        delta_scale: 1.0,
        autoencoder: ae.meta.config.clone(),
        dit: dit_cfg.clone(),
        sampler: job.sampler,
        autoencoder_psnr: ae.meta.val_psnr,
        train_seeds: job.pool.train_seeds(),
        steps: 0,
        command: job.command.clone(),
    };
    if let Some((init, _)) = &init {
        meta.inherit_train_seeds(&init.meta);
    }
    let vm = VarMap::new();
    let mut wm = WorldModel::build(meta.clone(), &vm, &device)?;
    super::checkpoint::reseed_varmap(&vm, job.seed ^ 0xd1)?;
    // Copy the frozen autoencoder in; only `dit.*` variables are optimised.
    let ae_tensors = load_tensors(&out.join("autoencoder.safetensors"), &device)?;
    for (name, var) in vm.data().lock().map_err(|_| anyhow::anyhow!("poisoned"))?.iter() {
        if let Some(rest) = name.strip_prefix("ae.") {
            let t = ae_tensors.get(rest).ok_or_else(|| anyhow::anyhow!("autoencoder checkpoint lacks {rest}"))?;
            var.set(t)?;
        }
    }
    // The transformer's autoencoder reads plain tensors, not the variables, so the pixel loss's
    // backward pass stops at the decoder's input rather than also taking the frozen weights'
    // gradients (same weights byte for byte; step time unchanged within noise, session 22). The
    // variables keep the same values for the checkpoint.
    wm.autoencoder = crate::model::autoencoder::Autoencoder::new(
        meta.autoencoder.clone(),
        candle_nn::VarBuilder::from_tensors(ae_tensors, candle_core::DType::F32, &device),
    )?;
    let names: Vec<String> = m.bodies.iter().map(|b| b.name.clone()).collect();
    let cache = match job.latent_cache {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating the latent cache {}: {e}", dir.display()))?;
            Some((dir, encoder_key(&out.join("autoencoder.safetensors"))?))
        }
        None => None,
    };
    let train = encode_episodes(&wm, &job.pool.train, cache)?;
    let val = encode_episodes(&wm, &job.pool.val, cache)?;
    meta.delta_scale = match &init {
        Some((init, src)) => {
            // Start from the pretrained transformer, in its normalisation; tensors whose shape
            // differs (the action embedding, for another action vector) keep their fresh init;
            // branches it lacks (text, direction, anchor) start fresh with zero outputs, and its
            // token embedding gains zero columns for the anchor.
            let (mut fresh, mut added) = (Vec::new(), Vec::new());
            let same_actions = init.meta.action_spec.dim == m.action_spec.dim;
            check_init_layout(&init.meta.dit, &dit_cfg).map_err(|e| anyhow::anyhow!("--init {}: {e}", init.meta.scene))?;
            for (name, var) in vm.data().lock().map_err(|_| anyhow::anyhow!("poisoned"))?.iter() {
                if !name.starts_with("dit.") {
                    continue;
                }
                let Some(t) = src.get(name) else {
                    anyhow::ensure!(is_new_branch(name), "--init checkpoint lacks {name}");
                    added.push(name.clone());
                    continue;
                };
                let t = t.to_dtype(var.dtype())?;
                if t.dims() == var.dims() {
                    var.set(&t)?;
                } else if (name == "dit.embed.weight" || (name == "dit.act1.weight" && same_actions)) && t.dim(0)? == var.dim(0)? && t.dim(1)? < var.dim(1)? {
                    // New inputs (anchor cells, further chunk frames and their actions, token
                    // actions) are appended last (`check_init_layout`): zero columns leave the
                    // model as it was.
                    let pad = Tensor::zeros((t.dim(0)?, var.dim(1)? - t.dim(1)?), t.dtype(), t.device())?;
                    var.set(&Tensor::cat(&[&t, &pad], 1)?)?;
                } else if name.starts_with("dit.out.") && init.meta.dit.chunk == 1 {
                    // One frame a call to a chunk: every predicted frame starts as that frame.
                    var.set(&Tensor::cat(&vec![&t; dit_cfg.chunk], 0)?)?;
                } else {
                    fresh.push(name.clone());
                }
            }
            if !fresh.is_empty() {
                fresh.sort();
                eprintln!("--init: {} takes {}-d actions, the data {}-d; starting afresh: {}", init.meta.scene, init.meta.action_spec.dim, m.action_spec.dim, fresh.join(", "));
            }
            if !added.is_empty() {
                eprintln!("--init: {} new tensors (text, direction, anchor branches) start from their initialisation", added.len());
            }
            // The transformer predicts frame deltas in units of `delta_scale`: kept when the
            // latent is the checkpoint's (same scene, autoencoder kept), measured on the new
            // episodes otherwise (another scene's bodies move in other steps, and a fine-tuned
            // autoencoder has another latent scale).
            if init.meta.scene_hash == m.scene_hash && init.meta.latent_scale == meta.latent_scale {
                init.meta.delta_scale
            } else {
                let measured = delta_std(&train, dit_cfg.latent.iter().product());
                eprintln!("--init: frame deltas measured on the new data: scale {measured:.4} (the checkpoint's {:.4})", init.meta.delta_scale);
                measured
            }
        }
        None => delta_std(&train, dit_cfg.latent.iter().product()),
    };
    wm.meta.delta_scale = meta.delta_scale;
    let dit_vars: HashMap<String, candle_core::Var> = vm.data().lock().map_err(|_| anyhow::anyhow!("poisoned"))?.iter().filter(|(k, _)| k.starts_with("dit.")).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut opt = AdamW::new(dit_vars.clone(), AdamWConfig { lr: job.stage.lr, weight_decay: 0.0, ..Default::default() })?;
    let weights = out.join("world_model.safetensors");
    let opt_path = out.join("dynamics.opt.safetensors");
    let state_path = out.join("dynamics.state.json");
    let live_path = out.join("dynamics.live.safetensors");
    let mut state = StageState::default();
    // The moving average of the transformer's weights (`dynamics_stage.ema`), by name.
    let mut ema: Option<HashMap<String, Tensor>> = None;
    if job.resume && state_path.exists() {
        state = load_json(&state_path)?;
        if job.stage.ema > 0.0 && live_path.exists() {
            load_into_varmap(&vm, &load_tensors(&live_path, &device)?, &live_path, "")?;
            let avg: HashMap<String, Tensor> = load_tensors(&weights, &device)?.into_iter().filter(|(k, _)| k.starts_with("dit.")).collect();
            if let Some(k) = dit_vars.keys().find(|k| avg.get(*k).map(|t| t.dims()) != Some(dit_vars[*k].dims())).or(avg.keys().find(|k| !dit_vars.contains_key(*k))) {
                anyhow::bail!("{}: its moving average does not match the transformer at {k}", weights.display());
            }
            ema = Some(avg);
        } else {
            // A run started without `ema` and resumed with it: its checkpoint holds live
            // weights, and the average starts from them at this step.
            if job.stage.ema > 0.0 {
                eprintln!("dynamics: {} holds live weights (the run was started without `ema`); the moving average starts from them at step {}", weights.display(), state.step);
            }
            anyhow::ensure!(job.stage.ema > 0.0 || !live_path.exists(), "{}: the run was started with `ema` (its world_model.safetensors holds the average): resume it with the config it started with", live_path.display());
            load_into_varmap(&vm, &load_tensors(&weights, &device)?, &weights, "")?;
        }
        opt.load_state(&load_tensors(&opt_path, &device)?, state.step)?;
        let saved: WorldModelMeta = load_json(&json_path(&weights))?;
        meta.delta_scale = saved.delta_scale;
        wm.meta.delta_scale = saved.delta_scale;
    }
    let started = Instant::now() - std::time::Duration::from_secs_f64(state.seconds);
    let mut window = (Instant::now(), state.step);
    let mut val_loss = state.val.last().map_or(f64::NAN, |v| v.1);
    if job.stage.ema > 0.0 && ema.is_none() {
        ema = Some(dit_vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect());
    }
    let save = |vm: &VarMap, opt: &AdamW, state: &StageState, meta: &mut WorldModelMeta, ema: &Option<HashMap<String, Tensor>>| -> anyhow::Result<()> {
        meta.steps = state.step;
        let mut tensors = varmap_tensors(vm);
        if let Some(avg) = ema {
            // Live weights first: a run killed between the two writes resumes from the last
            // complete pair (the state file is written last).
            save_tensors(&live_path, &tensors)?;
            tensors.extend(avg.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        save_tensors(&weights, &tensors)?;
        save_json(&json_path(&weights), meta)?;
        save_tensors(&opt_path, &opt.state())?;
        save_json(&state_path, state)?;
        Ok(())
    };
    let objects: Vec<usize> = m.bodies.iter().enumerate().filter(|(_, b)| b.role == crate::scene::Role::Object).map(|(i, _)| i).collect();
    let moving = if dc.moving_fraction > 0.0 { moving_frames(&train, &objects, m.bodies.len()) } else { Vec::new() };
    if dc.moving_fraction > 0.0 {
        let frames: usize = train.iter().map(|e| e.frames - 1).sum();
        eprintln!("dynamics: {} of {} training frames have an object moving (>= {MOVING_PX} px); {:.0}% of windows target them", moving.len(), frames, dc.moving_fraction * 100.0);
    }
    let sm = Sampling { dit: &dit_cfg, dyn_cfg: dc, delta_scale: meta.delta_scale, names: &names, moving: &moving };
    // Validation draws uniform windows, comparable with runs without `moving_fraction`.
    let val_sm = Sampling { moving: &[], ..sm };
    // Self-generated context is drawn as a rollout would be: without guidance, and re-encoded
    // as images when the checkpoint's sampler re-encodes.
    let gen_sampler = SamplerConfig { guidance: 1.0, text_guidance: 1.0, ..job.sampler };
    // Fixed held-out batches, fixed noise: comparable across the run.
    let held_out = || -> candle_core::Result<f64> {
        let mut vr = Rng::new(0x5eed);
        let mut total = 0.0;
        for _ in 0..4 {
            let vb = make_batch(&val, &mut vr, 32, &val_sm, &device)?;
            total += batch_loss(&wm, &vb, dc, &mut vr)?.to_scalar::<f32>()? as f64 / 4.0;
        }
        Ok(total)
    };
    while state.step < job.stage.steps {
        if *budget == 0 {
            state.seconds = started.elapsed().as_secs_f64();
            save(&vm, &opt, &state, &mut meta, &ema)?;
            return Ok(StageEnd::Paused(state.step));
        }
        *budget -= 1;
        let step = state.step;
        opt.config.lr = lr_at(job.stage, step);
        let mut rng = Rng::new(job.seed ^ 0xd1ce ^ crate::rng::mix64(step.wrapping_add(1)));
        let mut batch = make_batch(&train, &mut rng, job.stage.batch, &sm, &device)?;
        self_condition(&wm, &mut batch, dc, &gen_sampler, &mut rng)?;
        let loss = batch_loss(&wm, &batch, dc, &mut rng)?;
        let grads = loss.backward()?;
        opt.step(&grads)?;
        let l = loss.to_scalar::<f32>()? as f64;
        anyhow::ensure!(l.is_finite(), "dynamics loss became {l} at step {step}; lower the learning rate");
        state.step += 1;
        if let Some(avg) = ema.as_mut() {
            let n = state.step as f64;
            let decay = job.stage.ema.min((1.0 + n) / (10.0 + n));
            for (name, t) in avg.iter_mut() {
                *t = ((&*t * decay)? + (dit_vars[name].as_tensor().detach() * (1.0 - decay))?)?;
            }
        }
        if state.step % 10 == 0 {
            state.loss.push((state.step, l));
        }
        let validate = state.step % job.stage.val_every == 0 || state.step == job.stage.steps;
        if validate {
            // With `ema`, the average is validated (it is what the checkpoint holds): swapped in,
            // then the live weights back.
            let live: Vec<(&candle_core::Var, Tensor)> = match &ema {
                Some(avg) => {
                    let live = dit_vars.iter().map(|(_, v)| Ok((v, v.as_tensor().copy()?))).collect::<candle_core::Result<Vec<_>>>()?;
                    for (k, v) in &dit_vars {
                        v.set(&avg[k])?;
                    }
                    live
                }
                None => Vec::new(),
            };
            let total = held_out()?;
            for (v, t) in &live {
                v.set(t)?;
            }
            if ema.is_some() {
                let live_loss = held_out()?;
                eprintln!("dynamics step {}: held-out loss {total:.4} with the moving average, {live_loss:.4} with the live weights", state.step);
            }
            val_loss = total;
            state.val.push((state.step, val_loss));
        }
        let rate = (state.step - window.1) as f64 / window.0.elapsed().as_secs_f64().max(1e-9);
        progress(state.step, l, rate, validate.then_some(val_loss));
        if window.0.elapsed().as_secs_f64() > 30.0 {
            window = (Instant::now(), state.step);
        }
        if state.step % job.stage.ckpt_every == 0 || state.step == job.stage.steps {
            state.seconds = started.elapsed().as_secs_f64();
            save(&vm, &opt, &state, &mut meta, &ema)?;
        }
    }
    state.seconds = started.elapsed().as_secs_f64();
    save(&vm, &opt, &state, &mut meta, &ema)?;
    Ok(StageEnd::Finished(meta))
}

/// Checks that `init`'s token embedding and action features are prefixes of `new`'s, so that
/// `--init` can extend them with zero columns: inputs are appended in the order anchor, further
/// chunk frames, token actions, so a chunk can only grow from one frame a call, and neither a
/// chunked checkpoint nor one with token actions can gain what comes before.
fn check_init_layout(init: &DitConfig, new: &DitConfig) -> Result<(), String> {
    let chunked = init.chunk > 1 || init.token_actions;
    if init.chunk != new.chunk && chunked {
        return Err(format!("it predicts {} frame(s) a call{}; only a one-frame checkpoint without token actions can move to chunk {}", init.chunk, if init.token_actions { " with token actions" } else { "" }, new.chunk));
    }
    if new.bidirectional && !init.bidirectional && chunked {
        return Err("a chunked checkpoint or one with token actions cannot gain backward prediction and anchors".into());
    }
    if init.token_actions && init.action_dim != new.action_dim {
        return Err(format!("it has token actions, so its action dimension ({}) must stay", init.action_dim));
    }
    Ok(())
}

/// Transformer tensors that a checkpoint from before issue 6 lacks.
fn is_new_branch(name: &str) -> bool {
    ["dit.text.", "dit.progress_embed.", "dit.direction.", "dit.anchor_dist_embed."].iter().any(|p| name.starts_with(p))
}

/// Standard deviation of frame-to-frame latent changes.
fn delta_std(eps: &[EpisodeLatents], cells: usize) -> f32 {
    let (mut s, mut n) = (0f64, 0usize);
    for e in eps {
        for t in 1..e.frames {
            for c in 0..cells {
                let d = (e.z[t * cells + c] - e.z[(t - 1) * cells + c]) as f64;
                s += d * d;
                n += 1;
            }
        }
    }
    ((s / n.max(1) as f64).sqrt() as f32).max(1e-4)
}


/// Dynamics training steps per second (batch `batch`, forward, backward and AdamW) for a model
/// shaped like `meta`, on synthetic latents; best of `steps` timed steps after one warm-up.
pub fn measure_train_speed(meta: &WorldModelMeta, batch: usize, steps: usize) -> anyhow::Result<f64> {
    let device = Device::Cpu;
    let vm = VarMap::new();
    let wm = WorldModel::build(meta.clone(), &vm, &device)?;
    let dit_vars = vm.data().lock().map_err(|_| anyhow::anyhow!("poisoned"))?.iter().filter(|(k, _)| k.starts_with("dit.")).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut opt = AdamW::new(dit_vars, AdamWConfig::default())?;
    let cells: usize = meta.dit.latent.iter().product();
    let a = meta.action_spec.dim;
    let mut rng = Rng::new(1);
    let eps: Vec<EpisodeLatents> = (0..4)
        .map(|_| EpisodeLatents { z: (0..33 * cells).map(|_| rng.normal()).collect(), actions: (0..32 * a).map(|_| rng.range(-1.0, 1.0)).collect(), frames: 33, pos: (0..33 * meta.bodies.len()).map(|_| [rng.range(0.0, 64.0), rng.range(0.0, 64.0)]).collect() })
        .collect();
    let cfg = DynamicsConfig {
        context: meta.context,
        patch: meta.dit.patch,
        dim: meta.dit.dim,
        depth: meta.dit.depth,
        heads: meta.dit.heads,
        mlp_ratio: meta.dit.mlp_ratio,
        action_dropout: 0.1,
        max_context_noise: 0.2,
        moving_weight: 8.0,
        text: meta.dit.text.clone(),
        bidirectional: meta.dit.bidirectional,
        text_fraction: 0.5,
        reverse_fraction: 0.2,
        anchor_fraction: 0.3,
        chunk: Some(meta.dit.chunk),
        token_actions: meta.dit.token_actions,
        self_context: 0.0,
        self_context_depth: 2,
        moving_fraction: 0.0,
        pixel_weight: 0.0,
        pixel_colour_weight: 0.0,
    };
    let names: Vec<String> = meta.bodies.iter().map(|b| b.name.clone()).collect();
    let mut best = f64::INFINITY;
    for i in 0..=steps {
        let t = Instant::now();
        let sm = Sampling { dit: &meta.dit, dyn_cfg: &cfg, delta_scale: 1.0, names: &names, moving: &[] };
        let b = make_batch(&eps, &mut rng, batch, &sm, &device)?;
        let loss = batch_loss(&wm, &b, &cfg, &mut rng)?;
        opt.step(&loss.backward()?)?;
        if i > 0 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    Ok(1.0 / best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latent_cache_key_follows_the_encoder_and_scale_not_the_decoder() {
        let dir = std::env::temp_dir().join(format!("foresight-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("autoencoder.safetensors");
        let t = |v: f32| Tensor::new(&[v, 1.0], &Device::Cpu).unwrap();
        let key = |enc: f32, dec: f32, scale: f32| {
            let tensors = std::collections::HashMap::from([("encoder.w".to_string(), t(enc)), ("decoder.w".to_string(), t(dec))]);
            save_tensors(&path, &tensors).unwrap();
            let meta = super::super::autoencoder::AutoencoderMeta { format_version: 1, config: crate::model::AutoencoderConfig::tiny_conv(), resolution: [16, 16], latent_scale: scale, val_psnr: 0.0, steps: 0 };
            save_json(&json_path(&path), &meta).unwrap();
            encoder_key(&path).unwrap()
        };
        let base = key(0.5, 2.0, 1.0);
        assert_eq!(key(0.5, 3.0, 1.0), base, "a new decoder keeps the cache");
        assert_ne!(key(0.25, 2.0, 1.0), base);
        assert_ne!(key(0.5, 2.0, 1.5), base);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A tiny two-frame-chunk model with a fresh (zero) output layer, so that every prediction
    /// is "no change": a replaced context frame must equal the frame before it.
    #[test]
    fn self_condition_replaces_the_last_context_frames_and_keeps_targets_on_the_truth() {
        self_condition_case(false, 1);
    }

    /// With a re-encoding sampler each replaced frame is the one before it as an 8-bit image
    /// encoded again, as in a re-encoding rollout.
    #[test]
    fn self_condition_reencodes_when_the_sampler_does() {
        self_condition_case(true, 1);
    }

    /// A sampler that re-encodes every second chunk: some replaced frames are re-encoded, the
    /// others stay raw predictions.
    #[test]
    fn self_condition_reencodes_a_share_when_the_sampler_skips_chunks() {
        self_condition_case(true, 2);
    }

    /// `moving_fraction`: the frames an object moved into are found from the states (the agent's
    /// motion does not count), and at fraction 1 every window is a forward one whose target is
    /// such a frame, with the true context before it.
    #[test]
    fn moving_fraction_draws_targets_where_an_object_moved() {
        let meta = DitConfig { latent: [1, 2, 2], patch: 1, context: 2, action_dim: 1, dim: 8, depth: 1, heads: 1, mlp_ratio: 1, text: None, bidirectional: true, chunk: 1, token_actions: false };
        let cells = 4;
        // Two bodies: 0 the agent (moves every frame), 1 an object (moves into frames 3 and 7 of
        // episode 1 only; 0.4 px into frame 5, under the threshold).
        let ep = |id: usize| {
            let frames = 10;
            let mut pos = Vec::new();
            let mut obj = [10.0f32, 10.0];
            for t in 0..frames {
                if id == 1 && (t == 3 || t == 7) {
                    obj[0] += 1.0;
                }
                if id == 1 && t == 5 {
                    obj[1] += 0.4;
                }
                pos.push([t as f32 * 2.0, 0.0]);
                pos.push(obj);
            }
            // Latent of frame t, cell c: 100·episode + 10·t + c.
            let z = (0..frames * cells).map(|i| (100 * id + 10 * (i / cells) + i % cells) as f32).collect();
            EpisodeLatents { z, actions: vec![0.5; frames - 1], frames, pos }
        };
        let eps = vec![ep(0), ep(1)];
        let moving = moving_frames(&eps, &[1], 2);
        assert_eq!(moving, vec![(1, 3), (1, 7)]);
        let dc: DynamicsConfig = serde_json::from_value(serde_json::json!({
            "context": 2, "patch": 1, "dim": 8, "depth": 1, "heads": 1, "mlp_ratio": 1, "action_dropout": 0.0,
            "max_context_noise": 0.0, "moving_weight": 0.0, "bidirectional": true, "reverse_fraction": 0.5,
            "anchor_fraction": 0.0, "moving_fraction": 1.0
        }))
        .unwrap();
        dc.check().unwrap();
        let names = vec!["disc".to_string(), "block".to_string()];
        let sm = Sampling { dit: &meta, dyn_cfg: &dc, delta_scale: 1.0, names: &names, moving: &moving };
        let mut rng = Rng::new(9);
        let b = make_batch(&eps, &mut rng, 32, &sm, &Device::Cpu).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (target, ctx, reverse) = (flat(&b.target), flat(&b.context), flat(&b.reverse));
        let mut seen = [false; 2];
        for i in 0..32 {
            assert_eq!(reverse[i], 0.0, "window {i} runs backwards");
            // Target = frame t minus frame t-1 of episode 1: 10 per cell.
            assert!(target[i * cells..(i + 1) * cells].iter().all(|&d| d == 10.0), "window {i}: target {:?}", &target[i * cells..(i + 1) * cells]);
            // The last context slot is frame t-1 of episode 1 (t = 3 or 7).
            let last = ctx[(i * 2 + 1) * cells];
            assert!(last == 120.0 || last == 160.0, "window {i}: last context frame starts {last}");
            seen[(last == 160.0) as usize] = true;
        }
        assert!(seen[0] && seen[1], "both moving frames are drawn");
        // Fraction 0: windows are drawn uniformly again (frames without object motion appear).
        let dc0 = DynamicsConfig { moving_fraction: 0.0, ..dc.clone() };
        let sm0 = Sampling { dyn_cfg: &dc0, ..sm };
        let b0 = make_batch(&eps, &mut Rng::new(9), 32, &sm0, &Device::Cpu).unwrap();
        assert!(flat(&b0.context).chunks(cells).any(|c| c[0] < 100.0), "episode 0 never drawn without moving_fraction");
        // Out of range is refused.
        assert!(DynamicsConfig { moving_fraction: 1.5, ..dc }.check().is_err());
    }

    /// The latent cache: a second encoding reads every episode back bit for bit, a truncated
    /// cache file is encoded again, and another autoencoder key misses.
    #[test]
    fn latent_cache_returns_the_encoded_latents() {
        let json = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/push.json")).unwrap();
        let mut meta: WorldModelMeta = serde_json::from_str(&json).unwrap();
        meta.autoencoder = crate::model::autoencoder::AutoencoderConfig { kind: crate::model::autoencoder::AeKind::Patch, resolution: [64, 64], patch: 8, dim: 16, depth: 1, heads: 2, mlp_ratio: 2, latent_channels: 4, latent_patch: 2, pixel_features: 0, pixel_hidden: 0, refine_width: 0, refine_depth: 0 };
        meta.dit = DitConfig { latent: [4, 16, 16], patch: 4, context: 4, action_dim: 2, dim: 16, depth: 1, heads: 2, mlp_ratio: 2, text: None, bidirectional: true, chunk: 1, token_actions: false };
        let wm = WorldModel::build(meta, &VarMap::new(), &Device::Cpu).unwrap();
        let mut rng = Rng::new(5);
        let ep = |rng: &mut Rng| Episode {
            height: 64,
            width: 64,
            frames: (0..3 * 64 * 64 * 3).map(|_| (rng.uniform() * 255.0) as u8).collect(),
            action_dim: 2,
            actions: vec![0.25; 4],
            state_dim: 0,
            states: Vec::new(),
            seed: 0,
            policy: String::new(),
            caption: String::new(),
            events: Default::default(),
            contact_steps: 0,
        };
        let eps = vec![ep(&mut rng), ep(&mut rng)];
        let dir = std::env::temp_dir().join(format!("foresight-latent-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = encode_episodes(&wm, &eps, None).unwrap();
        let first = encode_episodes(&wm, &eps, Some((&dir, 7))).unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 2, "one file per episode");
        // Truncate one: it must be encoded again, not read short.
        std::fs::write(&files[0], [0u8; 12]).unwrap();
        let second = encode_episodes(&wm, &eps, Some((&dir, 7))).unwrap();
        for (a, b) in plain.iter().zip(first.iter()).chain(plain.iter().zip(second.iter())) {
            assert_eq!(a.z, b.z);
            assert_eq!(a.actions, b.actions);
        }
        assert_eq!(std::fs::metadata(&files[0]).unwrap().len() as usize, plain[0].z.len() * 4);
        encode_episodes(&wm, &eps[..1], Some((&dir, 8))).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3, "another autoencoder key is another file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A random-initialised push-shaped model with autoencoder `ae` (latent 4×16×16) and a tiny
    /// transformer predicting chunks of 2 (delta scale 0.5), and `n` episodes of `frames` random
    /// latents and actions, drawn from seed `seed` (the generator is returned to go on drawing).
    fn tiny_chunk_model(ae: crate::model::autoencoder::AutoencoderConfig, bidirectional: bool, n: usize, frames: usize, seed: u64) -> (WorldModelMeta, WorldModel, Vec<EpisodeLatents>, Rng) {
        let json = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/push.json")).unwrap();
        let mut meta: WorldModelMeta = serde_json::from_str(&json).unwrap();
        meta.autoencoder = ae;
        meta.dit = DitConfig { latent: [4, 16, 16], patch: 4, context: 4, action_dim: 2, dim: 16, depth: 1, heads: 2, mlp_ratio: 2, text: None, bidirectional, chunk: 2, token_actions: false };
        meta.delta_scale = 0.5;
        let wm = WorldModel::build(meta.clone(), &VarMap::new(), &Device::Cpu).unwrap();
        let cells = 4 * 16 * 16;
        let mut rng = Rng::new(seed);
        let eps = (0..n)
            .map(|_| EpisodeLatents { z: (0..frames * cells).map(|_| rng.normal()).collect(), actions: (0..(frames - 1) * 2).map(|_| rng.range(-1.0, 1.0)).collect(), frames, pos: vec![[0.0, 0.0]; frames * 2] })
            .collect();
        (meta, wm, eps, rng)
    }

    /// `pixel_weight`: the pixel term is zero when the prediction is the target, its gradient
    /// reaches the predicted first frame of the chosen windows only (through `index_select` and
    /// the decoder), and the loss grows by it.
    #[test]
    fn the_pixel_loss_reaches_the_chosen_windows_first_frame_only() {
        let ae = crate::model::autoencoder::AutoencoderConfig { dim: 8, depth: 1, ..crate::model::autoencoder::AutoencoderConfig::conv() };
        let (meta, wm, eps, mut rng) = tiny_chunk_model(ae, false, 2, 12, 5);
        let (device, cells) = (Device::Cpu, 4 * 16 * 16);
        let mut dc: DynamicsConfig = serde_json::from_value(serde_json::json!({
            "context": 4, "patch": 4, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2, "action_dropout": 0.0,
            "max_context_noise": 0.0, "moving_weight": 8.0, "pixel_weight": 2.0
        }))
        .unwrap();
        dc.check().unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        let sm = Sampling { dit: &meta.dit, dyn_cfg: &dc, delta_scale: 0.5, names: &names, moving: &[] };
        let batch = make_batch(&eps, &mut rng, 4, &sm, &device).unwrap();
        let rows = [1u32, 3];
        let exact = pixel_loss(&wm, &batch, &batch.target, &rows, 8.0, 3.0).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(exact, 0.0);
        let pred = candle_core::Var::from_tensor(&(&batch.target + 0.5).unwrap()).unwrap();
        let loss = pixel_loss(&wm, &batch, pred.as_tensor(), &rows, 8.0, 3.0).unwrap();
        assert!(loss.to_scalar::<f32>().unwrap() > 0.0);
        let grads = loss.backward().unwrap();
        let g = grads.get(pred.as_tensor()).expect("the prediction receives a gradient");
        // (window, frame of the chunk): non-zero only for the first frame of windows 1 and 3.
        let per = g.abs().unwrap().reshape((4, 2, cells)).unwrap().sum(2).unwrap().to_vec2::<f32>().unwrap();
        for (i, row) in per.iter().enumerate() {
            assert_eq!(row[1], 0.0, "window {i}'s second frame");
            assert_eq!(row[0] > 0.0, rows.contains(&(i as u32)), "window {i}'s first frame: {}", row[0]);
        }
        // The same draws give a larger loss with the pixel term (whenever a window is at level 1).
        let mut total = [0f32; 2];
        for (j, w) in [0.0, 2.0].into_iter().enumerate() {
            dc.pixel_weight = w;
            let mut r = Rng::new(11);
            for _ in 0..4 {
                total[j] += batch_loss(&wm, &batch, &dc, &mut r).unwrap().to_scalar::<f32>().unwrap();
            }
        }
        assert!(total[1] > total[0], "{total:?}");
        dc.pixel_weight = f64::NAN;
        assert!(dc.check().is_err());
        dc.pixel_weight = 2.0;
        dc.pixel_colour_weight = -1.0;
        assert!(dc.check().is_err());
    }

    fn self_condition_case(reencode_frames: bool, every: usize) {
        let ae = crate::model::autoencoder::AutoencoderConfig { kind: crate::model::autoencoder::AeKind::Patch, resolution: [64, 64], patch: 8, dim: 16, depth: 1, heads: 2, mlp_ratio: 2, latent_channels: 4, latent_patch: 2, pixel_features: 0, pixel_hidden: 0, refine_width: 0, refine_depth: 0 };
        let (meta, wm, eps, mut rng) = tiny_chunk_model(ae, true, 3, 40, 3);
        let (device, cells) = (Device::Cpu, 4 * 16 * 16);
        let dc: DynamicsConfig = serde_json::from_value(serde_json::json!({
            "context": 4, "patch": 4, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2, "action_dropout": 0.1,
            "max_context_noise": 0.2, "moving_weight": 8.0, "bidirectional": true, "reverse_fraction": 0.3,
            "anchor_fraction": 0.2, "self_context": 1.0
        }))
        .unwrap();
        dc.check().unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        let sm = Sampling { dit: &meta.dit, dyn_cfg: &dc, delta_scale: 0.5, names: &names, moving: &[] };
        let mut batch = make_batch(&eps, &mut rng, 48, &sm, &device).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (ctx0, target0, cmask) = (flat(&batch.context), flat(&batch.target), flat(&batch.context_mask));
        let (reverse, anchored) = (flat(&batch.reverse), flat(&batch.anchor_mask));
        let sampler = SamplerConfig { reencode: reencode_frames, reencode_every: every, ..meta.sampler };
        let (mut raw, mut images) = (0, 0);
        let depth = self_condition(&wm, &mut batch, &dc, &sampler, &mut rng).unwrap();
        let (ctx1, target1) = (flat(&batch.context), flat(&batch.target));
        let k = 4;
        assert!(depth.contains(&1) && depth.contains(&2), "both depths drawn: {depth:?}");
        for (i, &d) in depth.iter().enumerate() {
            let n = (0..k).filter(|&s| cmask[i * k + s] > 0.0).count();
            if reverse[i] > 0.0 || anchored[i] > 0.0 || n < 2 {
                assert_eq!(d, 0, "window {i} is not a plain forward one with two context frames");
            }
            assert!(d < n.max(1), "window {i}: {d} of its {n} context frames replaced");
            for s in 0..k {
                let (old, new) = (&ctx0[(i * k + s) * cells..(i * k + s + 1) * cells], &ctx1[(i * k + s) * cells..(i * k + s + 1) * cells]);
                if s < k - d {
                    assert_eq!(old, new, "window {i}: slot {s} must stay true");
                } else if reencode_frames {
                    // The zero model predicts no change: the frame before, through the images
                    // (or, when this chunk is not re-encoded, the frame before itself).
                    let before = &ctx1[(i * k + s - 1) * cells..(i * k + s) * cells];
                    if every > 1 && new == before {
                        raw += 1;
                        continue;
                    }
                    let prev = Tensor::from_slice(before, (1, 4, 16, 16), &device).unwrap();
                    let expected = reencode(&wm, &prev).unwrap();
                    let worst = new.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                    assert!(worst < 1e-4, "window {i}: slot {s} is not the re-encoded frame before it (off by {worst})");
                    assert_ne!(new, before, "window {i}: slot {s} was not re-encoded");
                    images += 1;
                } else {
                    // The zero model predicts no change: the frame before the replaced ones.
                    assert_eq!(new, &ctx0[(i * k + k - d - 1) * cells..(i * k + k - d) * cells], "window {i}: slot {s}");
                    assert_ne!(old, new, "window {i}: slot {s} was not replaced");
                }
            }
            // Last context frame + target is still the true chunk.
            for j in 0..2 {
                for c in 0..cells {
                    let truth = ctx0[(i * k + k - 1) * cells + c] + 0.5 * target0[(i * 2 + j) * cells + c];
                    let now = ctx1[(i * k + k - 1) * cells + c] + 0.5 * target1[(i * 2 + j) * cells + c];
                    assert!((truth - now).abs() < 1e-4, "window {i}, frame {j}, cell {c}: {truth} vs {now}");
                }
            }
        }
        if reencode_frames {
            assert!(images > 0, "no replaced frame was re-encoded");
            assert_eq!(raw > 0, every > 1, "{raw} replaced frames stayed raw predictions with re-encoding every {every}");
        }
    }
}
