//! Sora's other doors on the world model: a video from one image (with actions, a caption, or
//! neither), video-to-video editing (SDEdit: noise the video's latents to a strength and
//! regenerate them under new actions or a new caption), interpolation between two videos (the
//! transition is generated forwards from the end of the first with the start of the second as
//! its anchor), extension forwards and backwards in time, and per-pixel uncertainty from several
//! samples. Everything goes through one request type, [`Generate`], answered in one batched
//! sampling loop ([`WorldModel::generate`]).

use candle_core::Tensor;

use crate::model::diffusion::SamplerConfig;
use crate::model::text::{tokenize, Tokens};
use crate::world_model::{StreamPlan, WorldModel, WorldModelError};

/// Which way in time a request generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// The frames after the context.
    #[default]
    Forward,
    /// The frames before the context (needs a checkpoint trained `bidirectional`).
    Backward,
}

/// SDEdit input: the frames to regenerate and how much of them to forget.
#[derive(Debug, Clone)]
pub struct Edit {
    /// One frame per generated step, chronological.
    pub frames: Vec<Vec<u8>>,
    /// 0 returns the input unchanged; 1 ignores it (plain generation).
    pub strength: f32,
}

/// One generation request.
#[derive(Debug, Clone, Default)]
pub struct Generate {
    /// 1 to K frames, chronological (for `Backward`, the generated frames come before them).
    pub context: Vec<Vec<u8>>,
    /// One action per generated step, chronological (None: the model imagines the actions).
    pub actions: Option<Vec<Vec<f32>>>,
    /// A caption of what should happen in the first 16 steps.
    pub text: Option<String>,
    /// Frames to generate.
    pub horizon: usize,
    /// Forwards or backwards in time.
    pub direction: Direction,
    /// A frame to arrive at: the one right after the last generated frame (for `Backward`, right
    /// before the earliest). Needs a `bidirectional` checkpoint.
    pub anchor: Option<Vec<u8>>,
    /// Regenerate these frames instead of drawing new ones from noise.
    pub edit: Option<Edit>,
    /// Futures to draw.
    pub samples: usize,
    /// Noise seed.
    pub seed: u64,
}

/// A generated video per sample: `frames[s][i]` is sample s, frame i, chronological (also for
/// backward extension); latents `(samples, horizon, C, h, w)`, chronological. The same shape as
/// a prediction.
pub type Generated = crate::world_model::Prediction;

fn query_err(msg: impl Into<String>) -> WorldModelError {
    WorldModelError::Query(msg.into())
}

impl WorldModel {
    /// Tokenises a caption for this checkpoint; an empty caption, or a checkpoint trained
    /// without captions, is an error.
    pub fn tokenize(&self, text: &str) -> Result<Tokens, WorldModelError> {
        let cfg = self.meta.dit.text.as_ref().ok_or_else(|| query_err(format!("this `{}` checkpoint was trained without captions; it cannot take text", self.meta.scene)))?;
        tokenize(text, cfg).map_err(query_err)
    }

    /// Checks a request against this checkpoint without running it: frame sizes, counts,
    /// actions, caption, direction and anchor support, edit strength.
    pub fn validate_generate(&self, g: &Generate) -> Result<(), WorldModelError> {
        self.check_counts(g.context.len(), g.horizon, g.samples)?;
        if let Some(a) = &g.actions {
            if a.len() != g.horizon {
                return Err(query_err(format!("{} actions for {} generated frames; give one per frame", a.len(), g.horizon)));
            }
        }
        if !self.meta.dit.bidirectional && (g.direction == Direction::Backward || g.anchor.is_some()) {
            return Err(query_err(format!("this `{}` checkpoint was trained forwards only: it cannot generate backwards or towards an anchor frame", self.meta.scene)));
        }
        if let Some(e) = &g.edit {
            if e.frames.len() != g.horizon {
                return Err(query_err(format!("an edit of {} frames with horizon {}; they must match", e.frames.len(), g.horizon)));
            }
            if !(e.strength.is_finite() && (0.0..=1.0).contains(&e.strength)) {
                return Err(query_err(format!("edit strength {} must be in [0, 1]", e.strength)));
            }
        }
        let [h, w] = self.meta.resolution;
        let frames = g.context.iter().chain(&g.anchor).chain(g.edit.iter().flat_map(|e| &e.frames));
        if let Some(f) = frames.into_iter().find(|f| f.len() != h * w * 3) {
            return Err(query_err(format!("a frame has {} bytes; the model takes {h}x{w}x3 = {}", f.len(), h * w * 3)));
        }
        for a in g.actions.iter().flatten() {
            self.normalise_action(a)?;
        }
        if let Some(t) = &g.text {
            self.tokenize(t)?;
        }
        Ok(())
    }

    /// Answers generation requests in one batched loop.
    pub fn generate(&self, reqs: &[Generate], sampler: &SamplerConfig) -> Result<Vec<Generated>, WorldModelError> {
        sampler.validate().map_err(query_err)?;
        let mut streams = Vec::new();
        for g in reqs {
            self.validate_generate(g)?;
            let back = g.direction == Direction::Backward;
            // The window runs in the direction of generation: for Backward, the context reversed.
            let ctx: Vec<&[u8]> = if back { g.context.iter().rev().map(|f| f.as_slice()).collect() } else { g.context.iter().map(|f| f.as_slice()).collect() };
            let start = self.stream_start(&self.encode(&ctx)?, None)?;
            let in_order = |v: &[Vec<f32>]| -> Vec<Vec<f32>> { if back { v.iter().rev().cloned().collect() } else { v.to_vec() } };
            let actions = match &g.actions {
                Some(a) => Some(in_order(&a.iter().map(|x| self.normalise_action(x)).collect::<Result<Vec<_>, _>>()?)),
                None => None,
            };
            let latents = |frames: &[Vec<u8>]| -> Result<Vec<Vec<f32>>, WorldModelError> {
                let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
                let z = self.encode(&refs)?;
                let n = z.dim(0)?;
                (0..n).map(|i| Ok(z.get(i)?.flatten_all()?.to_vec1()?)).collect()
            };
            let anchor = match &g.anchor {
                Some(f) => Some(latents(std::slice::from_ref(f))?.remove(0)),
                None => None,
            };
            let edit = match &g.edit {
                Some(e) => Some((in_order(&latents(&e.frames)?), e.strength)),
                None => None,
            };
            let text = match &g.text {
                Some(t) => Some(self.tokenize(t)?),
                None => None,
            };
            let plan = StreamPlan { steps: g.horizon, actions, text, reverse: back, anchor, edit };
            streams.push((start, plan, g.samples, g.seed));
        }
        let rolled = self.run_streams(&streams, sampler)?;
        let mut out = Vec::new();
        for ((g, z), mut known) in reqs.iter().zip(rolled.latents).zip(rolled.decoded) {
            let (s, h, _, _, _) = z.dims5()?;
            let z = if g.direction == Direction::Backward {
                for sample in known.chunks_mut(h) {
                    sample.reverse();
                }
                flip_time(&z)?
            } else {
                z
            };
            if let Some(e) = g.edit.as_ref().filter(|e| e.strength == 0.0) {
                // Strength 0 keeps the input: the frames themselves (not their reconstruction)
                // and their latents.
                let refs: Vec<&[u8]> = e.frames.iter().map(|f| f.as_slice()).collect();
                let input = self.encode(&refs)?.unsqueeze(0)?.repeat((s, 1, 1, 1, 1))?;
                out.push(Generated { frames: vec![e.frames.clone(); s], latents: input });
                continue;
            }
            let frames: Vec<Vec<Vec<u8>>> = self.decode_rolled(&z, known)?.chunks(h).map(|c| c.to_vec()).collect();
            out.push(Generated { frames, latents: z });
        }
        Ok(out)
    }

    /// A video from one frame, with optional actions and caption.
    pub fn image_to_video(&self, frame: &[u8], actions: Option<Vec<Vec<f32>>>, text: Option<&str>, horizon: usize, samples: usize, seed: u64, sampler: &SamplerConfig) -> Result<Generated, WorldModelError> {
        let g = Generate::image_to_video(frame, actions, text, horizon).sampled(samples, seed);
        Ok(self.generate(&[g], sampler)?.remove(0))
    }

    /// SDEdit of a video (see [`Generate::edit`]).
    pub fn edit_video(&self, video: &[Vec<u8>], strength: f32, actions: Option<Vec<Vec<f32>>>, text: Option<&str>, samples: usize, seed: u64, sampler: &SamplerConfig) -> Result<Generated, WorldModelError> {
        let g = Generate::edit(video, strength, actions, text)?.sampled(samples, seed);
        Ok(self.generate(&[g], sampler)?.remove(0))
    }

    /// A transition of `frames` frames from the end of video `a` to the start of video `b`.
    pub fn interpolate(&self, a: &[Vec<u8>], b: &[Vec<u8>], frames: usize, samples: usize, seed: u64, sampler: &SamplerConfig) -> Result<Generated, WorldModelError> {
        let g = Generate::interpolate(a, b, frames, self.meta.context)?.sampled(samples, seed);
        Ok(self.generate(&[g], sampler)?.remove(0))
    }

    /// `frames` new frames after (or, `backward`, before) a video.
    #[allow(clippy::too_many_arguments)]
    pub fn extend(&self, video: &[Vec<u8>], frames: usize, backward: bool, actions: Option<Vec<Vec<f32>>>, text: Option<&str>, samples: usize, seed: u64, sampler: &SamplerConfig) -> Result<Generated, WorldModelError> {
        let g = Generate::extend(video, frames, backward, actions, text, self.meta.context)?.sampled(samples, seed);
        Ok(self.generate(&[g], sampler)?.remove(0))
    }
}

impl Generate {
    /// `samples` futures with noise `seed`.
    pub fn sampled(mut self, samples: usize, seed: u64) -> Self {
        self.samples = samples;
        self.seed = seed;
        self
    }

    /// A video of `horizon` frames from one frame, with optional actions and caption.
    pub fn image_to_video(frame: &[u8], actions: Option<Vec<Vec<f32>>>, text: Option<&str>, horizon: usize) -> Self {
        Generate { context: vec![frame.to_vec()], actions, text: text.map(str::to_owned), horizon, samples: 1, ..Default::default() }
    }

    /// SDEdit of a video: its first frame is kept as the context, the rest are noised to
    /// `strength` and regenerated under `actions` (one per regenerated frame) and/or `text`.
    pub fn edit(video: &[Vec<u8>], strength: f32, actions: Option<Vec<Vec<f32>>>, text: Option<&str>) -> Result<Self, WorldModelError> {
        if video.len() < 2 {
            return Err(query_err(format!("a video of {} frames; editing needs at least 2 (the first is kept as context)", video.len())));
        }
        Ok(Generate {
            context: vec![video[0].clone()],
            actions,
            text: text.map(str::to_owned),
            horizon: video.len() - 1,
            edit: Some(Edit { frames: video[1..].to_vec(), strength }),
            samples: 1,
            ..Default::default()
        })
    }

    /// A transition of `frames` frames from the end of video `a` (its last `context` frames are
    /// the context) to the start of video `b` (its first frame is the anchor).
    pub fn interpolate(a: &[Vec<u8>], b: &[Vec<u8>], frames: usize, context: usize) -> Result<Self, WorldModelError> {
        if a.is_empty() || b.is_empty() {
            return Err(query_err("interpolation needs two non-empty videos"));
        }
        if a[0].len() != b[0].len() {
            return Err(query_err(format!("the two videos have frames of {} and {} bytes; they must have the same resolution", a[0].len(), b[0].len())));
        }
        let k = context.clamp(1, a.len());
        Ok(Generate { context: a[a.len() - k..].to_vec(), horizon: frames, anchor: Some(b[0].clone()), samples: 1, ..Default::default() })
    }

    /// `frames` new frames after (or, `backward`, before) a video, from its `context` frames
    /// nearest the new ones.
    pub fn extend(video: &[Vec<u8>], frames: usize, backward: bool, actions: Option<Vec<Vec<f32>>>, text: Option<&str>, context: usize) -> Result<Self, WorldModelError> {
        if video.is_empty() {
            return Err(query_err("extension needs a video of at least one frame"));
        }
        let k = context.clamp(1, video.len());
        let ctx = if backward { video[..k].to_vec() } else { video[video.len() - k..].to_vec() };
        let direction = if backward { Direction::Backward } else { Direction::Forward };
        Ok(Generate { context: ctx, actions, text: text.map(str::to_owned), horizon: frames, direction, samples: 1, ..Default::default() })
    }
}

/// Reverses axis 1 (time) of `(S, T, ...)`.
fn flip_time(z: &Tensor) -> candle_core::Result<Tensor> {
    let t = z.dim(1)?;
    let idx = Tensor::from_vec((0..t as u32).rev().collect::<Vec<_>>(), t, z.device())?;
    z.index_select(&idx, 1)
}

/// Per-pixel spread of several samples of one step: the standard deviation over samples of each
/// pixel (mean over the three channels), in 0..255 units, `H*W` values.
pub fn spread_map(samples: &[&[u8]]) -> Vec<f32> {
    let n = samples.len().max(1) as f32;
    let px = samples.first().map_or(0, |f| f.len() / 3);
    (0..px)
        .map(|p| {
            let mut total = 0.0;
            for c in 0..3 {
                let mean = samples.iter().map(|f| f[p * 3 + c] as f32).sum::<f32>() / n;
                total += (samples.iter().map(|f| (f[p * 3 + c] as f32 - mean).powi(2)).sum::<f32>() / n).sqrt();
            }
            total / 3.0
        })
        .collect()
}

/// Per-pixel mean of several samples (the point estimate that a spread map goes with).
pub fn mean_frame(samples: &[&[u8]]) -> Vec<u8> {
    let n = samples.len().max(1) as f32;
    let len = samples.first().map_or(0, |f| f.len());
    (0..len).map(|i| (samples.iter().map(|f| f[i] as f32).sum::<f32>() / n).round() as u8).collect()
}

/// A spread map as an RGB heat image (black: all samples agree; yellow-white: spread of
/// `full_scale` or more).
pub fn spread_image(spread: &[f32], full_scale: f32) -> Vec<u8> {
    spread
        .iter()
        .flat_map(|&s| {
            let v = (s / full_scale.max(1e-6)).clamp(0.0, 1.0);
            [(255.0 * (3.0 * v).min(1.0)) as u8, (255.0 * (3.0 * v - 1.0).clamp(0.0, 1.0)) as u8, (255.0 * (3.0 * v - 2.0).clamp(0.0, 1.0)) as u8]
        })
        .collect()
}

/// The naive transition: pixel cross-fade from `a` to `b` over `frames` frames (the baseline an
/// interpolation must beat).
pub fn cross_fade(a: &[u8], b: &[u8], frames: usize) -> Vec<Vec<u8>> {
    (1..=frames)
        .map(|i| {
            let w = i as f32 / (frames + 1) as f32;
            a.iter().zip(b).map(|(&x, &y)| ((1.0 - w) * x as f32 + w * y as f32).round() as u8).collect()
        })
        .collect()
}

/// Pearson correlation of two equally long series (0 when either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let (ma, mb) = (a[..n].iter().sum::<f64>() / n as f64, b[..n].iter().sum::<f64>() / n as f64);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (a[i] - ma, b[i] - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// What a generation command writes into its output folder.
pub struct VideoOutputs<'a> {
    /// Frames shown before the generated ones in the saved video (the start image, the first
    /// video's end, ...).
    pub before: Vec<&'a [u8]>,
    /// Frames shown after them (the second video's start).
    pub after: Vec<&'a [u8]>,
    /// A reference row for the strip (for an edit, the input video), or empty.
    pub reference: Vec<&'a [u8]>,
}

/// Writes `dir/frame_NNNN.png` (sample 0's full video: `before`, generated, `after`; a folder
/// that `--video`, `--a` and `--b` read back), `dir/NAME.gif` (every sample side by side, with
/// the spread map when there are several) and `dir/strip.png` (rows: the reference if any, each
/// sample's generated frames, then the per-pixel spread if several samples). Returns the paths
/// of the GIF and the strip.
pub fn write_outputs(dir: &std::path::Path, name: &str, out: &VideoOutputs, samples: &[Vec<Vec<u8>>], h: usize, w: usize) -> Result<(std::path::PathBuf, std::path::PathBuf), crate::data::DataError> {
    use crate::media::{side_by_side, write_gif, write_png_grid, write_video};
    let first = samples.first().ok_or_else(|| crate::data::DataError::Invalid("no generated sample to write".into()))?;
    let mut video: Vec<&[u8]> = out.before.clone();
    video.extend(first.iter().map(|f| f.as_slice()));
    video.extend(out.after.iter().copied());
    write_video(dir, &video, h, w)?;
    let n = first.len();
    let spreads: Vec<Vec<u8>> = if samples.len() > 1 {
        (0..n).map(|t| spread_image(&spread_map(&samples.iter().map(|s| s[t].as_slice()).collect::<Vec<_>>()), 64.0)).collect()
    } else {
        Vec::new()
    };
    // GIF: the lead-in and tail frames repeated across the panels.
    let panels = samples.len() + usize::from(!spreads.is_empty());
    let black = vec![0u8; h * w * 3];
    let mut gif = Vec::new();
    for f in &out.before {
        gif.push(side_by_side(&vec![*f; panels], h, w));
    }
    for t in 0..n {
        let mut p: Vec<&[u8]> = samples.iter().map(|s| s[t].as_slice()).collect();
        if let Some(s) = spreads.get(t) {
            p.push(s);
        }
        gif.push(side_by_side(&p, h, w));
    }
    for f in &out.after {
        let mut p = vec![*f; samples.len()];
        if !spreads.is_empty() {
            p.push(&black);
        }
        gif.push(side_by_side(&p, h, w));
    }
    let refs: Vec<&[u8]> = gif.iter().map(|f| f.as_slice()).collect();
    let gif_path = dir.join(format!("{name}.gif"));
    write_gif(&gif_path, &refs, h, panels * w + panels - 1, 3, 150)?;
    let mut rows: Vec<Vec<&[u8]>> = Vec::new();
    if !out.reference.is_empty() {
        rows.push(out.reference.clone());
    }
    for s in samples {
        rows.push(s.iter().map(|f| f.as_slice()).collect());
    }
    if !spreads.is_empty() {
        rows.push(spreads.iter().map(|f| f.as_slice()).collect());
    }
    let strip = dir.join("strip.png");
    write_png_grid(&strip, &rows, h, w, 2)?;
    Ok((gif_path, strip))
}
