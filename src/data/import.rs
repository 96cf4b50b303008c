//! `foresight import`: a folder of episodes given as PNG frames plus `actions.jsonl` becomes a
//! dataset.
//!
//! Layout: one sub-folder per episode (sorted by name) holding `frame_0000.png`, `frame_0001.png`,
//! … and `actions.jsonl` with one `{"action": [..]}` per transition (discrete actions as one-hot
//! vectors), and optionally `episode.json` with `{"caption": "..."}`.

use std::path::{Path, PathBuf};

use super::episode::Episode;
use super::manifest::{ActionSpec, Events, FORMAT_VERSION, Manifest};
use super::store::{DataError, DatasetWriter};

#[derive(serde::Deserialize)]
struct ActionLine {
    action: Vec<f32>,
}

#[derive(serde::Deserialize, Default)]
struct EpisodeMeta {
    #[serde(default)]
    caption: String,
}

fn corrupt(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Corrupt { path: path.to_owned(), message: message.into() }
}

fn read_episode(dir: &Path, index: usize) -> Result<Episode, DataError> {
    let ap = dir.join("actions.jsonl");
    let text = std::fs::read_to_string(&ap).map_err(|source| DataError::Io { path: ap.clone(), source })?;
    let mut actions: Vec<Vec<f32>> = Vec::new();
    for (ln, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let a: ActionLine = serde_json::from_str(line).map_err(|e| corrupt(&ap, format!("line {}: {e}", ln + 1)))?;
        if let Some(v) = a.action.iter().find(|v| !v.is_finite()) {
            return Err(corrupt(&ap, format!("line {}: action value {v} is not finite", ln + 1)));
        }
        if let Some(first) = actions.first() {
            if first.len() != a.action.len() {
                return Err(corrupt(&ap, format!("line {}: {} values, earlier lines have {}", ln + 1, a.action.len(), first.len())));
            }
        }
        if a.action.is_empty() {
            return Err(corrupt(&ap, format!("line {}: empty action", ln + 1)));
        }
        actions.push(a.action);
    }
    if actions.is_empty() {
        return Err(corrupt(&ap, "no actions"));
    }
    let steps = actions.len();
    let (mut h, mut w) = (0, 0);
    let mut frames = Vec::new();
    for t in 0..=steps {
        let fp = dir.join(format!("frame_{t:04}.png"));
        let img = image::open(&fp).map_err(|e| corrupt(&fp, format!("cannot read frame: {e} (an episode of {steps} actions needs {} frames)", steps + 1)))?.to_rgb8();
        if t == 0 {
            (h, w) = (img.height() as usize, img.width() as usize);
        } else if (img.height() as usize, img.width() as usize) != (h, w) {
            return Err(corrupt(&fp, format!("frame is {}x{}, frame_0000.png is {h}x{w}", img.height(), img.width())));
        }
        frames.extend_from_slice(img.as_raw());
    }
    let mp = dir.join("episode.json");
    let meta: EpisodeMeta = match std::fs::read_to_string(&mp) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| corrupt(&mp, e.to_string()))?,
        Err(_) => EpisodeMeta::default(),
    };
    let action_dim = actions[0].len();
    Ok(Episode {
        height: h,
        width: w,
        frames,
        action_dim,
        actions: actions.concat(),
        state_dim: 0,
        states: Vec::new(),
        seed: index as u64,
        policy: "imported".into(),
        caption: meta.caption,
        events: Events::default(),
        contact_steps: 0,
    })
}

/// Imports every episode folder under `from` into a new dataset at `out`.
pub fn import_dir(from: &Path, out: &Path, command: String) -> Result<Manifest, DataError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(from)
        .map_err(|source| DataError::Io { path: from.to_owned(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.join("actions.jsonl").exists())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(DataError::Invalid(format!("{}: no episode folders (sub-folders with actions.jsonl and frame_0000.png, ...)", from.display())));
    }
    let episodes: Vec<Episode> = dirs.iter().enumerate().map(|(i, d)| read_episode(d, i)).collect::<Result<_, _>>()?;
    let (h, w, dim) = (episodes[0].height, episodes[0].width, episodes[0].action_dim);
    for (d, e) in dirs.iter().zip(&episodes) {
        if (e.height, e.width, e.action_dim) != (h, w, dim) {
            return Err(corrupt(d, format!("{}x{} frames with {}-d actions; the first episode has {h}x{w} and {dim}-d", e.height, e.width, e.action_dim)));
        }
    }
    let all = episodes.iter().flat_map(|e| e.actions.iter().copied());
    let mut low = vec![f32::INFINITY; dim];
    let mut high = vec![f32::NEG_INFINITY; dim];
    for (k, v) in all.enumerate() {
        low[k % dim] = low[k % dim].min(v);
        high[k % dim] = high[k % dim].max(v);
    }
    let discrete = episodes.iter().all(|e| e.actions.chunks(dim).all(|a| a.iter().all(|&v| v == 0.0 || v == 1.0) && a.iter().filter(|&&v| v == 1.0).count() == 1));
    let hash = {
        let mut s = String::new();
        for d in &dirs {
            s.push_str(&d.to_string_lossy());
        }
        format!("{:016x}", crate::rng::fnv1a(s.as_bytes()))
    };
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        scene: "imported".into(),
        scene_hash: hash,
        resolution: [h, w],
        dt: 0.0,
        frame_skip: 1,
        action_spec: ActionSpec { dim, names: (0..dim).map(|i| format!("a{i}")).collect(), low, high, discrete },
        state_spec: None,
        bodies: Vec::new(),
        contact_fraction: None,
        episodes: Vec::new(),
        run_seed: None,
        command,
    };
    let mut w = DatasetWriter::create(out, manifest, 64)?;
    for e in episodes {
        w.push(e)?;
    }
    w.finish()
}
