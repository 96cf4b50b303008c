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

/// Resizes an RGB frame (Catmull-Rom filter).
pub fn resize(frame: &[u8], h: usize, w: usize, to_h: usize, to_w: usize) -> Vec<u8> {
    match RgbImage::from_raw(w as u32, h as u32, frame.to_vec()) {
        Some(img) => image::imageops::resize(&img, to_w as u32, to_h as u32, image::imageops::FilterType::CatmullRom).into_raw(),
        None => vec![0; to_h * to_w * 3],
    }
}

/// Reads an image that must be `[h, w]`: another size is an error naming both sizes, unless
/// `resize_to_fit`, which resizes it.
pub fn read_frame_sized(path: &Path, size: [usize; 2], resize_to_fit: bool) -> Result<Vec<u8>, DataError> {
    let (f, h, w) = read_image(path)?;
    if [h, w] == size {
        return Ok(f);
    }
    if !resize_to_fit {
        return Err(DataError::Invalid(format!("{}: the image is {h}x{w}; the model takes {}x{} (pass --resize to resize it)", path.display(), size[0], size[1])));
    }
    Ok(resize(&f, h, w, size[0], size[1]))
}

/// Reads a video folder: its `frame_*.png` files in name order (or, if there are none, every
/// `.png` in it), all of one size. Returns the frames and `(height, width)`.
pub fn read_video(dir: &Path) -> Result<(Vec<Vec<u8>>, usize, usize), DataError> {
    let io = |source| DataError::Io { path: dir.to_owned(), source };
    let mut all: Vec<std::path::PathBuf> = std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png"))).collect();
    all.sort();
    let named: Vec<_> = all.iter().filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("frame_"))).cloned().collect();
    let files = if named.is_empty() { all } else { named };
    if files.is_empty() {
        return Err(DataError::Invalid(format!("{}: no PNG frames in the folder", dir.display())));
    }
    let mut frames = Vec::new();
    let mut size = None;
    for p in &files {
        let (f, h, w) = read_image(p)?;
        match size {
            None => size = Some((h, w)),
            Some(s) if s != (h, w) => return Err(DataError::Invalid(format!("{}: {h}x{w}, but the video's first frame is {}x{}", p.display(), s.0, s.1))),
            _ => {}
        }
        frames.push(f);
    }
    let (h, w) = size.unwrap_or((0, 0));
    Ok((frames, h, w))
}

/// Writes frames as `dir/frame_0000.png`, ... (a video folder [`read_video`] reads back).
pub fn write_video(dir: &Path, frames: &[&[u8]], h: usize, w: usize) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io { path: dir.to_owned(), source })?;
    for (i, f) in frames.iter().enumerate() {
        write_png(&dir.join(format!("frame_{i:04}.png")), f, h, w)?;
    }
    Ok(())
}

/// Actions from a JSON-lines file, one `{"action": [..]}` per line (blank lines skipped);
/// errors name the file and line.
pub fn read_action_lines(path: &Path) -> Result<Vec<Vec<f32>>, DataError> {
    #[derive(serde::Deserialize)]
    struct Line {
        action: Vec<f32>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.to_owned(), source })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let a: Line = serde_json::from_str(line).map_err(|e| DataError::Invalid(format!("{}:{}: expected {{\"action\": [..]}}: {e}", path.display(), i + 1)))?;
        out.push(a.action);
    }
    if out.is_empty() {
        return Err(DataError::Invalid(format!("{}: no actions", path.display())));
    }
    Ok(out)
}
