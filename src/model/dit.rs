//! The diffusion transformer: predicts the next latent frames from a window of context latents,
//! the actions, the noise level and the context noise level.
//!
//! Spacetime patches: the window (K context latents and the F noisy target frames of a chunk) is
//! cut into tubelets of `(K + F) × p × p` latent cells, one token per `(y, x)` patch position,
//! with the tubelet's time axis laid out in its channels (oldest context first, then the noisy
//! targets) and a presence mask for context frames that are missing (random context length 1..K
//! in training, a single start image at inference). One token per position keeps attention at 64
//! tokens for a 16×16 latent, so a forward pass costs what one frame's worth of tokens costs,
//! whatever F is: a chunk of F frames denoised together costs about one call, and its later
//! frames carry the effect of F actions (one frame's displacement from one action is under a
//! pixel in `push`, too little for a one-frame loss to teach action control).
//!
//! Conditioning (adaLN-Zero): the sum of embeddings of the noise level τ, the context noise level,
//! and the K + F - 1 actions of the window (the K-th leads to the first target, the rest to the
//! chunk's further frames; missing ones are masked; all of them are dropped together, with a
//! flag, for classifier-free guidance).
//!
//! Optional conditions ([`DitExtras`], issue 6), each entering through a branch whose last layer
//! starts at zero, so that a checkpoint fine-tuned with them starts as the model it came from:
//! a caption (the [`TextEncoder`]'s vector and the target's place in the captioned clip, both
//! dropped together for guidance), and with `bidirectional` a time-direction flag (the window may
//! run backwards: the target is the frame *before* the context) and an anchor: a latent frame
//! some steps beyond the target, laid into the tubelets beside the context, with its distance
//! embedded, which turns prediction into interpolation towards a given frame.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::autoencoder::{pixel_shuffle, pixel_unshuffle};
use super::text::{TextConfig, TextEncoder};
use super::transformer::{linear_zero, norm, AdaBlock};

/// Anchor distances are divided by this before embedding (the longest gap trained).
pub const ANCHOR_RANGE: f32 = 32.0;

/// Diffusion transformer sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DitConfig {
    /// Latent `(C, H, W)`.
    pub latent: [usize; 3],
    /// Spatial patch side in latent cells.
    pub patch: usize,
    /// Context frames K.
    pub context: usize,
    /// Action dimension.
    pub action_dim: usize,
    /// Token width.
    pub dim: usize,
    /// Blocks.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width as a multiple of `dim`.
    pub mlp_ratio: usize,
    /// Caption encoder (absent: the model takes no text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// Backward prediction and anchor frames.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bidirectional: bool,
    /// Frames predicted (denoised jointly) per call: the target's tubelet spans this many future
    /// frames, each with its action. 1 is one frame a call.
    #[serde(default = "one_frame", skip_serializing_if = "is_one_frame")]
    pub chunk: usize,
    /// The window's actions (and their presence flags) also enter every token's input, beside
    /// the adaLN conditioning, so that a token can combine what it holds with the actions from
    /// the first layer on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub token_actions: bool,
}

fn one_frame() -> usize {
    1
}

fn is_one_frame(n: &usize) -> bool {
    *n == 1
}

impl DitConfig {
    /// Checks the sizes.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let [c, h, w] = self.latent;
        if [c, h, w, self.patch, self.context, self.action_dim, self.dim, self.depth, self.heads, self.mlp_ratio].contains(&0) {
            return Err("every dynamics size must be positive".into());
        }
        if !(1..=8).contains(&self.chunk) {
            return Err(format!("chunk {} must be in 1..=8 frames a call", self.chunk));
        }
        if h % self.patch != 0 || w % self.patch != 0 {
            return Err(format!("latent {h}x{w} is not a multiple of patch {}", self.patch));
        }
        if self.dim % self.heads != 0 {
            return Err(format!("dim {} is not a multiple of heads {}", self.dim, self.heads));
        }
        if let Some(t) = &self.text {
            t.validate()?;
        }
        Ok(())
    }

    /// Action slots of a window: one after each context frame (the last leads to the first
    /// target), then one before each further target frame of the chunk.
    pub fn action_slots(&self) -> usize {
        self.context + self.chunk - 1
    }

    /// Values describing a window's actions: each slot's action and its presence flag.
    pub fn action_features(&self) -> usize {
        self.action_slots() * (self.action_dim + 1)
    }

    /// Tokens per prediction.
    pub fn tokens(&self) -> usize {
        (self.latent[1] / self.patch) * (self.latent[2] / self.patch)
    }
}

/// Sinusoidal embedding of scalars in [0, 1]: (B) -> (B, 2*half).
fn fourier(x: &Tensor, half: usize) -> Result<Tensor> {
    let dev = x.device();
    let freqs: Vec<f32> = (0..half).map(|i| (1000f32).powf(i as f32 / half as f32) * std::f32::consts::PI).collect();
    let f = Tensor::from_vec(freqs, (1, half), dev)?;
    let arg = x.to_dtype(DType::F32)?.unsqueeze(1)?.broadcast_mul(&f)?;
    Tensor::cat(&[arg.sin()?, arg.cos()?], 1)
}

/// A scalar embedder: Fourier features, then a SiLU MLP.
#[derive(Debug, Clone)]
struct ScalarEmbed {
    fc1: Linear,
    fc2: Linear,
}

impl ScalarEmbed {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(ScalarEmbed { fc1: linear(64, dim, vb.pp("fc1"))?, fc2: linear(dim, dim, vb.pp("fc2"))? })
    }
    /// The same with a zero output layer (a new branch that starts silent).
    fn new_zero(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(ScalarEmbed { fc1: linear(64, dim, vb.pp("fc1"))?, fc2: linear_zero(dim, dim, vb.pp("fc2"))? })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(&fourier(x, 32)?)?.silu()?)
    }
}

/// The inputs of one denoising call.
pub struct DitInput<'a> {
    /// Noisy target `(B, F·C, H, W)` (normalised delta space): the chunk's F frames stacked in
    /// channels, each the change from the last context frame.
    pub noisy: &'a Tensor,
    /// Context latents `(B, K, C, H, W)`, oldest first, zeros where missing (normalised).
    pub context: &'a Tensor,
    /// `(B, K)`: 1 where a context frame is present.
    pub context_mask: &'a Tensor,
    /// Noise level τ of the target, `(B)` in [0, 1] (1 is pure noise).
    pub tau: &'a Tensor,
    /// Noise level added to the context, `(B)`.
    pub context_noise: &'a Tensor,
    /// Actions `(B, K + F - 1, A)` (normalised); `actions[k]` follows context frame k for k < K,
    /// then `actions[K - 1 + i]` leads from target frame i - 1 to target frame i.
    pub actions: &'a Tensor,
    /// `(B, K + F - 1)`: 1 where an action is present.
    pub action_mask: &'a Tensor,
    /// `(B)`: 1 drops every action (the unconditional branch of guidance).
    pub drop_actions: &'a Tensor,
    /// Caption, direction and anchor (None: none of them).
    pub extras: Option<&'a DitExtras<'a>>,
}

/// Conditions beyond context and actions; each row may leave any of them out.
#[derive(Clone, Copy)]
pub struct DitExtras<'a> {
    /// Caption features `(B, L, buckets)` and word mask `(B, L)` ([`super::text::stack`]).
    pub text: Option<(&'a Tensor, &'a Tensor)>,
    /// `(B)`: 1 where the caption is used (0: no caption, the unconditional branch).
    pub text_keep: &'a Tensor,
    /// `(B)`: where the target lies in the captioned clip, in (0, 1].
    pub progress: &'a Tensor,
    /// `(B)`: 1 when the window runs backwards in time.
    pub reverse: &'a Tensor,
    /// `(B, C, H, W)`: anchor latent (normalised, absolute), zeros where absent.
    pub anchor: &'a Tensor,
    /// `(B)`: 1 where an anchor is given.
    pub anchor_mask: &'a Tensor,
    /// `(B)`: steps from the chunk's last target frame to the anchor divided by
    /// [`ANCHOR_RANGE`] (with F > 1 it may be 2 - F..0: the anchor is one of the chunk's frames).
    pub anchor_dist: &'a Tensor,
}

/// The diffusion transformer.
#[derive(Debug, Clone)]
pub struct Dit {
    embed: Linear,
    pos: Tensor,
    tau_embed: ScalarEmbed,
    ctx_noise_embed: ScalarEmbed,
    act1: Linear,
    act2: Linear,
    blocks: Vec<AdaBlock>,
    final_mod: Linear,
    out: Linear,
    text: Option<(TextEncoder, ScalarEmbed)>,
    bidir: Option<(Linear, ScalarEmbed)>,
    /// Sizes.
    pub config: DitConfig,
}

impl Dit {
    /// Builds the network from `vb`.
    pub fn new(config: DitConfig, vb: VarBuilder) -> Result<Self> {
        if let Err(e) = config.validate() {
            candle_core::bail!("{e}");
        }
        let c = &config;
        let cell = c.latent[0] * c.patch * c.patch;
        let d = c.dim;
        Ok(Dit {
            embed: linear(Self::embed_inputs(c), d, vb.pp("embed"))?,
            pos: vb.get_with_hints((c.tokens(), d), "pos", candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 })?,
            tau_embed: ScalarEmbed::new(d, vb.pp("tau_embed"))?,
            ctx_noise_embed: ScalarEmbed::new(d, vb.pp("ctx_noise_embed"))?,
            act1: linear(c.action_features() + 1, d, vb.pp("act1"))?,
            act2: linear(d, d, vb.pp("act2"))?,
            blocks: (0..c.depth).map(|i| AdaBlock::new(d, c.heads, c.mlp_ratio, vb.pp(format!("block{i}")))).collect::<Result<_>>()?,
            final_mod: linear_zero(d, 2 * d, vb.pp("final_mod"))?,
            out: linear_zero(d, c.chunk * cell, vb.pp("out"))?,
            text: match &c.text {
                Some(t) => Some((TextEncoder::new(t.clone(), d, vb.pp("text"))?, ScalarEmbed::new_zero(d, vb.pp("progress_embed"))?)),
                None => None,
            },
            bidir: if c.bidirectional { Some((linear_zero(2, d, vb.pp("direction"))?, ScalarEmbed::new_zero(d, vb.pp("anchor_dist_embed"))?)) } else { None },
            config,
        })
    }

    /// Width of a token before embedding: K context cells, the first target frame, K presence
    /// flags, with `bidirectional` the anchor's cells and its flag, then the chunk's further
    /// target frames (each addition appended last, so that an older checkpoint's embedding is a
    /// prefix of the new one).
    pub fn embed_inputs(c: &DitConfig) -> usize {
        let cell = c.latent[0] * c.patch * c.patch;
        (c.context + 1) * cell + c.context + if c.bidirectional { cell + 1 } else { 0 } + (c.chunk - 1) * cell + if c.token_actions { c.action_features() } else { 0 }
    }

    /// Predicts the clean target (normalised deltas) `(B, F·C, H, W)`.
    pub fn forward(&self, inp: &DitInput) -> Result<Tensor> {
        let c = &self.config;
        let [lc, lh, lw] = c.latent;
        let (b, k) = (inp.noisy.dim(0)?, c.context);
        let (gh, gw) = (lh / c.patch, lw / c.patch);
        let cell = lc * c.patch * c.patch;
        // Tubelets: (B, K, C, H, W) ++ (B, 1, C, H, W) -> (B, (K+1)*C*p², gh, gw) -> (B, T, ·)
        let ctx = inp.context.reshape((b * k, lc, lh, lw))?;
        let ctx = pixel_unshuffle(&ctx, c.patch)?.reshape((b, k * cell, gh, gw))?;
        let f = c.chunk;
        // Frame i of the chunk holds channels i·cell..(i+1)·cell after the unshuffle.
        let tgt = pixel_unshuffle(inp.noisy, c.patch)?;
        let mask = inp.context_mask.reshape((b, k, 1, 1))?.broadcast_as((b, k, gh, gw))?.contiguous()?;
        let dev = inp.noisy.device();
        let mut parts = vec![ctx, tgt.narrow(1, 0, cell)?, mask];
        if self.bidir.is_some() {
            let (anchor, amask) = match inp.extras {
                Some(e) => (pixel_unshuffle(e.anchor, c.patch)?, e.anchor_mask.clone()),
                None => (Tensor::zeros((b, cell, gh, gw), DType::F32, dev)?, Tensor::zeros(b, DType::F32, dev)?),
            };
            parts.push(anchor);
            parts.push(amask.reshape((b, 1, 1, 1))?.broadcast_as((b, 1, gh, gw))?.contiguous()?);
        }
        if f > 1 {
            parts.push(tgt.narrow(1, cell, (f - 1) * cell)?);
        }
        let keep = (1.0 - inp.drop_actions)?;
        let acts = inp.actions.broadcast_mul(&inp.action_mask.unsqueeze(2)?)?.broadcast_mul(&keep.reshape((b, 1, 1))?)?;
        let amask = inp.action_mask.broadcast_mul(&keep.reshape((b, 1))?)?;
        if c.token_actions {
            let n = c.action_features();
            let per = Tensor::cat(&[&acts.flatten_from(1)?, &amask], 1)?;
            parts.push(per.reshape((b, n, 1, 1))?.broadcast_as((b, n, gh, gw))?.contiguous()?);
        }
        let x = Tensor::cat(&parts, 1)?;
        let x = x.flatten_from(2)?.transpose(1, 2)?.contiguous()?;
        let mut h = self.embed.forward(&x)?.broadcast_add(&self.pos)?;
        // Conditioning: (B, D). The first K slots, their flags and the drop flag (the layout
        // before chunks), then the chunk's further slots and their flags.
        let mut a = vec![acts.narrow(1, 0, k)?.flatten_from(1)?, amask.narrow(1, 0, k)?, inp.drop_actions.reshape((b, 1))?];
        if f > 1 {
            a.push(acts.narrow(1, k, f - 1)?.flatten_from(1)?);
            a.push(amask.narrow(1, k, f - 1)?);
        }
        let a = Tensor::cat(&a, 1)?;
        let cond = (self.tau_embed.forward(inp.tau)? + self.ctx_noise_embed.forward(inp.context_noise)?)?;
        let mut cond = (cond + self.act2.forward(&self.act1.forward(&a)?.silu()?)?)?;
        if let (Some((enc, progress)), Some(e)) = (&self.text, inp.extras) {
            let keep = e.text_keep.reshape((b, 1))?;
            if let Some((w, m)) = e.text {
                cond = (cond + enc.forward(w, m)?.broadcast_mul(&keep)?)?;
            }
            cond = (cond + progress.forward(e.progress)?.broadcast_mul(&keep)?)?;
        }
        if let (Some((flags, dist)), Some(e)) = (&self.bidir, inp.extras) {
            let f = Tensor::stack(&[e.reverse, e.anchor_mask], 1)?;
            cond = (cond + flags.forward(&f)?)?;
            cond = (cond + dist.forward(e.anchor_dist)?.broadcast_mul(&e.anchor_mask.reshape((b, 1))?)?)?;
        }
        for blk in &self.blocks {
            h = blk.forward(&h, &cond)?;
        }
        let m = self.final_mod.forward(&cond.silu()?)?.unsqueeze(1)?.chunk(2, D::Minus1)?;
        let h = norm(&h)?.broadcast_mul(&(&m[1] + 1.0)?)?.broadcast_add(&m[0])?;
        // (B, T, F·C·p²) -> (B, F·C, H, W)
        let y = self.out.forward(&h)?.transpose(1, 2)?.reshape((b, f * cell, gh, gw))?;
        pixel_shuffle(&y, c.patch)
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        let lin = |l: &Linear| l.weight().elem_count() + l.bias().map_or(0, |b| b.elem_count());
        let c = &self.config;
        let (d, r) = (c.dim, c.mlp_ratio);
        let block = 6 * d * d + 6 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * d * r + d * r) + (d * r * d + d);
        let scalar = 64 * d + d + d * d + d;
        let text = self.text.as_ref().map_or(0, |(t, _)| t.parameter_count() + scalar);
        let bidir = self.bidir.as_ref().map_or(0, |(l, _)| lin(l) + scalar);
        text + bidir + lin(&self.embed) + self.pos.elem_count() + 2 * scalar + lin(&self.act1) + lin(&self.act2) + c.depth * block + lin(&self.final_mod) + lin(&self.out)
    }

    /// Multiply-adds of one forward pass for one sample, ×2 (FLOPs), for benchmarks.
    pub fn flops_per_sample(&self) -> f64 {
        let c = &self.config;
        let (t, d) = (c.tokens() as f64, c.dim as f64);
        let cell = (c.latent[0] * c.patch * c.patch) as f64;
        let per_block = t * (3.0 * d * d + d * d + 2.0 * d * d * c.mlp_ratio as f64) + 2.0 * t * t * d;
        2.0 * (c.depth as f64 * per_block + t * d * Self::embed_inputs(c) as f64 + t * d * c.chunk as f64 * cell)
    }
}
