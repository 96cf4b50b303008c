//! The video compression network: a patch-transformer autoencoder from 64×64×3 frames to a
//! 16×16×4 latent (1,024 values, a 12× compression). Trained first, then frozen; its
//! reconstruction PSNR is the ceiling of every prediction.
//!
//! Frames are cut into 8×8 pixel patches (64 tokens); a transformer encodes them and each token
//! emits a 2×2×4 block of latent cells. The decoder mirrors it. Transformers rather than
//! convolutions because candle's CPU conv2d backward ran 15× slower than its forward here, while
//! matmuls run near the machine's peak.

use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::transformer::{norm, Block};

/// Autoencoder sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderConfig {
    /// Frame size `[H, W]`.
    pub resolution: [usize; 2],
    /// Pixel patch side (one token per patch).
    pub patch: usize,
    /// Token width.
    pub dim: usize,
    /// Transformer blocks in the encoder, and again in the decoder.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width as a multiple of `dim`.
    pub mlp_ratio: usize,
    /// Channels of the latent.
    pub latent_channels: usize,
    /// Each token emits a `latent_patch × latent_patch` block of latent cells.
    pub latent_patch: usize,
}

/// (B, C, H, W) -> (B, C*r*r, H/r, W/r), lossless.
pub fn pixel_unshuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    if r == 1 {
        return Ok(x.clone());
    }
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b * c, h / r, r, w / r, r))?.permute((0, 2, 4, 1, 3))?.reshape((b, c * r * r, h / r, w / r))
}

/// Inverse of [`pixel_unshuffle`]: (B, C*r*r, H, W) -> (B, C, H*r, W*r).
pub fn pixel_shuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    if r == 1 {
        return Ok(x.clone());
    }
    let (b, crr, h, w) = x.dims4()?;
    let c = crr / (r * r);
    x.reshape((b * c, r, r, h, w))?.permute((0, 3, 1, 4, 2))?.reshape((b, c, h * r, w * r))
}

/// (B, C, h, w) -> (B, h*w, C)
fn to_tokens(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(2)?.transpose(1, 2)?.contiguous()
}

/// (B, h*w, C) -> (B, C, h, w)
fn from_tokens(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (b, _, c) = x.dims3()?;
    x.transpose(1, 2)?.reshape((b, c, h, w))
}

impl AutoencoderConfig {
    /// 64×64×3 → 16×16×4.
    pub fn small() -> Self {
        AutoencoderConfig { resolution: [64, 64], patch: 8, dim: 192, depth: 3, heads: 4, mlp_ratio: 2, latent_channels: 4, latent_patch: 2 }
    }

    /// A tiny config for tests (16×16 frames).
    pub fn tiny() -> Self {
        AutoencoderConfig { resolution: [16, 16], patch: 4, dim: 16, depth: 1, heads: 2, mlp_ratio: 2, latent_channels: 2, latent_patch: 2 }
    }

    /// Token grid `(h, w)`.
    pub fn grid(&self) -> (usize, usize) {
        (self.resolution[0] / self.patch, self.resolution[1] / self.patch)
    }

    /// Latent shape `(C, H, W)`.
    pub fn latent_shape(&self) -> (usize, usize, usize) {
        let (h, w) = self.grid();
        (self.latent_channels, h * self.latent_patch, w * self.latent_patch)
    }

    /// Checks the sizes.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let [h, w] = self.resolution;
        if [h, w, self.patch, self.dim, self.depth, self.heads, self.mlp_ratio, self.latent_channels, self.latent_patch].contains(&0) {
            return Err("every autoencoder size must be positive".into());
        }
        if h % self.patch != 0 || w % self.patch != 0 {
            return Err(format!("resolution {h}x{w} is not a multiple of patch {}", self.patch));
        }
        if self.dim % self.heads != 0 {
            return Err(format!("dim {} is not a multiple of heads {}", self.dim, self.heads));
        }
        Ok(())
    }
}

/// The autoencoder.
#[derive(Debug, Clone)]
pub struct Autoencoder {
    enc_in: Linear,
    enc_pos: Tensor,
    enc_blocks: Vec<Block>,
    enc_out: Linear,
    dec_in: Linear,
    dec_pos: Tensor,
    dec_blocks: Vec<Block>,
    dec_out: Linear,
    /// Its configuration.
    pub config: AutoencoderConfig,
}

impl Autoencoder {
    /// Builds the network; weights come from `vb` (`encoder.*`, `decoder.*`).
    pub fn new(config: AutoencoderConfig, vb: VarBuilder) -> Result<Self> {
        if let Err(e) = config.validate() {
            candle_core::bail!("{e}");
        }
        let c = &config;
        let (gh, gw) = c.grid();
        let pix = 3 * c.patch * c.patch;
        let lat = c.latent_channels * c.latent_patch * c.latent_patch;
        let (ve, vd) = (vb.pp("encoder"), vb.pp("decoder"));
        let pos_init = candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        let blocks = |v: VarBuilder| (0..c.depth).map(|i| Block::new(c.dim, c.heads, c.mlp_ratio, v.pp(format!("block{i}")))).collect::<Result<Vec<_>>>();
        Ok(Autoencoder {
            enc_in: linear(pix, c.dim, ve.pp("embed"))?,
            enc_pos: ve.get_with_hints((gh * gw, c.dim), "pos", pos_init)?,
            enc_blocks: blocks(ve.clone())?,
            enc_out: linear(c.dim, lat, ve.pp("out"))?,
            dec_in: linear(lat, c.dim, vd.pp("embed"))?,
            dec_pos: vd.get_with_hints((gh * gw, c.dim), "pos", pos_init)?,
            dec_blocks: blocks(vd.clone())?,
            dec_out: linear(c.dim, pix, vd.pp("out"))?,
            config,
        })
    }

    /// Frames `(B, 3, H, W)` in [-1, 1] to latents `(B, C, h, w)`.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (_, ch, h, w) = x.dims4()?;
        if ch != 3 || [h, w] != c.resolution {
            candle_core::bail!("autoencoder input is {:?}; expected (B, 3, {}, {})", x.dims(), c.resolution[0], c.resolution[1]);
        }
        let (gh, gw) = c.grid();
        // (B, 3, H, W) -> (B, T, 3p²) -> (B, T, D)
        let mut t = self.enc_in.forward(&to_tokens(&pixel_unshuffle(x, c.patch)?)?)?.broadcast_add(&self.enc_pos)?;
        for b in &self.enc_blocks {
            t = b.forward(&t)?;
        }
        // (B, T, C·l²) -> (B, C, gh·l, gw·l)
        let z = self.enc_out.forward(&norm(&t)?)?;
        pixel_shuffle(&from_tokens(&z, gh, gw)?, c.latent_patch)
    }

    /// Latents `(B, C, h, w)` to frames in (about) [-1, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (gh, gw) = c.grid();
        let (lc, lh, lw) = c.latent_shape();
        let (_, zc, zh, zw) = z.dims4()?;
        if (zc, zh, zw) != (lc, lh, lw) {
            candle_core::bail!("latent is {:?}; expected (B, {lc}, {lh}, {lw})", z.dims());
        }
        let mut t = self.dec_in.forward(&to_tokens(&pixel_unshuffle(z, c.latent_patch)?)?)?.broadcast_add(&self.dec_pos)?;
        for b in &self.dec_blocks {
            t = b.forward(&t)?;
        }
        let p = self.dec_out.forward(&norm(&t)?)?;
        pixel_shuffle(&from_tokens(&p, gh, gw)?, c.patch)
    }
}
