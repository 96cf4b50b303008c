//! Conversions between u8 RGB frames and model tensors.

use candle_core::{DType, Device, Result, Tensor};

/// Frames `[N][H*W*3]` u8 to a `(N, 3, H, W)` f32 tensor in [-1, 1].
pub fn frames_to_tensor(frames: &[&[u8]], h: usize, w: usize, device: &Device) -> Result<Tensor> {
    let n = frames.len();
    let mut flat = Vec::with_capacity(n * h * w * 3);
    for f in frames {
        if f.len() != h * w * 3 {
            candle_core::bail!("a frame has {} bytes, expected {h}x{w}x3 = {}", f.len(), h * w * 3);
        }
        flat.extend_from_slice(f);
    }
    let t = Tensor::from_vec(flat, (n, h, w, 3), device)?.permute((0, 3, 1, 2))?.to_dtype(DType::F32)?;
    (t / 127.5)? - 1.0
}

/// A `(N, 3, H, W)` tensor in [-1, 1] back to u8 frames (clamped, rounded).
pub fn tensor_to_frames(t: &Tensor) -> Result<Vec<Vec<u8>>> {
    let (n, c, h, w) = t.dims4()?;
    if c != 3 {
        candle_core::bail!("expected 3 channels, got {:?}", t.dims());
    }
    let v = ((t.clamp(-1.0, 1.0)? + 1.0)? * 127.5)?.round()?.permute((0, 2, 3, 1))?.contiguous()?.to_dtype(DType::U8)?;
    let flat = v.flatten_all()?.to_vec1::<u8>()?;
    Ok(flat.chunks(h * w * 3).map(|c| c.to_vec()).take(n).collect())
}

/// PSNR in dB between two u8 frames (peak 255); 100 dB when identical.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.len().max(1) as f64;
    if mse == 0.0 { 100.0 } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}
