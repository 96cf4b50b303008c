//! Minimal line plots as PNG (no fonts: the legend and axes are described beside the image).

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::data::{write_atomic, DataError};

/// Draws each series (y values over x = 1..n) in its colour on a white 480×320 canvas with light
/// grid lines at every quarter of the y range; y runs from `y_min` to `y_max`.
pub fn line_plot(path: &Path, series: &[(&[f64], [u8; 3])], y_min: f64, y_max: f64) -> Result<(), DataError> {
    let (w, h, m) = (480u32, 320u32, 20u32);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    for q in 0..=4 {
        let y = m + (h - 2 * m) * q / 4;
        for x in m..w - m {
            img.put_pixel(x, y, Rgb([220, 220, 220]));
        }
    }
    for y in m..h - m {
        img.put_pixel(m, y, Rgb([120, 120, 120]));
    }
    let span = (y_max - y_min).max(1e-9);
    for (ys, c) in series {
        let n = ys.len().max(2);
        let pt = |i: usize, v: f64| -> (f64, f64) {
            let x = m as f64 + (w - 2 * m) as f64 * i as f64 / (n - 1) as f64;
            let y = (h - m) as f64 - (h - 2 * m) as f64 * ((v - y_min) / span).clamp(0.0, 1.0);
            (x, y)
        };
        for i in 1..ys.len() {
            if !ys[i - 1].is_finite() || !ys[i].is_finite() {
                continue;
            }
            let (a, b) = (pt(i - 1, ys[i - 1]), pt(i, ys[i]));
            let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) as usize).max(1);
            for s in 0..=steps {
                let f = s as f64 / steps as f64;
                let (x, y) = (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
                    let (px, py) = (x as u32 + dx, y as u32 + dy);
                    if px < w && py < h {
                        img.put_pixel(px, py, Rgb(*c));
                    }
                }
            }
        }
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).map_err(|e| DataError::Invalid(format!("{}: {e}", path.display())))?;
    write_atomic(path, buf.get_ref())
}
