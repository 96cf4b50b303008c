//! Convolutions for the convolutional autoencoder, in channels-last layout `(B, H, W, C)` and
//! built from ops whose backward pass is a matmul: a 3×3 convolution is nine shifted views of
//! the zero-padded map concatenated along channels (im2col) and one matmul. candle's own CPU
//! conv2d backward ran about 15× slower than its forward here; this one trains at matmul speed.

use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};

use super::transformer::norm;

/// `(B, H, W, C)` -> `(B, H/r, W/r, r·r·C)`, lossless (space to depth).
pub fn unshuffle_nhwc(x: &Tensor, r: usize) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    if h % r != 0 || w % r != 0 {
        candle_core::bail!("space to depth: {h}x{w} is not a multiple of {r}");
    }
    // (B·H/r, r, W/r, r·C) -> (B·H/r, W/r, r, r·C)
    x.reshape((b * h / r, r, w / r, r * c))?.transpose(1, 2)?.reshape((b, h / r, w / r, r * r * c))
}

/// Inverse of [`unshuffle_nhwc`]: `(B, H, W, r·r·C)` -> `(B, H·r, W·r, C)`.
pub fn shuffle_nhwc(x: &Tensor, r: usize) -> Result<Tensor> {
    let (b, h, w, rrc) = x.dims4()?;
    if rrc % (r * r) != 0 {
        candle_core::bail!("depth to space: {rrc} channels are not a multiple of {}", r * r);
    }
    let c = rrc / (r * r);
    // (B·H, W, r, r·C) -> (B·H, r, W, r·C)
    x.reshape((b * h, w, r, r * c))?.transpose(1, 2)?.reshape((b, h * r, w * r, c))
}

/// A 3×3 convolution, stride 1, zero padding 1, channels last.
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    proj: Linear,
}

impl Conv3x3 {
    /// `cin` -> `cout` channels; the weight is `(cout, 9·cin)`, taps row-major, channels inner.
    pub fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Conv3x3 { proj: linear(9 * cin, cout, vb)? })
    }

    /// The same with weight and bias starting at zero (an output that starts silent).
    pub fn zeros(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        let zero = candle_nn::Init::Const(0.0);
        Ok(Conv3x3 { proj: Linear::new(vb.get_with_hints((cout, 9 * cin), "weight", zero)?, Some(vb.get_with_hints(cout, "bias", zero)?)) })
    }
}

/// Largest im2col buffer a convolution builds at once, bytes. glibc serves blocks above 32 MiB
/// (its largest mmap threshold) with fresh pages from the kernel on every call and returns them
/// on free; inside this project's VMs each fresh page costs tens of microseconds, and a
/// 64×64×32 refinement layer at batch 16 (75 MB a buffer) spent 90% of its time in the kernel.
/// Larger batches are convolved in slices of frames that fit.
const MAX_IM2COL_BYTES: usize = 16 << 20;

impl Module for Conv3x3 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let per_frame = h * w * 9 * c * x.dtype().size_in_bytes();
        let frames = (MAX_IM2COL_BYTES / per_frame.max(1)).max(1);
        if b > frames {
            let slices = (0..b).step_by(frames).map(|i| self.forward_slice(&x.narrow(0, i, frames.min(b - i))?)).collect::<Result<Vec<_>>>()?;
            return Tensor::cat(&slices, 0);
        }
        self.forward_slice(x)
    }
}

impl Conv3x3 {
    fn forward_slice(&self, x: &Tensor) -> Result<Tensor> {
        let (_, h, w, _) = x.dims4()?;
        // (B, H, W, C) -> (B, H+2, W+2, C) -> 9 × (B, H, W, C) -> (B, H, W, 9C). Every piece is
        // made contiguous before it is concatenated: candle's CPU cat of strided views (and
        // its backward) falls back to element-wise copies, 20× slower.
        let p = x.contiguous()?.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
        let mut taps = Vec::with_capacity(9);
        for dy in 0..3 {
            let row = p.narrow(1, dy, h)?;
            for dx in 0..3 {
                taps.push(row.narrow(2, dx, w)?.contiguous()?);
            }
        }
        self.proj.forward(&Tensor::cat(&taps, 3)?)
    }
}

/// Channel layer norm with a learned gain (gradient-safe arithmetic, see `transformer::norm`).
#[derive(Debug, Clone)]
pub struct ChannelNorm {
    gain: Tensor,
}

impl ChannelNorm {
    /// Over `dim` channels.
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(ChannelNorm { gain: vb.get_with_hints(dim, "gain", candle_nn::Init::Const(1.0))? })
    }
}

impl Module for ChannelNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        norm(x)?.broadcast_mul(&self.gain)
    }
}

/// Residual block: `x + conv(silu(conv(silu(norm(x)))))`.
#[derive(Debug, Clone)]
pub struct ResBlock {
    norm: ChannelNorm,
    conv1: Conv3x3,
    conv2: Conv3x3,
}

impl ResBlock {
    /// A block of `dim` channels.
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(ResBlock { norm: ChannelNorm::new(dim, vb.pp("norm"))?, conv1: Conv3x3::new(dim, dim, vb.pp("conv1"))?, conv2: Conv3x3::new(dim, dim, vb.pp("conv2"))? })
    }
}

impl Module for ResBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm.forward(x)?.silu()?)?.silu()?;
        x + self.conv2.forward(&h)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn shuffles_are_inverse_and_match_the_channel_first_ones() {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 2.0 * 4.0 * 6.0 * 3.0, &dev).unwrap().reshape((2, 4, 6, 3)).unwrap();
        let u = unshuffle_nhwc(&x, 2).unwrap();
        assert_eq!(u.dims(), &[2, 2, 3, 12]);
        let back = shuffle_nhwc(&u, 2).unwrap();
        assert_eq!(back.flatten_all().unwrap().to_vec1::<f32>().unwrap(), x.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        // Pixel (1, 3) of image 1 is the (i=1, j=1) sub-pixel of cell (0, 1).
        let cell: Vec<f32> = u.get(1).unwrap().get(0).unwrap().get(1).unwrap().to_vec1().unwrap();
        let px: Vec<f32> = x.get(1).unwrap().get(1).unwrap().get(3).unwrap().to_vec1().unwrap();
        assert_eq!(&cell[9..12], &px[..]);
    }

    #[test]
    fn conv3x3_matches_a_direct_convolution() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let conv = Conv3x3::new(2, 3, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        let (h, w) = (5, 4);
        let x = Tensor::rand(-1f32, 1f32, (1, h, w, 2), &dev).unwrap();
        let y: Vec<f32> = conv.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let wt: Vec<f32> = conv.proj.weight().flatten_all().unwrap().to_vec1().unwrap();
        let bias: Vec<f32> = conv.proj.bias().unwrap().to_vec1().unwrap();
        for r in 0..h {
            for c in 0..w {
                for o in 0..3 {
                    let mut s = bias[o];
                    for dy in 0..3 {
                        for dx in 0..3 {
                            let (rr, cc) = (r as isize + dy as isize - 1, c as isize + dx as isize - 1);
                            if rr < 0 || cc < 0 || rr >= h as isize || cc >= w as isize {
                                continue;
                            }
                            for i in 0..2 {
                                s += wt[o * 18 + (dy * 3 + dx) * 2 + i] * xv[((rr as usize) * w + cc as usize) * 2 + i];
                            }
                        }
                    }
                    let got = y[(r * w + c) * 3 + o];
                    assert!((got - s).abs() < 1e-5, "({r}, {c}, {o}): {got} vs {s}");
                }
            }
        }
    }

    #[test]
    fn a_large_batch_is_convolved_in_slices_with_the_same_result_and_gradient() {
        // 64×64×32 frames take 4.7 MB of im2col each: a batch of 5 is sliced (3 + 2).
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let conv = Conv3x3::new(32, 4, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        let x = candle_core::Var::from_tensor(&Tensor::rand(-1f32, 1f32, (5, 64, 64, 32), &dev).unwrap()).unwrap();
        assert!(64 * 64 * 9 * 32 * 4 * 5 > MAX_IM2COL_BYTES);
        let y = conv.forward(x.as_tensor()).unwrap();
        let grad = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let gx: Vec<f32> = grad.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let per = 64 * 64 * 32;
        for i in 0..5 {
            let xi = x.as_tensor().narrow(0, i, 1).unwrap().detach();
            let xi = candle_core::Var::from_tensor(&xi).unwrap();
            let yi = conv.forward_slice(xi.as_tensor()).unwrap();
            let d = (y.narrow(0, i, 1).unwrap() - &yi).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-5, "frame {i}: {d}");
            let gi: Vec<f32> = yi.sqr().unwrap().sum_all().unwrap().backward().unwrap().get(xi.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert!(gi.iter().zip(&gx[i * per..(i + 1) * per]).all(|(a, b)| (a - b).abs() < 1e-4), "frame {i}'s gradient");
        }
    }
}
