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

/// Writes one RGB frame as a PNG at its own size.
pub fn write_png(path: &Path, frame: &[u8], h: usize, w: usize) -> Result<(), DataError> {
    let img = RgbImage::from_raw(w as u32, h as u32, frame.to_vec()).ok_or_else(|| DataError::Invalid(format!("{}: a frame of {} bytes is not {h}x{w}x3", path.display(), frame.len())))?;
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).map_err(enc_err(path))?;
    write_atomic(path, buf.get_ref())
}

/// Reads an image file as RGB bytes and its `(height, width)`; errors name the file.
pub fn read_image(path: &Path) -> Result<(Vec<u8>, usize, usize), DataError> {
    let img = image::open(path).map_err(|e| DataError::Invalid(format!("{}: cannot read image: {e}", path.display())))?.to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    Ok((img.into_raw(), h, w))
}

/// Frames of `h`×`w` laid left to right with a 1-pixel white gutter: `(n*w + n-1)` wide.
pub fn side_by_side(panels: &[&[u8]], h: usize, w: usize) -> Vec<u8> {
    let n = panels.len();
    let ww = n * w + n.saturating_sub(1);
    let mut f = vec![255u8; h * ww * 3];
    for (c, img) in panels.iter().enumerate() {
        for y in 0..h {
            let dst = (y * ww + c * (w + 1)) * 3;
            f[dst..dst + w * 3].copy_from_slice(&img[y * w * 3..(y + 1) * w * 3]);
        }
    }
    f
}

/// |a - b| per channel, doubled so small errors show.
pub fn difference(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| (x.abs_diff(*y) as u16 * 2).min(255) as u8).collect()
}

/// Writes a rollout for a person to look at: a GIF at `out` whose frames are truth | prediction
/// (sample 0) | difference, and a PNG beside it with rows truth, each sample, difference.
/// Returns the PNG's path.
pub fn write_comparison(out: &Path, truth: &[&[u8]], samples: &[Vec<Vec<u8>>], h: usize, w: usize) -> Result<std::path::PathBuf, DataError> {
    let first = samples.first().ok_or_else(|| DataError::Invalid("no predicted sample to show".into()))?;
    let n = truth.len().min(first.len());
    let mut gif = Vec::with_capacity(n);
    for t in 0..n {
        let diff = difference(truth[t], &first[t]);
        gif.push(side_by_side(&[truth[t], &first[t], &diff], h, w));
    }
    let refs: Vec<&[u8]> = gif.iter().map(|f| f.as_slice()).collect();
    write_gif(out, &refs, h, 3 * w + 2, 4, 150)?;
    let diffs: Vec<Vec<u8>> = (0..n).map(|t| difference(truth[t], &first[t])).collect();
    let mut rows: Vec<Vec<&[u8]>> = vec![truth[..n].to_vec()];
    for s in samples {
        rows.push(s.iter().take(n).map(|f| f.as_slice()).collect());
    }
    rows.push(diffs.iter().map(|f| f.as_slice()).collect());
    let png = out.with_extension("png");
    write_png_grid(&png, &rows, h, w, 2)?;
    Ok(png)
}
