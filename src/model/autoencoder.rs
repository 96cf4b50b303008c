//! The video compression network: a convolutional autoencoder from 64×64×3 frames to a small
//! latent (16×16×4 by default: 1,024 values, a 12× compression). Trained first, then frozen; its
//! reconstruction PSNR is the ceiling of every prediction.

use candle_core::{Module, Result, Tensor};
use candle_nn::{group_norm, Conv2d, GroupNorm, VarBuilder};
use serde::{Deserialize, Serialize};

use super::blocks::{conv3, groups_for, Down, ResBlock, Up};

/// Autoencoder sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderConfig {
    /// Channels per resolution level, finest first; each level after the first halves H and W.
    pub channels: Vec<usize>,
    /// Residual blocks per level.
    pub blocks_per_level: usize,
    /// Channels of the latent.
    pub latent_channels: usize,
}

impl AutoencoderConfig {
    /// 64×64×3 → 16×16×4 with 32/64/64 channels.
    pub fn small() -> Self {
        AutoencoderConfig { channels: vec![32, 64, 64], blocks_per_level: 1, latent_channels: 4 }
    }

    /// A tiny config for tests.
    pub fn tiny() -> Self {
        AutoencoderConfig { channels: vec![8, 8], blocks_per_level: 1, latent_channels: 2 }
    }

    /// How much each side shrinks.
    pub fn downsample(&self) -> usize {
        1 << (self.channels.len().saturating_sub(1))
    }

    /// Latent shape `(C, H, W)` for a frame of `h × w`.
    pub fn latent_shape(&self, h: usize, w: usize) -> (usize, usize, usize) {
        (self.latent_channels, h / self.downsample(), w / self.downsample())
    }

    /// Checks the sizes.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.channels.is_empty() || self.channels.contains(&0) || self.latent_channels == 0 {
            return Err("autoencoder channels and latent_channels must be positive".into());
        }
        Ok(())
    }
}

/// Frames to latents.
#[derive(Debug, Clone)]
pub struct Encoder {
    conv_in: Conv2d,
    levels: Vec<(Vec<ResBlock>, Option<Down>)>,
    mid: ResBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// Latents to frames.
#[derive(Debug, Clone)]
pub struct Decoder {
    conv_in: Conv2d,
    mid: ResBlock,
    levels: Vec<(Vec<ResBlock>, Option<Up>)>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// The autoencoder.
#[derive(Debug, Clone)]
pub struct Autoencoder {
    /// Encoder.
    pub encoder: Encoder,
    /// Decoder.
    pub decoder: Decoder,
    /// Its configuration.
    pub config: AutoencoderConfig,
}

impl Encoder {
    fn new(cfg: &AutoencoderConfig, vb: VarBuilder) -> Result<Self> {
        let c = &cfg.channels;
        let conv_in = conv3(3, c[0], 1, vb.pp("conv_in"))?;
        let mut levels = Vec::new();
        for (i, &ch) in c.iter().enumerate() {
            let vl = vb.pp(format!("level{i}"));
            let blocks = (0..cfg.blocks_per_level).map(|b| ResBlock::new(ch, vl.pp(format!("res{b}")))).collect::<Result<_>>()?;
            let down = if i + 1 < c.len() { Some(Down::new(ch, c[i + 1], vl.pp("down"))?) } else { None };
            levels.push((blocks, down));
        }
        let last = *c.last().unwrap_or(&1);
        Ok(Encoder {
            conv_in,
            levels,
            mid: ResBlock::new(last, vb.pp("mid"))?,
            norm_out: group_norm(groups_for(last), last, 1e-5, vb.pp("norm_out"))?,
            conv_out: conv3(last, cfg.latent_channels, 1, vb.pp("conv_out"))?,
        })
    }
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // (B, 3, H, W) in [-1, 1] -> (B, C_lat, H/d, W/d)
        let mut h = self.conv_in.forward(x)?;
        for (blocks, down) in &self.levels {
            for b in blocks {
                h = b.forward(&h)?;
            }
            if let Some(d) = down {
                h = d.forward(&h)?;
            }
        }
        let h = self.mid.forward(&h)?;
        self.conv_out.forward(&self.norm_out.forward(&h)?.silu()?)
    }
}

impl Decoder {
    fn new(cfg: &AutoencoderConfig, vb: VarBuilder) -> Result<Self> {
        let c = &cfg.channels;
        let last = *c.last().unwrap_or(&1);
        let mut levels = Vec::new();
        for i in (0..c.len()).rev() {
            let vl = vb.pp(format!("level{i}"));
            let blocks = (0..cfg.blocks_per_level).map(|b| ResBlock::new(c[i], vl.pp(format!("res{b}")))).collect::<Result<_>>()?;
            let up = if i > 0 { Some(Up::new(c[i], c[i - 1], vl.pp("up"))?) } else { None };
            levels.push((blocks, up));
        }
        Ok(Decoder {
            conv_in: conv3(cfg.latent_channels, last, 1, vb.pp("conv_in"))?,
            mid: ResBlock::new(last, vb.pp("mid"))?,
            levels,
            norm_out: group_norm(groups_for(c[0]), c[0], 1e-5, vb.pp("norm_out"))?,
            conv_out: conv3(c[0], 3, 1, vb.pp("conv_out"))?,
        })
    }
}

impl Module for Decoder {
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        // (B, C_lat, h, w) -> (B, 3, h*d, w*d), unbounded (trained towards [-1, 1])
        let mut h = self.mid.forward(&self.conv_in.forward(z)?)?;
        for (blocks, up) in &self.levels {
            for b in blocks {
                h = b.forward(&h)?;
            }
            if let Some(u) = up {
                h = u.forward(&h)?;
            }
        }
        self.conv_out.forward(&self.norm_out.forward(&h)?.silu()?)
    }
}

impl Autoencoder {
    /// Builds the network; weights come from `vb` (`encoder.*`, `decoder.*`).
    pub fn new(config: AutoencoderConfig, vb: VarBuilder) -> Result<Self> {
        if let Err(e) = config.validate() {
            candle_core::bail!("{e}");
        }
        Ok(Autoencoder { encoder: Encoder::new(&config, vb.pp("encoder"))?, decoder: Decoder::new(&config, vb.pp("decoder"))?, config })
    }

    /// Frames `(B, 3, H, W)` in [-1, 1] to latents.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        let d = self.config.downsample();
        if c != 3 || h % d != 0 || w % d != 0 {
            candle_core::bail!("autoencoder input is {:?}; expected (B, 3, H, W) with H and W multiples of {d}", x.dims());
        }
        self.encoder.forward(x)
    }

    /// Latents to frames in (about) [-1, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        self.decoder.forward(z)
    }
}
