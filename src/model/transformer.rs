//! Transformer pieces shared by the autoencoder and the diffusion transformer, written with ops
//! that record gradients in candle 0.11 (`ops::softmax`, plain arithmetic norms) and SiLU MLPs
//! (GELU costs about 10 ns an element on this CPU; SiLU is nearly free).

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};

/// Layer norm over the last dimension without affine parameters (adaLN supplies scale and shift).
pub fn norm(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    xc.broadcast_div(&(var + 1e-6)?.sqrt()?)
}

/// A linear layer whose weights start at zero (adaLN-Zero gates, output heads).
pub fn linear_zero(din: usize, dout: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get_with_hints((dout, din), "weight", candle_nn::Init::Const(0.0))?;
    let b = vb.get_with_hints(dout, "bias", candle_nn::Init::Const(0.0))?;
    Ok(Linear::new(w, Some(b)))
}

/// Multi-head self-attention.
#[derive(Debug, Clone)]
pub struct Attention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

impl Attention {
    /// `dim` channels split over `heads`.
    pub fn new(dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        if heads == 0 || dim % heads != 0 {
            candle_core::bail!("attention: dim {dim} is not a multiple of heads {heads}");
        }
        Ok(Attention { qkv: linear(dim, 3 * dim, vb.pp("qkv"))?, proj: linear(dim, dim, vb.pp("proj"))?, heads })
    }
}

impl Module for Attention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let dh = d / self.heads;
        // (B, T, 3D) -> (3, B*H, T, dh)
        let qkv = self.qkv.forward(x)?.reshape((b, t, 3, self.heads, dh))?.permute((2, 0, 3, 1, 4))?.reshape((3, b * self.heads, t, dh))?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let att = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? / (dh as f64).sqrt())?;
        let att = candle_nn::ops::softmax(&att, D::Minus1)?;
        // (B*H, T, dh) -> (B, T, D)
        let y = att.matmul(&v.contiguous()?)?.reshape((b, self.heads, t, dh))?.transpose(1, 2)?.reshape((b, t, d))?;
        self.proj.forward(&y)
    }
}

/// Two-layer SiLU MLP.
#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    /// `dim` → `hidden` → `dim`.
    pub fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Mlp { fc1: linear(dim, hidden, vb.pp("fc1"))?, fc2: linear(hidden, dim, vb.pp("fc2"))? })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.silu()?)
    }
}

/// Pre-norm transformer block with learned norm gains: x + attn(n1(x)), then x + mlp(n2(x)).
#[derive(Debug, Clone)]
pub struct Block {
    g1: Tensor,
    attn: Attention,
    g2: Tensor,
    mlp: Mlp,
}

impl Block {
    /// A block of width `dim`.
    pub fn new(dim: usize, heads: usize, mlp_ratio: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Block {
            g1: vb.get_with_hints(dim, "g1", candle_nn::Init::Const(1.0))?,
            attn: Attention::new(dim, heads, vb.pp("attn"))?,
            g2: vb.get_with_hints(dim, "g2", candle_nn::Init::Const(1.0))?,
            mlp: Mlp::new(dim, dim * mlp_ratio, vb.pp("mlp"))?,
        })
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // (B, T, D) -> (B, T, D)
        let x = (x + self.attn.forward(&norm(x)?.broadcast_mul(&self.g1)?)?)?;
        &x + self.mlp.forward(&norm(&x)?.broadcast_mul(&self.g2)?)?
    }
}

/// Transformer block with adaLN-Zero conditioning: a per-sample vector gives shift, scale and a
/// gate (initialised to zero, so the block starts as the identity) for attention and MLP.
#[derive(Debug, Clone)]
pub struct AdaBlock {
    modulation: Linear,
    attn: Attention,
    mlp: Mlp,
}

impl AdaBlock {
    /// A block of width `dim` conditioned on a `dim`-vector.
    pub fn new(dim: usize, heads: usize, mlp_ratio: usize, vb: VarBuilder) -> Result<Self> {
        Ok(AdaBlock { modulation: linear_zero(dim, 6 * dim, vb.pp("modulation"))?, attn: Attention::new(dim, heads, vb.pp("attn"))?, mlp: Mlp::new(dim, dim * mlp_ratio, vb.pp("mlp"))? })
    }

    /// `x` (B, T, D), `c` (B, D).
    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        // (B, D) -> 6 × (B, 1, D)
        let m = self.modulation.forward(&c.silu()?)?.unsqueeze(1)?.chunk(6, D::Minus1)?;
        let modulate = |h: &Tensor, shift: &Tensor, scale: &Tensor| -> Result<Tensor> { norm(h)?.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(shift) };
        let h = self.attn.forward(&modulate(x, &m[0], &m[1])?)?;
        let x = (x + h.broadcast_mul(&m[2])?)?;
        let h = self.mlp.forward(&modulate(&x, &m[3], &m[4])?)?;
        &x + h.broadcast_mul(&m[5])?
    }
}
