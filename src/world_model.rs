//! The public API: load a checkpoint, encode frames, predict futures (autoregressive with a
//! sliding window) in pixel or latent space, for many queries in one batched call.
//!
//! A checkpoint is `NAME.safetensors` (`ae.*` autoencoder and `dit.*` transformer weights) beside
//! `NAME.json` ([`WorldModelMeta`]). `--checkpoint` always names the `.safetensors` file.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::data::{ActionSpec, BodyInfo};
use crate::data::events::CLIP_STEPS;
use crate::model::diffusion::{sample_from, seeded_noise, Conditioning, SamplerConfig};
use crate::model::dit::{DitExtras, ANCHOR_RANGE};
use crate::model::text::Tokens;
use crate::model::dit::{Dit, DitConfig};
use crate::model::frames::{frames_to_tensor, tensor_to_frames};
use crate::model::{Autoencoder, AutoencoderConfig};
use crate::rng::Rng;
use crate::train::checkpoint::{json_from_bytes, json_path, load_into_varmap, tensors_from_bytes, CheckpointError};

/// Version of the world-model checkpoint JSON.
pub const WM_FORMAT_VERSION: u32 = 1;

/// Longest horizon one query may ask for.
pub const MAX_HORIZON: usize = 4096;

/// `NAME.json`: everything needed to validate a query and rebuild the networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldModelMeta {
    /// [`WM_FORMAT_VERSION`].
    pub format_version: u32,
    /// Scene name.
    pub scene: String,
    /// Scene content hash.
    pub scene_hash: String,
    /// Frame size `[H, W]`.
    pub resolution: [usize; 2],
    /// Physics step and frame skip of the data.
    pub dt: f32,
    /// Physics steps per transition.
    pub frame_skip: u32,
    /// The actions the model was trained on; `low`/`high` map to [-1, 1].
    pub action_spec: ActionSpec,
    /// The dynamic bodies (colours and roles, to locate them in predicted frames).
    pub bodies: Vec<BodyInfo>,
    /// Context frames K.
    pub context: usize,
    /// Latents are divided by this before the transformer.
    pub latent_scale: f32,
    /// Normalised latent changes are divided by this.
    pub delta_scale: f32,
    /// Autoencoder sizes.
    pub autoencoder: AutoencoderConfig,
    /// Transformer sizes.
    pub dit: DitConfig,
    /// Default sampler.
    pub sampler: SamplerConfig,
    /// Held-out reconstruction PSNR of the autoencoder, dB.
    pub autoencoder_psnr: f64,
    /// Seeds of the training episodes (`eval` refuses data that overlaps them).
    pub train_seeds: Vec<u64>,
    /// Optimiser steps of the dynamics stage.
    pub steps: u64,
    /// The command that trained it.
    pub command: String,
}

impl WorldModelMeta {
    /// Adds the training seeds of a checkpoint these weights come from (`--init`, `--average`):
    /// its episodes were trained on too, so `eval` must refuse them. Only for the same scene
    /// (another scene's episodes cannot be in this one's data); the order is kept, no seed twice.
    pub fn inherit_train_seeds(&mut self, from: &WorldModelMeta) {
        if from.scene == self.scene {
            self.add_train_seeds(from.train_seeds.iter().copied());
        }
    }

    /// Appends the seeds not listed yet (the order is kept); returns how many.
    pub fn add_train_seeds(&mut self, seeds: impl IntoIterator<Item = u64>) -> usize {
        let before = self.train_seeds.len();
        let mut seen: std::collections::HashSet<u64> = self.train_seeds.iter().copied().collect();
        self.train_seeds.extend(seeds.into_iter().filter(|s| seen.insert(*s)));
        self.train_seeds.len() - before
    }
}

/// A query that cannot be answered, or a checkpoint that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WorldModelError {
    /// The checkpoint is missing, truncated or inconsistent.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The query does not fit the model.
    #[error("invalid query: {0}")]
    Query(String),
    /// The tensor library failed.
    #[error("model failure: {0}")]
    Candle(#[from] candle_core::Error),
}

/// One question: from these frames, with these actions, what happens?
#[derive(Debug, Clone)]
pub struct Query {
    /// 1 to K context frames, oldest first, each `H*W*3` bytes.
    pub context: Vec<Vec<u8>>,
    /// Actions applied between consecutive context frames (`context.len() - 1` of them), if known.
    pub past_actions: Option<Vec<Vec<f32>>>,
    /// One action per predicted step.
    pub actions: Vec<Vec<f32>>,
    /// Futures to draw.
    pub samples: usize,
    /// Noise seed: the same seed gives the same futures.
    pub seed: u64,
}

/// The answer to a [`Query`]: `frames[s][h]` is sample s at step h+1.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Decoded frames, `H*W*3` bytes each.
    pub frames: Vec<Vec<Vec<u8>>>,
    /// Latents `(samples, H, C, h, w)` in normalised units.
    pub latents: Tensor,
}

/// A loaded world model.
pub struct WorldModel {
    /// The autoencoder (frozen).
    pub autoencoder: Autoencoder,
    /// The transformer.
    pub dit: Dit,
    /// The checkpoint's description.
    pub meta: WorldModelMeta,
    device: Device,
}

impl WorldModel {
    /// Builds untrained networks for `meta` into `vm` (used by training).
    pub fn build(meta: WorldModelMeta, vm: &VarMap, device: &Device) -> Result<Self, WorldModelError> {
        let vb = VarBuilder::from_varmap(vm, DType::F32, device);
        let autoencoder = Autoencoder::new(meta.autoencoder.clone(), vb.pp("ae"))?;
        let dit = Dit::new(meta.dit.clone(), vb.pp("dit"))?;
        Ok(WorldModel { autoencoder, dit, meta, device: device.clone() })
    }

    /// Loads `NAME.safetensors` + `NAME.json`; a truncated file or a JSON that does not match the
    /// weights is refused with the reason.
    pub fn load(weights: &Path) -> Result<Self, WorldModelError> {
        let jp = json_path(weights);
        let read = |p: &Path| std::fs::read(p).map_err(|source| CheckpointError::Data(crate::data::DataError::Io { path: p.to_owned(), source }));
        let json = read(&jp)?;
        let bytes = read(weights)?;
        Self::from_bytes(&json, &bytes, weights)
    }

    /// Builds a model from the bytes of `NAME.json` and `NAME.safetensors` (for asset loaders);
    /// `weights` names the checkpoint in errors. Validated as [`WorldModel::load`] does.
    pub fn from_bytes(json: &[u8], weights_bytes: &[u8], weights: &Path) -> Result<Self, WorldModelError> {
        let jp = json_path(weights);
        let meta: WorldModelMeta = json_from_bytes(json, &jp)?;
        let bad = |m: String| WorldModelError::Checkpoint(CheckpointError::Invalid { path: jp.clone(), message: m });
        if meta.format_version != WM_FORMAT_VERSION {
            return Err(bad(format!("format_version {} is not {WM_FORMAT_VERSION}", meta.format_version)));
        }
        meta.autoencoder.validate().map_err(&bad)?;
        meta.dit.validate().map_err(&bad)?;
        meta.sampler.validate().map_err(&bad)?;
        if meta.autoencoder.resolution != meta.resolution || meta.dit.latent != <[usize; 3]>::from(meta.autoencoder.latent_shape()) || meta.dit.action_dim != meta.action_spec.dim || meta.dit.context != meta.context {
            return Err(bad("resolution, latent shape, action dimension or context length disagree between sections".into()));
        }
        let device = Device::Cpu;
        let tensors = tensors_from_bytes(weights_bytes, weights, &device)?;
        let vm = VarMap::new();
        let wm = WorldModel::build(meta, &vm, &device)?;
        load_into_varmap(&vm, &tensors, weights, "")?;
        Ok(wm)
    }

    /// Number of transformer parameters.
    pub fn dit_parameters(&self) -> usize {
        self.dit.parameter_count()
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Normalised latents `(N, C, h, w)` of frames.
    pub fn encode(&self, frames: &[&[u8]]) -> Result<Tensor, WorldModelError> {
        let [h, w] = self.meta.resolution;
        for (i, f) in frames.iter().enumerate() {
            if f.len() != h * w * 3 {
                return Err(WorldModelError::Query(format!("frame {i} has {} bytes; the model takes {h}x{w}x3 = {}", f.len(), h * w * 3)));
            }
        }
        let mut out = Vec::new();
        for chunk in frames.chunks(64) {
            out.push((self.autoencoder.encode(&frames_to_tensor(chunk, h, w, &self.device)?)? / self.meta.latent_scale as f64)?);
        }
        Ok(Tensor::cat(&out, 0)?)
    }

    /// Frames of normalised latents `(N, C, h, w)`.
    pub fn decode(&self, z: &Tensor) -> Result<Vec<Vec<u8>>, WorldModelError> {
        let mut out = Vec::new();
        let n = z.dim(0)?;
        for s in (0..n).step_by(64) {
            let part = z.narrow(0, s, 64.min(n - s))?;
            out.extend(tensor_to_frames(&self.autoencoder.decode(&(part * self.meta.latent_scale as f64)?)?)?);
        }
        Ok(out)
    }

    /// Frames of one stream's latents `(samples, steps, C, h, w)`, sample-major, decoding only
    /// those `known` (from [`Rolled::decoded`]) does not already hold.
    pub(crate) fn decode_rolled(&self, z: &Tensor, known: Vec<Option<Vec<u8>>>) -> Result<Vec<Vec<u8>>, WorldModelError> {
        let (s, h, c, lh, lw) = z.dims5()?;
        let z = z.reshape((s * h, c, lh, lw))?;
        if known.len() != s * h {
            return self.decode(&z);
        }
        let missing: Vec<u32> = (0..s * h).filter(|&i| known[i].is_none()).map(|i| i as u32).collect();
        let mut fresh = if missing.is_empty() { Vec::new() } else { self.decode(&z.index_select(&Tensor::new(missing.as_slice(), &self.device)?, 0)?)? }.into_iter();
        known.into_iter().map(|f| f.or_else(|| fresh.next()).ok_or_else(|| WorldModelError::Query("a rolled-out frame was not decoded".into()))).collect()
    }

    /// Where each of the model's bodies is in a frame (located by its colour; `None` when not
    /// found), in the order of `meta.bodies`.
    pub fn locate_bodies(&self, frame: &[u8]) -> Vec<Option<[f32; 2]>> {
        let w = self.meta.resolution[1];
        self.meta.bodies.iter().map(|b| crate::eval::metrics::locate(frame, w, b.colour)).collect()
    }

    /// Maps an action to [-1, 1] by the spec's range; refuses a wrong length or a non-finite value.
    pub fn normalise_action(&self, a: &[f32]) -> Result<Vec<f32>, WorldModelError> {
        let s = &self.meta.action_spec;
        if a.len() != s.dim {
            return Err(WorldModelError::Query(format!("an action has {} values; the model takes {}", a.len(), s.dim)));
        }
        a.iter()
            .enumerate()
            .map(|(i, &v)| {
                if !v.is_finite() {
                    return Err(WorldModelError::Query(format!("action value {v} (channel `{}`) is not finite", s.names.get(i).cloned().unwrap_or_default())));
                }
                let (lo, hi) = (s.low[i], s.high[i]);
                Ok(if hi > lo { (2.0 * (v.clamp(lo, hi) - lo) / (hi - lo) - 1.0).clamp(-1.0, 1.0) } else { 0.0 })
            })
            .collect()
    }

    /// Checks the sizes every request shares: 1 to K context frames, a horizon in
    /// 1..=[`MAX_HORIZON`], 1 to 256 samples.
    pub(crate) fn check_counts(&self, context: usize, horizon: usize, samples: usize) -> Result<(), WorldModelError> {
        let k = self.meta.context;
        if context == 0 || context > k {
            return Err(WorldModelError::Query(format!("{context} context frames; the model takes 1 to {k}")));
        }
        if horizon == 0 || horizon > MAX_HORIZON {
            return Err(WorldModelError::Query(format!("horizon {horizon} must be in 1..={MAX_HORIZON}")));
        }
        if samples == 0 || samples > 256 {
            return Err(WorldModelError::Query(format!("{samples} samples; ask for 1 to 256")));
        }
        Ok(())
    }

    fn check_query(&self, q: &Query) -> Result<(), WorldModelError> {
        self.check_counts(q.context.len(), q.actions.len(), q.samples)?;
        if let Some(p) = &q.past_actions {
            if p.len() + 1 != q.context.len() {
                return Err(WorldModelError::Query(format!("{} past actions for {} context frames; give one fewer than frames", p.len(), q.context.len())));
            }
        }
        Ok(())
    }

    /// Answers queries in one batch per step: every sample of every query advances together.
    pub fn predict_batch(&self, queries: &[Query], sampler: &SamplerConfig) -> Result<Vec<Prediction>, WorldModelError> {
        sampler.validate().map_err(WorldModelError::Query)?;
        for q in queries {
            self.check_query(q)?;
        }
        let mut starts = Vec::new();
        for q in queries {
            let refs: Vec<&[u8]> = q.context.iter().map(|f| f.as_slice()).collect();
            starts.push(self.encode(&refs)?);
        }
        let rolled = self.rollout_streams(queries, &starts, sampler)?;
        let mut out = Vec::new();
        for (lat, known) in rolled.latents.into_iter().zip(rolled.decoded) {
            let h = lat.dim(1)?;
            let frames = self.decode_rolled(&lat, known)?;
            out.push(Prediction { frames: frames.chunks(h).map(|c| c.to_vec()).collect(), latents: lat });
        }
        Ok(out)
    }

    /// One query.
    pub fn predict(&self, q: &Query, sampler: &SamplerConfig) -> Result<Prediction, WorldModelError> {
        Ok(self.predict_batch(std::slice::from_ref(q), sampler)?.remove(0))
    }

    /// Rolls queries forward in latent space from their encoded context (`starts[i]`:
    /// `(k_i, C, h, w)` normalised latents). Returns per query `(samples, H, C, h, w)`.
    pub fn rollout_latent(&self, queries: &[Query], starts: &[Tensor], sampler: &SamplerConfig) -> Result<Vec<Tensor>, WorldModelError> {
        Ok(self.rollout_streams(queries, starts, sampler)?.latents)
    }

    /// [`WorldModel::rollout_latent`] with the frames the rollout decoded on the way.
    fn rollout_streams(&self, queries: &[Query], starts: &[Tensor], sampler: &SamplerConfig) -> Result<Rolled, WorldModelError> {
        let mut streams = Vec::new();
        for (q, z) in queries.iter().zip(starts) {
            let past = match &q.past_actions {
                Some(p) => Some(p.iter().map(|a| self.normalise_action(a)).collect::<Result<Vec<_>, _>>()?),
                None => None,
            };
            let actions = q.actions.iter().map(|a| self.normalise_action(a)).collect::<Result<Vec<_>, _>>()?;
            let plan = StreamPlan { steps: q.actions.len(), actions: Some(actions), ..StreamPlan::default() };
            streams.push((self.stream_start(z, past)?, plan, q.samples, q.seed));
        }
        self.run_streams(&streams, sampler)
    }

    /// A stream's starting window: context latents `(k, C, h, w)` and the actions between them.
    pub(crate) fn stream_start(&self, z: &Tensor, past: Option<Vec<Vec<f32>>>) -> Result<StreamStart, WorldModelError> {
        let cells: usize = self.meta.dit.latent.iter().product();
        let z: Vec<f32> = z.flatten_all()?.to_vec1()?;
        let n = z.len() / cells;
        Ok(StreamStart {
            frames: (0..n).map(|i| z[i * cells..(i + 1) * cells].to_vec()).collect(),
            acts: match past {
                Some(p) => p.into_iter().map(Some).collect(),
                None => vec![None; n.saturating_sub(1)],
            },
        })
    }

    /// The sampling engine: every sample of every stream advances one step per batched call,
    /// each with its own window, actions (or none), caption, direction, anchor and SDEdit input.
    /// Returns per stream `(samples, steps, C, h, w)`, and the frames it decoded to re-encode them.
    pub(crate) fn run_streams(&self, streams: &[(StreamStart, StreamPlan, usize, u64)], sampler: &SamplerConfig) -> Result<Rolled, WorldModelError> {
        let k = self.meta.context;
        let a_dim = self.meta.action_spec.dim;
        let [lc, lh, lw] = self.meta.dit.latent;
        let cells = lc * lh * lw;
        // Each call denoises a chunk of F frames; the last chunk's surplus frames are dropped.
        let f = self.meta.dit.chunk;
        let slots = self.meta.dit.action_slots();
        let dev = &self.device;
        struct Row {
            stream: usize,
            frames: Vec<Vec<f32>>,
            acts: Vec<Option<Vec<f32>>>,
            rng: Rng,
            out: Vec<Vec<f32>>,
            decoded: Vec<Option<Vec<u8>>>,
        }
        let mut rows = Vec::new();
        for (si, (start, _, samples, seed)) in streams.iter().enumerate() {
            for s in 0..*samples {
                rows.push(Row { stream: si, frames: start.frames.clone(), acts: start.acts.clone(), rng: Rng::new(seed ^ crate::rng::mix64(s as u64 + 1)), out: Vec::new(), decoded: Vec::new() });
            }
        }
        let horizon = streams.iter().map(|s| s.1.steps).max().unwrap_or(0);
        for t in (0..horizon).step_by(f) {
            let active: Vec<usize> = (0..rows.len()).filter(|&r| t < streams[rows[r].stream].1.steps).collect();
            // One batched call per SDEdit strength (1 for plain generation).
            let mut groups: Vec<(f32, Vec<usize>)> = Vec::new();
            for &r in &active {
                let s = streams[rows[r].stream].1.edit.as_ref().map_or(1.0, |e| e.1);
                match groups.iter_mut().find(|g| g.0 == s) {
                    Some(g) => g.1.push(r),
                    None => groups.push((s, vec![r])),
                }
            }
            for (strength, members) in groups {
                let b = members.len();
                let mut ctx = vec![0f32; b * k * cells];
                let mut cmask = vec![0f32; b * k];
                let mut acts = vec![0f32; b * slots * a_dim];
                let mut amask = vec![0f32; b * slots];
                let mut drop = vec![0f32; b];
                let mut start = Vec::with_capacity(b * f * cells);
                let mut tokens: Vec<Option<&Tokens>> = vec![None; b];
                let (mut keep, mut progress, mut reverse) = (vec![0f32; b], vec![0f32; b], vec![0f32; b]);
                let (mut anchor, mut anchor_mask, mut anchor_dist) = (vec![0f32; b * cells], vec![0f32; b], vec![0f32; b]);
                let mut extras = false;
                for (i, &r) in members.iter().enumerate() {
                    let plan = &streams[rows[r].stream].1;
                    let row = &mut rows[r];
                    // Step t + j's action (past the plan's end, its last one: those frames are dropped).
                    let act = |j: usize| plan.actions.as_ref().map(|a| a[(t + j).min(plan.steps - 1)].clone());
                    row.acts.push(act(0));
                    drop[i] = plan.actions.is_none() as u8 as f32;
                    // Right-align the last K frames and the actions that follow them.
                    let nf = row.frames.len();
                    for j in 0..k.min(nf) {
                        let slot = k - 1 - j;
                        ctx[(i * k + slot) * cells..(i * k + slot + 1) * cells].copy_from_slice(&row.frames[nf - 1 - j]);
                        cmask[i * k + slot] = 1.0;
                        if let Some(Some(a)) = row.acts.get(nf - 1 - j) {
                            acts[(i * slots + slot) * a_dim..(i * slots + slot + 1) * a_dim].copy_from_slice(a);
                            amask[i * slots + slot] = 1.0;
                        }
                    }
                    for j in 1..f {
                        let slot = k - 1 + j;
                        if let Some(a) = act(j) {
                            acts[(i * slots + slot) * a_dim..(i * slots + slot + 1) * a_dim].copy_from_slice(&a);
                            amask[i * slots + slot] = 1.0;
                        }
                        // Keeps `acts[n]` the action after frame n once the chunk is appended.
                        row.acts.push(act(j));
                    }
                    let noise = seeded_noise(&mut row.rng, &[f * cells], dev)?.to_vec1::<f32>()?;
                    match &plan.edit {
                        // SDEdit: the input's change from the window's last frame, noised to `s`.
                        Some((input, s)) => {
                            let last = &row.frames[nf - 1];
                            for j in 0..f {
                                let inp = &input[(t + j).min(plan.steps - 1)];
                                start.extend((0..cells).map(|c| (1.0 - s) * (inp[c] - last[c]) / self.meta.delta_scale + s * noise[j * cells + c]));
                            }
                        }
                        None => start.extend(noise.iter().map(|n| n * sampler.temperature)),
                    }
                    if let Some(tk) = &plan.text {
                        tokens[i] = Some(tk);
                        keep[i] = 1.0;
                        progress[i] = ((t + 1).min(CLIP_STEPS + 1 - f.min(CLIP_STEPS))) as f32 / CLIP_STEPS as f32;
                        extras = true;
                    }
                    if plan.reverse {
                        reverse[i] = 1.0;
                        extras = true;
                    }
                    if let Some(a) = &plan.anchor {
                        anchor[i * cells..(i + 1) * cells].copy_from_slice(a);
                        anchor_mask[i] = 1.0;
                        // The anchor follows the last step; distance from the chunk's last frame.
                        anchor_dist[i] = (plan.steps as f32 - (t + f - 1) as f32) / ANCHOR_RANGE;
                        extras = true;
                    }
                }
                let context = Tensor::from_vec(ctx, (b, k, lc, lh, lw), dev)?;
                let v = |x: Vec<f32>| Tensor::from_vec(x, b, dev);
                let text = match (&self.meta.dit.text, tokens.iter().any(|t| t.is_some())) {
                    (Some(tc), true) => Some(crate::model::text::stack(&tokens, tc, dev)?),
                    _ => None,
                };
                let (keep, progress, reverse) = (v(keep)?, v(progress)?, v(reverse)?);
                let (anchor, anchor_mask, anchor_dist) = (Tensor::from_vec(anchor, (b, lc, lh, lw), dev)?, v(anchor_mask)?, v(anchor_dist)?);
                let cond = Conditioning {
                    context: &context,
                    context_mask: &Tensor::from_vec(cmask, (b, k), dev)?,
                    actions: &Tensor::from_vec(acts, (b, slots, a_dim), dev)?,
                    action_mask: &Tensor::from_vec(amask, (b, slots), dev)?,
                    drop_actions: &v(drop)?,
                    extras: extras.then(|| DitExtras {
                        text: text.as_ref().map(|(w, m)| (w, m)),
                        text_keep: &keep,
                        progress: &progress,
                        reverse: &reverse,
                        anchor: &anchor,
                        anchor_mask: &anchor_mask,
                        anchor_dist: &anchor_dist,
                    }),
                };
                let start = Tensor::from_vec(start, (b, f * lc, lh, lw), dev)?;
                let delta = sample_from(&self.dit, &cond, &start, strength, sampler)?.reshape((b, f, lc, lh, lw))?;
                let last = context.narrow(1, k - 1, 1)?;
                let next: Vec<f32> = last.broadcast_add(&(delta * self.meta.delta_scale as f64)?)?.flatten_all()?.to_vec1()?;
                // With `reencode`, the window goes on from the frames as images (the outputs stay
                // the predicted latents); the frames decoded for it are outputs too, kept.
                let (reencoded, mut frames) = if sampler.reencode && t + f < horizon && (t / f + 1) % sampler.reencode_every.max(1) == 0 {
                    let z = Tensor::from_vec(next.clone(), (b * f, lc, lh, lw), dev)?;
                    let frames = self.decode(&z)?;
                    (Some(self.encode(&frames.iter().map(|x| x.as_slice()).collect::<Vec<_>>())?.flatten_all()?.to_vec1::<f32>()?), frames.into_iter().map(Some).collect())
                } else {
                    (None, vec![None; b * f])
                };
                let window = reencoded.as_deref().unwrap_or(&next);
                for (i, &r) in members.iter().enumerate() {
                    let steps = streams[rows[r].stream].1.steps;
                    for j in 0..f {
                        let at = (i * f + j) * cells..(i * f + j + 1) * cells;
                        if t + j < steps {
                            rows[r].out.push(next[at.clone()].to_vec());
                            rows[r].decoded.push(frames[i * f + j].take());
                        }
                        rows[r].frames.push(window[at].to_vec());
                    }
                }
            }
        }
        let mut out = Rolled { latents: Vec::new(), decoded: Vec::new() };
        for (si, (_, plan, samples, _)) in streams.iter().enumerate() {
            let (mut flat, mut decoded) = (Vec::new(), Vec::new());
            for row in rows.iter_mut().filter(|r| r.stream == si) {
                for z in &row.out {
                    flat.extend_from_slice(z);
                }
                decoded.append(&mut row.decoded);
            }
            out.latents.push(Tensor::from_vec(flat, (*samples, plan.steps, lc, lh, lw), dev)?);
            out.decoded.push(decoded);
        }
        Ok(out)
    }
}

/// What [`WorldModel::run_streams`] returns: per stream, its latents `(samples, steps, C, h, w)`
/// and, sample-major, the frames it decoded to re-encode them (`None` for the others), so that
/// no frame is decoded twice.
pub(crate) struct Rolled {
    pub(crate) latents: Vec<Tensor>,
    pub(crate) decoded: Vec<Vec<Option<Vec<u8>>>>,
}

/// Where a stream starts: its window of latents and the actions between them.
#[derive(Debug, Clone)]
pub(crate) struct StreamStart {
    pub(crate) frames: Vec<Vec<f32>>,
    pub(crate) acts: Vec<Option<Vec<f32>>>,
}

/// How a stream is generated.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamPlan {
    /// Frames to generate.
    pub(crate) steps: usize,
    /// Normalised actions, one per step (None: unconditioned on actions).
    pub(crate) actions: Option<Vec<Vec<f32>>>,
    /// Caption.
    pub(crate) text: Option<Tokens>,
    /// The window runs backwards in time.
    pub(crate) reverse: bool,
    /// A latent the stream must arrive at one step after its last frame.
    pub(crate) anchor: Option<Vec<f32>>,
    /// SDEdit: latents to regenerate (one per step) and the strength.
    pub(crate) edit: Option<(Vec<Vec<f32>>, f32)>,
}
