//! Frame metrics: PSNR, SSIM, and locating bodies by their flat colour.

pub use crate::model::frames::psnr;

/// Luma of an RGB frame (BT.601), as f64.
fn luma(f: &[u8]) -> Vec<f64> {
    f.chunks_exact(3).map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64).collect()
}

/// Mean SSIM of two RGB frames on luma, over 7×7 windows (stride 1), constants of Wang et al.
pub fn ssim(a: &[u8], b: &[u8], h: usize, w: usize) -> f64 {
    let (x, y) = (luma(a), luma(b));
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let r = 7.min(h).min(w);
    let n = (r * r) as f64;
    let mut total = 0.0;
    let mut count = 0;
    for i in 0..=h - r {
        for j in 0..=w - r {
            let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for di in 0..r {
                for dj in 0..r {
                    let k = (i + di) * w + j + dj;
                    let (p, q) = (x[k], y[k]);
                    sx += p;
                    sy += q;
                    sxx += p * p;
                    syy += q * q;
                    sxy += p * q;
                }
            }
            let (mx, my) = (sx / n, sy / n);
            let (vx, vy, cov) = (sxx / n - mx * mx, syy / n - my * my, sxy / n - mx * my);
            total += ((2.0 * mx * my + c1) * (2.0 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
            count += 1;
        }
    }
    total / count.max(1) as f64
}

/// Largest per-channel difference for a pixel to count as a body's colour.
pub const COLOUR_TOLERANCE: i32 = 40;

/// Fewest matching pixels for a body to count as present.
pub const MIN_PIXELS: usize = 2;

/// Centroid `(x, y)` (column, row; pixel-index units) of the pixels within
/// [`COLOUR_TOLERANCE`] of `colour`, or `None` when fewer than [`MIN_PIXELS`] match. The same code
/// runs on predicted and true frames.
pub fn locate(frame: &[u8], w: usize, colour: [u8; 3]) -> Option<[f32; 2]> {
    let (mut sx, mut sy, mut n) = (0f64, 0f64, 0usize);
    for (i, p) in frame.chunks_exact(3).enumerate() {
        if (0..3).all(|c| (p[c] as i32 - colour[c] as i32).abs() <= COLOUR_TOLERANCE) {
            sx += (i % w) as f64;
            sy += (i / w) as f64;
            n += 1;
        }
    }
    (n >= MIN_PIXELS).then(|| [(sx / n as f64) as f32, (sy / n as f64) as f32])
}

/// Distance between two pixel positions.
pub fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Connected blobs (4-neighbour) of pixels within [`COLOUR_TOLERANCE`] of `colour`, each of at
/// least [`MIN_PIXELS`]: centroid `(x, y)` and size, largest first.
pub fn blobs(frame: &[u8], w: usize, colour: [u8; 3]) -> Vec<([f32; 2], usize)> {
    let n = frame.len() / 3;
    let h = n / w.max(1);
    let hit: Vec<bool> = frame.chunks_exact(3).map(|p| (0..3).all(|c| (p[c] as i32 - colour[c] as i32).abs() <= COLOUR_TOLERANCE)).collect();
    let mut seen = vec![false; n];
    let mut out = Vec::new();
    for s in 0..n {
        if !hit[s] || seen[s] {
            continue;
        }
        let (mut stack, mut sx, mut sy, mut count) = (vec![s], 0f64, 0f64, 0usize);
        seen[s] = true;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            sx += x as f64;
            sy += y as f64;
            count += 1;
            let mut push = |j: usize| {
                if hit[j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                push(i - 1);
            }
            if x + 1 < w {
                push(i + 1);
            }
            if y > 0 {
                push(i - w);
            }
            if y + 1 < h {
                push(i + w);
            }
        }
        if count >= MIN_PIXELS {
            out.push(([(sx / count as f64) as f32, (sy / count as f64) as f32], count));
        }
    }
    out.sort_by(|a, b| b.1.cmp(&a.1));
    out
}

/// How well a sequence of frames shows each body as one blob on a continuous path: the fraction
/// of (frame, body) pairs where the body is exactly one blob within `max_jump` px of where it
/// was in the previous frame (`start`: positions before the first frame; `None` entries skip
/// the jump test).
pub fn path_score(frames: &[&[u8]], w: usize, colours: &[[u8; 3]], start: &[Option<[f32; 2]>], max_jump: f32) -> f64 {
    let mut prev: Vec<Option<[f32; 2]>> = start.to_vec();
    let (mut good, mut total) = (0usize, 0usize);
    for f in frames {
        for (b, &c) in colours.iter().enumerate() {
            total += 1;
            let found = blobs(f, w, c);
            let ok = found.len() == 1 && prev.get(b).copied().flatten().is_none_or(|p| dist(p, found[0].0) <= max_jump);
            good += ok as usize;
            prev[b] = found.first().map(|x| x.0);
        }
    }
    if total == 0 {
        0.0
    } else {
        good as f64 / total as f64
    }
}

/// Mean absolute difference of two frames, per byte (0-255).
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len().min(b.len()).max(1);
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as f64).sum::<f64>() / n as f64
}
