//! The diffusion transformer: predicts the next latent frame from a window of context latents,
//! the actions, the noise level and the context noise level.
//!
//! Spacetime patches: the window (K context latents and the noisy target) is cut into tubelets of
//! `(K + 1) × p × p` latent cells, one token per `(y, x)` patch position, with the tubelet's time
//! axis laid out in its channels (oldest context first, the noisy target last) and a presence
//! mask for context frames that are missing (random context length 1..K in training, a single
//! start image at inference). One token per position keeps attention at 64 tokens for a 16×16
//! latent, so a forward pass costs what one frame's worth of tokens costs.
//!
//! Conditioning (adaLN-Zero): the sum of embeddings of the noise level τ, the context noise level,
//! and the K actions of the window (the last one leads to the target; missing ones are masked;
//! all of them are dropped together, with a flag, for classifier-free guidance).

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::autoencoder::{pixel_shuffle, pixel_unshuffle};
use super::transformer::{linear_zero, norm, AdaBlock};

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
}

impl DitConfig {
    /// Checks the sizes.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let [c, h, w] = self.latent;
        if [c, h, w, self.patch, self.context, self.action_dim, self.dim, self.depth, self.heads, self.mlp_ratio].contains(&0) {
            return Err("every dynamics size must be positive".into());
        }
        if h % self.patch != 0 || w % self.patch != 0 {
            return Err(format!("latent {h}x{w} is not a multiple of patch {}", self.patch));
        }
        if self.dim % self.heads != 0 {
            return Err(format!("dim {} is not a multiple of heads {}", self.dim, self.heads));
        }
        Ok(())
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
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(&fourier(x, 32)?)?.silu()?)
    }
}

/// The inputs of one denoising call.
pub struct DitInput<'a> {
    /// Noisy target `(B, C, H, W)` (normalised delta space).
    pub noisy: &'a Tensor,
    /// Context latents `(B, K, C, H, W)`, oldest first, zeros where missing (normalised).
    pub context: &'a Tensor,
    /// `(B, K)`: 1 where a context frame is present.
    pub context_mask: &'a Tensor,
    /// Noise level τ of the target, `(B)` in [0, 1] (1 is pure noise).
    pub tau: &'a Tensor,
    /// Noise level added to the context, `(B)`.
    pub context_noise: &'a Tensor,
    /// Actions `(B, K, A)` (normalised); `actions[k]` follows context frame k.
    pub actions: &'a Tensor,
    /// `(B, K)`: 1 where an action is present.
    pub action_mask: &'a Tensor,
    /// `(B)`: 1 drops every action (the unconditional branch of guidance).
    pub drop_actions: &'a Tensor,
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
            embed: linear((c.context + 1) * cell + c.context, d, vb.pp("embed"))?,
            pos: vb.get_with_hints((c.tokens(), d), "pos", candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 })?,
            tau_embed: ScalarEmbed::new(d, vb.pp("tau_embed"))?,
            ctx_noise_embed: ScalarEmbed::new(d, vb.pp("ctx_noise_embed"))?,
            act1: linear(c.context * (c.action_dim + 1) + 1, d, vb.pp("act1"))?,
            act2: linear(d, d, vb.pp("act2"))?,
            blocks: (0..c.depth).map(|i| AdaBlock::new(d, c.heads, c.mlp_ratio, vb.pp(format!("block{i}")))).collect::<Result<_>>()?,
            final_mod: linear_zero(d, 2 * d, vb.pp("final_mod"))?,
            out: linear_zero(d, cell, vb.pp("out"))?,
            config,
        })
    }

    /// Predicts the clean target (normalised delta) `(B, C, H, W)`.
    pub fn forward(&self, inp: &DitInput) -> Result<Tensor> {
        let c = &self.config;
        let [lc, lh, lw] = c.latent;
        let (b, k) = (inp.noisy.dim(0)?, c.context);
        let (gh, gw) = (lh / c.patch, lw / c.patch);
        let cell = lc * c.patch * c.patch;
        // Tubelets: (B, K, C, H, W) ++ (B, 1, C, H, W) -> (B, (K+1)*C*p², gh, gw) -> (B, T, ·)
        let ctx = inp.context.reshape((b * k, lc, lh, lw))?;
        let ctx = pixel_unshuffle(&ctx, c.patch)?.reshape((b, k * cell, gh, gw))?;
        let tgt = pixel_unshuffle(inp.noisy, c.patch)?;
        let mask = inp.context_mask.reshape((b, k, 1, 1))?.broadcast_as((b, k, gh, gw))?;
        let x = Tensor::cat(&[&ctx, &tgt, &mask.contiguous()?], 1)?;
        let x = x.flatten_from(2)?.transpose(1, 2)?.contiguous()?;
        let mut h = self.embed.forward(&x)?.broadcast_add(&self.pos)?;
        // Conditioning: (B, D)
        let keep = (1.0 - inp.drop_actions)?;
        let acts = inp.actions.broadcast_mul(&inp.action_mask.unsqueeze(2)?)?.broadcast_mul(&keep.reshape((b, 1, 1))?)?;
        let amask = inp.action_mask.broadcast_mul(&keep.reshape((b, 1))?)?;
        let a = Tensor::cat(&[&acts.flatten_from(1)?, &amask, &inp.drop_actions.reshape((b, 1))?], 1)?;
        let cond = (self.tau_embed.forward(inp.tau)? + self.ctx_noise_embed.forward(inp.context_noise)?)?;
        let cond = (cond + self.act2.forward(&self.act1.forward(&a)?.silu()?)?)?;
        for blk in &self.blocks {
            h = blk.forward(&h, &cond)?;
        }
        let m = self.final_mod.forward(&cond.silu()?)?.unsqueeze(1)?.chunk(2, D::Minus1)?;
        let h = norm(&h)?.broadcast_mul(&(&m[1] + 1.0)?)?.broadcast_add(&m[0])?;
        // (B, T, C·p²) -> (B, C, H, W)
        let y = self.out.forward(&h)?.transpose(1, 2)?.reshape((b, cell, gh, gw))?;
        pixel_shuffle(&y, c.patch)
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        let lin = |l: &Linear| l.weight().elem_count() + l.bias().map_or(0, |b| b.elem_count());
        let c = &self.config;
        let (d, r) = (c.dim, c.mlp_ratio);
        let block = 6 * d * d + 6 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * d * r + d * r) + (d * r * d + d);
        lin(&self.embed) + self.pos.elem_count() + 2 * (64 * d + d + d * d + d) + lin(&self.act1) + lin(&self.act2) + c.depth * block + lin(&self.final_mod) + lin(&self.out)
    }

    /// Multiply-adds of one forward pass for one sample, ×2 (FLOPs), for benchmarks.
    pub fn flops_per_sample(&self) -> f64 {
        let c = &self.config;
        let (t, d) = (c.tokens() as f64, c.dim as f64);
        let cell = (c.latent[0] * c.patch * c.patch) as f64;
        let per_block = t * (3.0 * d * d + d * d + 2.0 * d * d * c.mlp_ratio as f64) + 2.0 * t * t * d;
        2.0 * (c.depth as f64 * per_block + t * d * ((c.context as f64 + 1.0) * cell + c.context as f64) + t * d * cell)
    }
}
