//! Writing frames as animated GIFs and PNG strips (atomically).

use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbImage, RgbaImage};

use crate::data::{write_atomic, DataError};

fn enc_err(path: &Path) -> impl Fn(image::ImageError) -> DataError + '_ {
    move |e| DataError::Invalid(format!("{}: cannot encode image: {e}", path.display()))
}

/// Writes RGB frames (`h*w*3` bytes each) as a looping GIF, `scale`× enlarged (nearest pixel).
pub fn write_gif(path: &Path, frames: &[&[u8]], h: usize, w: usize, scale: usize, delay_ms: u32) -> Result<(), DataError> {
    let mut buf = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut buf, 10);
        enc.set_repeat(Repeat::Infinite).map_err(enc_err(path))?;
        for f in frames {
            let rgb = upscale(f, h, w, scale);
            let rgba = RgbaImage::from_fn(rgb.width(), rgb.height(), |x, y| {
                let p = rgb.get_pixel(x, y);
                image::Rgba([p[0], p[1], p[2], 255])
            });
            enc.encode_frame(Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(delay_ms, 1))).map_err(enc_err(path))?;
        }
    }
    write_atomic(path, &buf)
}

/// Nearest-neighbour enlargement of an RGB frame.
pub fn upscale(f: &[u8], h: usize, w: usize, scale: usize) -> RgbImage {
    let s = scale.max(1);
    RgbImage::from_fn((w * s) as u32, (h * s) as u32, |x, y| {
        let i = ((y as usize / s) * w + x as usize / s) * 3;
        image::Rgb([f[i], f[i + 1], f[i + 2]])
    })
}

/// Writes a grid of RGB frames (rows of equal length) as one PNG, with a 1-px gap.
pub fn write_png_grid(path: &Path, rows: &[Vec<&[u8]>], h: usize, w: usize, scale: usize) -> Result<(), DataError> {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let s = scale.max(1);
    let (cw, ch) = (w * s + 1, h * s + 1);
    let mut img = RgbImage::from_pixel((cols * cw) as u32, (rows.len() * ch) as u32, image::Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, f) in row.iter().enumerate() {
            let up = upscale(f, h, w, s);
            image::imageops::replace(&mut img, &up, (c * cw) as i64, (r * ch) as i64);
        }
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).map_err(enc_err(path))?;
    write_atomic(path, buf.get_ref())
}
