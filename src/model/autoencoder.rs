//! The video compression network: an autoencoder from 64×64×3 frames to a 16×16×4 latent
//! (1,024 values, a 12× compression). Trained first, then frozen; its reconstruction PSNR is the
//! ceiling of every prediction. Two architectures (`kind`):
//!
//! - `patch` (the first shipped checkpoints): frames are cut into 8×8 pixel patches (64 tokens);
//!   a transformer encodes them and each token emits a 2×2×4 block of latent cells. The decoder
//!   mirrors it. Each latent cell is a free function of its 8×8 patch, so a body that moves by
//!   a pixel can change its code arbitrarily.
//! - `conv`: convolutional (space-to-depth by 2, a 3×3 stem, residual blocks at half and quarter
//!   resolution, and at an eighth with `patch` 8, 1×1 projections between them; the decoder
//!   mirrors it with sub-pixel upsampling). Convolutions are shift-equivariant, so a moving body moves its code with it,
//!   which is what the transformer after it has to predict. The convolutions are im2col + matmul
//!   ([`super::conv`]): candle's CPU conv2d backward ran 15× slower than its forward here.

use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::conv::{shuffle_nhwc, unshuffle_nhwc, ChannelNorm, Conv3x3, ResBlock};
use super::transformer::{norm, Block};

/// Which network the autoencoder is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AeKind {
    /// Patch transformer (`patch`, `dim`, `depth`, `heads`, `mlp_ratio`, `latent_patch`).
    #[default]
    Patch,
    /// Convolutional: `patch` 4 (two space-to-depth steps) or 8 (three) and `latent_patch` 1;
    /// `dim` is the width at quarter resolution and on the latent's grid, `dim / 2` at half
    /// resolution; `depth` residual blocks on the latent's grid in the encoder and again in the
    /// decoder (one, then two, at half resolution; with `patch` 8 one at quarter resolution on
    /// each side); `heads` and `mlp_ratio` are not used. `patch` 8 with 16 latent channels
    /// keeps 1,024 values a frame in 8×8 cells of 16 values (a body of the scenes fits in one
    /// cell) instead of 4×4 cells of 4.
    Conv,
}

impl AeKind {
    fn is_patch(&self) -> bool {
        *self == AeKind::Patch
    }
}

/// Autoencoder sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderConfig {
    /// The architecture (absent: `patch`).
    #[serde(default, skip_serializing_if = "AeKind::is_patch")]
    pub kind: AeKind,
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
    /// Pixel head: each decoder token emits `pixel_features` values for every one of its
    /// pixels, and a small MLP (`pixel_features → pixel_hidden → 3`, SiLU) shared by all pixels
    /// turns them into a colour. A linear head has to draw an edge at any sub-patch position
    /// as a sum of fixed patch images and smears it; a per-pixel nonlinearity can threshold a
    /// linear feature (a signed distance to the edge) and draw it sharp. 0 (absent): the linear
    /// head (`decoder.out`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pixel_features: usize,
    /// Hidden width of the pixel head's MLP (used when `pixel_features` > 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pixel_hidden: usize,
    /// Conv only: a full-resolution refinement in the decoder. The half-resolution features
    /// are spread to `refine_width` channels a pixel (sub-pixel upsampling), pass
    /// `refine_depth` residual blocks at full resolution, and a 3×3 convolution adds a
    /// correction to the decoder's image. 97% of the shipped push autoencoder's squared error
    /// lies within 2 px of a body's edge (session 17), which the half-resolution output layer
    /// draws as a sum of fixed 2×2 sub-pixel patterns. The correction's last layer starts at
    /// zero, so a decoder trained without it starts unchanged. Measured on push with the
    /// encoder frozen (width 32, depth 2): no gain over the plain decoder at 2–3× the cost per
    /// step (31.59 vs 31.66 dB after 750 steps), so no shipped checkpoint uses it. 0 (absent):
    /// none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refine_width: usize,
    /// Residual blocks of the refinement (used when `refine_width` > 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refine_depth: usize,
}

fn is_zero(x: &usize) -> bool {
    *x == 0
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
        AutoencoderConfig { kind: AeKind::Patch, resolution: [64, 64], patch: 8, dim: 192, depth: 3, heads: 4, mlp_ratio: 2, latent_channels: 4, latent_patch: 2, pixel_features: 0, pixel_hidden: 0, refine_width: 0, refine_depth: 0 }
    }

    /// Convolutional, 64×64×3 → 16×16×4 (widths 48 and 96, two blocks at 16×16 each side).
    pub fn conv() -> Self {
        AutoencoderConfig { kind: AeKind::Conv, resolution: [64, 64], patch: 4, dim: 96, depth: 2, heads: 1, mlp_ratio: 1, latent_channels: 4, latent_patch: 1, pixel_features: 0, pixel_hidden: 0, refine_width: 0, refine_depth: 0 }
    }

    /// A tiny convolutional config for tests (16×16 frames → 2×4×4).
    pub fn tiny_conv() -> Self {
        AutoencoderConfig { kind: AeKind::Conv, resolution: [16, 16], patch: 4, dim: 8, depth: 1, heads: 1, mlp_ratio: 1, latent_channels: 2, latent_patch: 1, pixel_features: 0, pixel_hidden: 0, refine_width: 0, refine_depth: 0 }
    }

    /// A tiny config for tests (16×16 frames).
    pub fn tiny() -> Self {
        AutoencoderConfig { kind: AeKind::Patch, resolution: [16, 16], patch: 4, dim: 16, depth: 1, heads: 2, mlp_ratio: 2, latent_channels: 2, latent_patch: 2, pixel_features: 0, pixel_hidden: 0, refine_width: 0, refine_depth: 0 }
    }

    /// The same sizes with a pixel head (`features` per pixel, MLP width `hidden`).
    pub fn with_pixel_head(mut self, features: usize, hidden: usize) -> Self {
        self.pixel_features = features;
        self.pixel_hidden = hidden;
        self
    }

    /// The same sizes with a full-resolution refinement (`width` channels, `depth` blocks).
    pub fn with_refinement(mut self, width: usize, depth: usize) -> Self {
        self.refine_width = width;
        self.refine_depth = depth;
        self
    }

    /// The encoder and latent sizes (everything but the decoder's output head and
    /// refinement): two configs that agree here share a latent space, so one's encoder can
    /// feed the other's decoder.
    pub fn same_encoder(&self, other: &AutoencoderConfig) -> bool {
        self.clone().with_pixel_head(0, 0).with_refinement(0, 0) == other.clone().with_pixel_head(0, 0).with_refinement(0, 0)
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
        if self.kind == AeKind::Conv {
            if ![4, 8].contains(&self.patch) || self.latent_patch != 1 {
                return Err(format!("a conv autoencoder downsamples by 4 or 8 to the latent grid: patch must be 4 or 8 (is {}) and latent_patch 1 (is {})", self.patch, self.latent_patch));
            }
            if !self.dim.is_multiple_of(2) {
                return Err(format!("conv autoencoder dim {} must be even (dim / 2 channels at half resolution)", self.dim));
            }
            if self.pixel_features != 0 {
                return Err("the pixel head belongs to the patch autoencoder".into());
            }
        } else if self.refine_width != 0 {
            return Err("the full-resolution refinement belongs to the conv autoencoder".into());
        }
        if (self.refine_width == 0) != (self.refine_depth == 0) {
            return Err(format!("refine_width {} and refine_depth {} must both be 0 (no refinement) or both positive", self.refine_width, self.refine_depth));
        }
        if (self.pixel_features == 0) != (self.pixel_hidden == 0) {
            return Err(format!("pixel_features {} and pixel_hidden {} must both be 0 (linear head) or both positive", self.pixel_features, self.pixel_hidden));
        }
        Ok(())
    }
}

/// The patch-transformer network.
#[derive(Debug, Clone)]
struct PatchNet {
    enc_in: Linear,
    enc_pos: Tensor,
    enc_blocks: Vec<Block>,
    enc_out: Linear,
    dec_in: Linear,
    dec_pos: Tensor,
    dec_blocks: Vec<Block>,
    dec_out: Linear,
    /// The pixel head's MLP, when configured.
    pixel_mlp: Option<(Linear, Linear)>,
}

impl PatchNet {
    fn new(c: &AutoencoderConfig, vb: VarBuilder) -> Result<Self> {
        let (gh, gw) = c.grid();
        let pix = 3 * c.patch * c.patch;
        let lat = c.latent_channels * c.latent_patch * c.latent_patch;
        let (ve, vd) = (vb.pp("encoder"), vb.pp("decoder"));
        let pos_init = candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        let blocks = |v: VarBuilder| (0..c.depth).map(|i| Block::new(c.dim, c.heads, c.mlp_ratio, v.pp(format!("block{i}")))).collect::<Result<Vec<_>>>();
        Ok(PatchNet {
            enc_in: linear(pix, c.dim, ve.pp("embed"))?,
            enc_pos: ve.get_with_hints((gh * gw, c.dim), "pos", pos_init)?,
            enc_blocks: blocks(ve.clone())?,
            enc_out: linear(c.dim, lat, ve.pp("out"))?,
            dec_in: linear(lat, c.dim, vd.pp("embed"))?,
            dec_pos: vd.get_with_hints((gh * gw, c.dim), "pos", pos_init)?,
            dec_blocks: blocks(vd.clone())?,
            dec_out: if c.pixel_features > 0 { linear(c.dim, c.patch * c.patch * c.pixel_features, vd.pp("pixel_out"))? } else { linear(c.dim, pix, vd.pp("out"))? },
            pixel_mlp: if c.pixel_features > 0 { Some((linear(c.pixel_features, c.pixel_hidden, vd.pp("pixel_fc1"))?, linear(c.pixel_hidden, 3, vd.pp("pixel_fc2"))?)) } else { None },
        })
    }

    fn encode(&self, c: &AutoencoderConfig, x: &Tensor) -> Result<Tensor> {
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

    fn decode(&self, c: &AutoencoderConfig, z: &Tensor) -> Result<Tensor> {
        let (gh, gw) = c.grid();
        let mut t = self.dec_in.forward(&to_tokens(&pixel_unshuffle(z, c.latent_patch)?)?)?.broadcast_add(&self.dec_pos)?;
        for b in &self.dec_blocks {
            t = b.forward(&t)?;
        }
        let p = self.dec_out.forward(&norm(&t)?)?;
        let img = pixel_shuffle(&from_tokens(&p, gh, gw)?, c.patch)?;
        let Some((fc1, fc2)) = &self.pixel_mlp else { return Ok(img) };
        // (B, F, H, W) -> (B, H·W, F) -> MLP -> (B, 3, H, W)
        let [h, w] = c.resolution;
        let hid = fc1.forward(&to_tokens(&img)?)?.silu()?;
        from_tokens(&fc2.forward(&hid)?, h, w)
    }
}

/// The convolutional network (channels last inside).
#[derive(Debug, Clone)]
struct ConvNet {
    stem: Conv3x3,
    enc_half: ResBlock,
    down: Linear,
    /// `patch` 8: a residual block at quarter resolution and a third space-to-depth step
    /// (and their mirror in the decoder).
    enc_eighth: Option<(ResBlock, Linear)>,
    enc_blocks: Vec<ResBlock>,
    enc_norm: ChannelNorm,
    enc_out: Linear,
    dec_in: Linear,
    dec_blocks: Vec<ResBlock>,
    dec_eighth: Option<(Linear, ResBlock)>,
    up: Linear,
    dec_half: Vec<ResBlock>,
    dec_norm: ChannelNorm,
    dec_out: Conv3x3,
    /// Full-resolution refinement: spread, blocks, norm, output (starts at zero).
    refine: Option<(Linear, Vec<ResBlock>, ChannelNorm, Conv3x3)>,
}

impl ConvNet {
    fn new(c: &AutoencoderConfig, vb: VarBuilder) -> Result<Self> {
        let (d, h) = (c.dim, c.dim / 2);
        let (ve, vd) = (vb.pp("encoder"), vb.pp("decoder"));
        let blocks = |v: VarBuilder, n: usize, dim: usize, name: &str| (0..n).map(|i| ResBlock::new(dim, v.pp(format!("{name}{i}")))).collect::<Result<Vec<_>>>();
        Ok(ConvNet {
            stem: Conv3x3::new(12, h, ve.pp("stem"))?,
            enc_half: ResBlock::new(h, ve.pp("half0"))?,
            down: linear(4 * h, d, ve.pp("down"))?,
            enc_eighth: if c.patch == 8 { Some((ResBlock::new(d, ve.pp("quarter0"))?, linear(4 * d, d, ve.pp("down2"))?)) } else { None },
            enc_blocks: blocks(ve.clone(), c.depth, d, "block")?,
            enc_norm: ChannelNorm::new(d, ve.pp("norm"))?,
            enc_out: linear(d, c.latent_channels, ve.pp("out"))?,
            dec_in: linear(c.latent_channels, d, vd.pp("embed"))?,
            dec_blocks: blocks(vd.clone(), c.depth, d, "block")?,
            dec_eighth: if c.patch == 8 { Some((linear(d, 4 * d, vd.pp("up2"))?, ResBlock::new(d, vd.pp("quarter0"))?)) } else { None },
            up: linear(d, 4 * h, vd.pp("up"))?,
            dec_half: blocks(vd.clone(), 2, h, "half")?,
            dec_norm: ChannelNorm::new(h, vd.pp("norm"))?,
            dec_out: Conv3x3::new(h, 12, vd.pp("out"))?,
            refine: if c.refine_width > 0 {
                let (f, vr) = (c.refine_width, vd.pp("refine"));
                Some((linear(h, 4 * f, vr.pp("spread"))?, blocks(vr.clone(), c.refine_depth, f, "block")?, ChannelNorm::new(f, vr.pp("norm"))?, Conv3x3::zeros(f, 3, vr.pp("out"))?))
            } else {
                None
            },
        })
    }

    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        // (B, 3, H, W) -> (B, H, W, 3) -> (B, H/2, W/2, 12) -> (B, H/2, W/2, D/2)
        let x = unshuffle_nhwc(&x.permute((0, 2, 3, 1))?.contiguous()?, 2)?;
        let mut t = self.enc_half.forward(&self.stem.forward(&x)?)?;
        // -> (B, H/4, W/4, 2D) -> (B, H/4, W/4, D)
        t = self.down.forward(&unshuffle_nhwc(&t, 2)?)?;
        // patch 8: -> (B, H/8, W/8, D)
        if let Some((block, down)) = &self.enc_eighth {
            t = down.forward(&unshuffle_nhwc(&block.forward(&t)?, 2)?)?;
        }
        for b in &self.enc_blocks {
            t = b.forward(&t)?;
        }
        // -> (B, H/4, W/4, C) -> (B, C, H/4, W/4)
        self.enc_out.forward(&self.enc_norm.forward(&t)?)?.permute((0, 3, 1, 2))?.contiguous()
    }

    fn decode(&self, z: &Tensor) -> Result<Tensor> {
        // (B, C, h, w) -> (B, h, w, D)
        let mut t = self.dec_in.forward(&z.permute((0, 2, 3, 1))?.contiguous()?)?;
        for b in &self.dec_blocks {
            t = b.forward(&t)?;
        }
        // patch 8: (B, h, w, D) -> (B, 2h, 2w, D)
        if let Some((up, block)) = &self.dec_eighth {
            t = block.forward(&shuffle_nhwc(&up.forward(&t)?, 2)?)?;
        }
        // -> (B, h, w, 2D) -> (B, 2h, 2w, D/2)
        t = shuffle_nhwc(&self.up.forward(&t)?, 2)?;
        for b in &self.dec_half {
            t = b.forward(&t)?;
        }
        // -> (B, 2h, 2w, 12) -> (B, 4h, 4w, 3) -> (B, 3, 4h, 4w)
        let y = self.dec_out.forward(&self.dec_norm.forward(&t)?.silu()?)?;
        let mut y = shuffle_nhwc(&y, 2)?;
        if let Some((spread, blocks, norm, out)) = &self.refine {
            // (B, 2h, 2w, D/2) -> (B, 4h, 4w, F) -> blocks -> + (B, 4h, 4w, 3)
            let mut r = shuffle_nhwc(&spread.forward(&t)?, 2)?;
            for b in blocks {
                r = b.forward(&r)?;
            }
            y = (y + out.forward(&norm.forward(&r)?.silu()?)?)?;
        }
        y.permute((0, 3, 1, 2))?.contiguous()
    }
}

#[derive(Debug, Clone)]
enum Net {
    Patch(PatchNet),
    Conv(ConvNet),
}

/// The autoencoder.
#[derive(Debug, Clone)]
pub struct Autoencoder {
    net: Net,
    /// Its configuration.
    pub config: AutoencoderConfig,
}

impl Autoencoder {
    /// Builds the network; weights come from `vb` (`encoder.*`, `decoder.*`).
    pub fn new(config: AutoencoderConfig, vb: VarBuilder) -> Result<Self> {
        if let Err(e) = config.validate() {
            candle_core::bail!("{e}");
        }
        let net = match config.kind {
            AeKind::Patch => Net::Patch(PatchNet::new(&config, vb)?),
            AeKind::Conv => Net::Conv(ConvNet::new(&config, vb)?),
        };
        Ok(Autoencoder { net, config })
    }

    /// Frames `(B, 3, H, W)` in [-1, 1] to latents `(B, C, h, w)`.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (_, ch, h, w) = x.dims4()?;
        if ch != 3 || [h, w] != c.resolution {
            candle_core::bail!("autoencoder input is {:?}; expected (B, 3, {}, {})", x.dims(), c.resolution[0], c.resolution[1]);
        }
        match &self.net {
            Net::Patch(n) => n.encode(c, x),
            Net::Conv(n) => n.encode(x),
        }
    }

    /// Latents `(B, C, h, w)` to frames in (about) [-1, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (lc, lh, lw) = c.latent_shape();
        let (_, zc, zh, zw) = z.dims4()?;
        if (zc, zh, zw) != (lc, lh, lw) {
            candle_core::bail!("latent is {:?}; expected (B, {lc}, {lh}, {lw})", z.dims());
        }
        match &self.net {
            Net::Patch(n) => n.decode(c, z),
            Net::Conv(n) => n.decode(z),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// Latent cells `[lo, hi)²` of `z` `(1, C, H, W)` shifted by `dy, dx` cells, flattened.
    fn window(z: &Tensor, lo: usize, hi: usize, dy: usize, dx: usize) -> Vec<f32> {
        z.narrow(2, lo + dy, hi - lo).unwrap().narrow(3, lo + dx, hi - lo).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn the_conv_encoder_moves_its_code_with_the_image() {
        // A frame shifted by 4 pixels (one latent cell) encodes to the same latent shifted by one
        // cell, away from the borders, at any weights: the property the transformer relies on
        // to learn motion. The patch encoder has no such property.
        let dev = Device::Cpu;
        let cfg = AutoencoderConfig { resolution: [64, 64], dim: 8, depth: 1, latent_channels: 2, ..AutoencoderConfig::conv() };
        let ae = Autoencoder::new(cfg, VarBuilder::from_varmap(&VarMap::new(), DType::F32, &dev)).unwrap();
        let x = Tensor::rand(-1f32, 1f32, (1, 3, 68, 68), &dev).unwrap();
        let a = ae.encode(&x.narrow(2, 0, 64).unwrap().narrow(3, 0, 64).unwrap()).unwrap();
        let b = ae.encode(&x.narrow(2, 4, 64).unwrap().narrow(3, 4, 64).unwrap()).unwrap();
        let (wa, wb) = (window(&a, 5, 10, 1, 1), window(&b, 5, 10, 0, 0));
        let scale = wa.iter().map(|v| v.abs()).fold(0f32, f32::max);
        assert!(scale > 0.0);
        for (u, v) in wa.iter().zip(&wb) {
            assert!((u - v).abs() < 1e-4 * scale, "{u} vs {v}");
        }
        // Shifted by one cell less, the codes differ: the comparison can fail.
        assert!(window(&a, 5, 10, 0, 0).iter().zip(&wb).any(|(u, v)| (u - v).abs() > 1e-2 * scale));
    }

    #[test]
    fn a_fresh_refinement_leaves_the_decoder_unchanged_and_keeps_the_latent_space() {
        let dev = Device::Cpu;
        let plain = AutoencoderConfig { resolution: [16, 16], dim: 8, depth: 1, latent_channels: 2, ..AutoencoderConfig::conv() };
        let refined = plain.clone().with_refinement(4, 1);
        assert!(plain.same_encoder(&refined) && refined.validate().is_ok());
        assert!(AutoencoderConfig::tiny().with_refinement(4, 1).validate().is_err());
        assert!(plain.clone().with_refinement(4, 0).validate().is_err());
        let (va, vb) = (VarMap::new(), VarMap::new());
        let a = Autoencoder::new(plain, VarBuilder::from_varmap(&va, DType::F32, &dev)).unwrap();
        let b = Autoencoder::new(refined, VarBuilder::from_varmap(&vb, DType::F32, &dev)).unwrap();
        let theirs = va.data().lock().unwrap().clone();
        let mut fresh = 0;
        for (name, var) in vb.data().lock().unwrap().iter() {
            match theirs.get(name) {
                Some(t) => var.set(t.as_tensor()).unwrap(),
                None => fresh += 1,
            }
        }
        assert!(fresh > 0);
        let z = Tensor::rand(-1f32, 1f32, (2, 2, 4, 4), &dev).unwrap();
        let diff = (a.decode(&z).unwrap() - b.decode(&z).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
        let scale = a.decode(&z).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(scale > 0.0);
    }

    #[test]
    fn the_eighth_resolution_conv_autoencoder_keeps_1024_values_and_moves_its_code_by_8_pixels() {
        let dev = Device::Cpu;
        let cfg = AutoencoderConfig { patch: 8, latent_channels: 16, ..AutoencoderConfig::conv() };
        assert_eq!(cfg.latent_shape(), (16, 8, 8));
        // 128×128 frames: a 16×16 grid, whose middle the borders do not reach.
        let small = AutoencoderConfig { resolution: [128, 128], dim: 8, depth: 1, latent_channels: 2, ..cfg };
        let vm = VarMap::new();
        let ae = Autoencoder::new(small, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        assert!(vm.data().lock().unwrap().contains_key("encoder.down2.weight"));
        let x = Tensor::rand(-1f32, 1f32, (1, 3, 136, 136), &dev).unwrap();
        let a = ae.encode(&x.narrow(2, 0, 128).unwrap().narrow(3, 0, 128).unwrap()).unwrap();
        let b = ae.encode(&x.narrow(2, 8, 128).unwrap().narrow(3, 8, 128).unwrap()).unwrap();
        assert_eq!(a.dims(), &[1, 2, 16, 16]);
        assert_eq!(ae.decode(&a).unwrap().dims(), &[1, 3, 128, 128]);
        // Away from the borders, shifted by one cell.
        let (wa, wb) = (window(&a, 6, 10, 1, 1), window(&b, 6, 10, 0, 0));
        let scale = wa.iter().map(|v| v.abs()).fold(0f32, f32::max);
        assert!(scale > 0.0);
        for (u, v) in wa.iter().zip(&wb) {
            assert!((u - v).abs() < 1e-4 * scale, "{u} vs {v}");
        }
        assert!(AutoencoderConfig { patch: 2, ..AutoencoderConfig::conv() }.validate().is_err());
    }
}
