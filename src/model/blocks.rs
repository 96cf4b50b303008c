//! Convolutional building blocks shared by the autoencoder. Only ops that record gradients in
//! candle 0.11 are used (GroupNorm, conv, SiLU, nearest upsampling at integer scales).

use candle_core::{Module, Result, Tensor};
use candle_nn::{conv2d, group_norm, Conv2d, Conv2dConfig, GroupNorm, VarBuilder};

/// Number of GroupNorm groups for `channels` (the largest of 8, 4, 2, 1 that divides it).
pub fn groups_for(channels: usize) -> usize {
    [8, 4, 2, 1].into_iter().find(|g| channels % g == 0).unwrap_or(1)
}

/// A 3×3 convolution with padding 1 and the given stride.
pub fn conv3(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    conv2d(cin, cout, 3, Conv2dConfig { padding: 1, stride, ..Default::default() }, vb)
}

/// Pre-activation residual block: x + conv(silu(norm(conv(silu(norm(x)))))).
#[derive(Debug, Clone)]
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
}

impl ResBlock {
    /// A block keeping `channels`.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let g = groups_for(channels);
        Ok(ResBlock {
            norm1: group_norm(g, channels, 1e-5, vb.pp("norm1"))?,
            conv1: conv3(channels, channels, 1, vb.pp("conv1"))?,
            norm2: group_norm(g, channels, 1e-5, vb.pp("norm2"))?,
            conv2: conv3(channels, channels, 1, vb.pp("conv2"))?,
        })
    }
}

impl Module for ResBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // (B, C, H, W) -> (B, C, H, W)
        let h = self.conv1.forward(&self.norm1.forward(x)?.silu()?)?;
        let h = self.conv2.forward(&self.norm2.forward(&h)?.silu()?)?;
        x + h
    }
}

/// Halves the resolution with a stride-2 3×3 convolution.
#[derive(Debug, Clone)]
pub struct Down(Conv2d);

impl Down {
    /// `cin` to `cout` channels.
    pub fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Down(conv3(cin, cout, 2, vb)?))
    }
}

impl Module for Down {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(x)
    }
}

/// Doubles the resolution (nearest) and convolves.
#[derive(Debug, Clone)]
pub struct Up(Conv2d);

impl Up {
    /// `cin` to `cout` channels.
    pub fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Up(conv3(cin, cout, 1, vb)?))
    }
}

impl Module for Up {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        self.0.forward(&x.upsample_nearest2d(2 * h, 2 * w)?)
    }
}
