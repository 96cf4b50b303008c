//! Dataset directories: `manifest.json` plus safetensors shards, written atomically and read with
//! validation.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::episode::Episode;
use super::manifest::{EpisodeInfo, FORMAT_VERSION, Manifest};

/// A dataset that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Filesystem trouble.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file is corrupt, truncated or inconsistent with the manifest.
    #[error("{path}: {message}")]
    Corrupt {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The caller asked for something the dataset cannot give.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io { path: path.to_owned(), source }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn as_bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes a dataset: episodes are buffered and flushed a shard at a time; after each shard the
/// manifest is rewritten, so a crash leaves a valid dataset of the shards already flushed.
pub struct DatasetWriter {
    dir: PathBuf,
    manifest: Manifest,
    pending: Vec<Episode>,
    episodes_per_shard: usize,
    shards: usize,
}

impl DatasetWriter {
    /// Starts a dataset in `dir` (created if missing). Refuses a directory that already holds a
    /// dataset, so nothing written before is lost.
    pub fn create(dir: impl AsRef<Path>, manifest: Manifest, episodes_per_shard: usize) -> Result<Self, DataError> {
        let dir = dir.as_ref().to_owned();
        let m = dir.join("manifest.json");
        if m.exists() {
            return Err(DataError::Invalid(format!(
                "{} already holds a dataset; choose another output directory or remove it",
                dir.display()
            )));
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(DatasetWriter { dir, manifest: Manifest { episodes: Vec::new(), ..manifest }, pending: Vec::new(), episodes_per_shard: episodes_per_shard.max(1), shards: 0 })
    }

    /// Adds an episode; it must match the manifest's resolution, action and state sizes.
    pub fn push(&mut self, ep: Episode) -> Result<(), DataError> {
        ep.check().map_err(|e| DataError::Invalid(format!("episode {}: {e}", ep.seed)))?;
        let [h, w] = self.manifest.resolution;
        if ep.height != h || ep.width != w {
            return Err(DataError::Invalid(format!("episode {}: frames are {}x{}, dataset is {h}x{w}", ep.seed, ep.height, ep.width)));
        }
        if ep.action_dim != self.manifest.action_spec.dim || ep.state_dim != self.manifest.state_dim() {
            return Err(DataError::Invalid(format!(
                "episode {}: action/state sizes {}/{} differ from the manifest's {}/{}",
                ep.seed, ep.action_dim, ep.state_dim, self.manifest.action_spec.dim, self.manifest.state_dim()
            )));
        }
        self.pending.push(ep);
        if self.pending.len() >= self.episodes_per_shard {
            self.flush()?;
        }
        Ok(())
    }

    /// Episodes written or buffered so far.
    pub fn len(&self) -> usize {
        self.manifest.episodes.len() + self.pending.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn flush(&mut self) -> Result<(), DataError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let name = format!("shard_{:05}.safetensors", self.shards);
        let [h, w] = self.manifest.resolution;
        let (mut frames, mut actions, mut states) = (Vec::new(), Vec::new(), Vec::new());
        let (mut nf, mut na) = (0usize, 0usize);
        for ep in self.pending.drain(..) {
            self.manifest.episodes.push(EpisodeInfo {
                shard: name.clone(),
                frame_offset: nf,
                action_offset: na,
                steps: ep.steps(),
                seed: ep.seed,
                policy: ep.policy.clone(),
                caption: ep.caption.clone(),
                events: ep.events.clone(),
                contact_steps: ep.contact_steps,
            });
            nf += ep.num_frames();
            na += ep.steps();
            frames.extend_from_slice(&ep.frames);
            actions.extend_from_slice(&ep.actions);
            states.extend_from_slice(&ep.states);
        }
        let a_dim = self.manifest.action_spec.dim;
        let s_dim = self.manifest.state_dim();
        let actions_b = as_bytes_f32(&actions);
        let states_b = as_bytes_f32(&states);
        let err = |e: safetensors::SafeTensorError| DataError::Invalid(format!("{name}: {e}"));
        let mut views = vec![
            ("frames".to_string(), TensorView::new(Dtype::U8, vec![nf, h, w, 3], &frames).map_err(err)?),
            ("actions".to_string(), TensorView::new(Dtype::F32, vec![na, a_dim], &actions_b).map_err(err)?),
        ];
        if s_dim > 0 {
            views.push(("states".to_string(), TensorView::new(Dtype::F32, vec![nf, s_dim], &states_b).map_err(err)?));
        }
        let bytes = safetensors::tensor::serialize(views, None).map_err(err)?;
        write_atomic(&self.dir.join(&name), &bytes)?;
        self.shards += 1;
        self.write_manifest()
    }

    fn write_manifest(&mut self) -> Result<(), DataError> {
        let total: usize = self.manifest.episodes.iter().map(|e| e.steps).sum();
        let contacts: usize = self.manifest.episodes.iter().map(|e| e.contact_steps).sum();
        if self.manifest.state_spec.is_some() && total > 0 {
            self.manifest.contact_fraction = Some(contacts as f64 / total as f64);
        }
        let text = serde_json::to_string_pretty(&self.manifest).map_err(|e| DataError::Invalid(e.to_string()))?;
        write_atomic(&self.dir.join("manifest.json"), text.as_bytes())
    }

    /// Flushes the last shard and the manifest; returns the manifest.
    pub fn finish(mut self) -> Result<Manifest, DataError> {
        self.flush()?;
        self.write_manifest()?;
        Ok(self.manifest)
    }
}

/// A dataset opened for reading. Shards are read and validated when first needed.
pub struct Dataset {
    dir: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
    cache: HashMap<String, std::sync::Arc<Vec<u8>>>,
}

impl Dataset {
    /// Opens `dir` and validates its manifest.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, DataError> {
        let dir = dir.as_ref().to_owned();
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| DataError::Corrupt { path: path.clone(), message: format!("not a dataset manifest: {e}") })?;
        let bad = |message: String| DataError::Corrupt { path: path.clone(), message };
        if manifest.format_version != FORMAT_VERSION {
            return Err(bad(format!("format_version {} is not the supported {FORMAT_VERSION}", manifest.format_version)));
        }
        let [h, w] = manifest.resolution;
        if h == 0 || w == 0 {
            return Err(bad(format!("resolution {h}x{w} is empty")));
        }
        let a = &manifest.action_spec;
        if a.dim == 0 || a.names.len() != a.dim || a.low.len() != a.dim || a.high.len() != a.dim {
            return Err(bad(format!("action_spec: dim {} but {} names, {} lows, {} highs", a.dim, a.names.len(), a.low.len(), a.high.len())));
        }
        for (i, e) in manifest.episodes.iter().enumerate() {
            if e.steps == 0 || e.shard.contains('/') || e.shard.contains("..") {
                return Err(bad(format!("episodes[{i}]: bad shard name `{}` or zero steps", e.shard)));
            }
        }
        Ok(Dataset { dir, manifest, cache: HashMap::new() })
    }

    /// The dataset directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of episodes.
    pub fn len(&self) -> usize {
        self.manifest.episodes.len()
    }

    /// Whether the dataset holds no episode.
    pub fn is_empty(&self) -> bool {
        self.manifest.episodes.is_empty()
    }

    fn shard_bytes(&mut self, name: &str) -> Result<std::sync::Arc<Vec<u8>>, DataError> {
        if let Some(b) = self.cache.get(name) {
            return Ok(b.clone());
        }
        let path = self.dir.join(name);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        // Validate once, when first read.
        {
            let st = SafeTensors::deserialize(&bytes).map_err(|e| DataError::Corrupt { path: path.clone(), message: format!("corrupt or truncated shard: {e}") })?;
            let [h, w] = self.manifest.resolution;
            let bad = |message: String| DataError::Corrupt { path: path.clone(), message };
            let frames = st.tensor("frames").map_err(|_| bad("no `frames` tensor".into()))?;
            let fs = frames.shape();
            if frames.dtype() != Dtype::U8 || fs.len() != 4 || fs[1] != h || fs[2] != w || fs[3] != 3 {
                return Err(bad(format!("`frames` is {:?} {fs:?}, expected U8 [F, {h}, {w}, 3]", frames.dtype())));
            }
            let actions = st.tensor("actions").map_err(|_| bad("no `actions` tensor".into()))?;
            let a = actions.shape();
            let dim = self.manifest.action_spec.dim;
            if actions.dtype() != Dtype::F32 || a.len() != 2 || a[1] != dim {
                return Err(bad(format!("`actions` is {:?} {a:?}, expected F32 [A, {dim}]", actions.dtype())));
            }
            let sd = self.manifest.state_dim();
            if sd > 0 {
                let states = st.tensor("states").map_err(|_| bad("no `states` tensor although the manifest has a state_spec".into()))?;
                let s = states.shape();
                if states.dtype() != Dtype::F32 || s.len() != 2 || s[0] != fs[0] || s[1] != sd {
                    return Err(bad(format!("`states` is {:?} {s:?}, expected F32 [{}, {sd}]", states.dtype(), fs[0])));
                }
            }
            for (i, e) in self.manifest.episodes.iter().enumerate().filter(|(_, e)| e.shard == name) {
                if e.frame_offset + e.steps + 1 > fs[0] || e.action_offset + e.steps > a[0] {
                    return Err(bad(format!("episode {i} (frames {}+{}, actions {}+{}) lies outside the shard ({} frames, {} actions)", e.frame_offset, e.steps + 1, e.action_offset, e.steps, fs[0], a[0])));
                }
            }
        }
        let arc = std::sync::Arc::new(bytes);
        if self.cache.len() > 4 {
            self.cache.clear();
        }
        self.cache.insert(name.to_string(), arc.clone());
        Ok(arc)
    }

    /// Reads episode `i`.
    pub fn episode(&mut self, i: usize) -> Result<Episode, DataError> {
        let info = self.manifest.episodes.get(i).cloned().ok_or_else(|| DataError::Invalid(format!("episode {i} out of range ({} episodes)", self.len())))?;
        let bytes = self.shard_bytes(&info.shard)?;
        let path = self.dir.join(&info.shard);
        let st = SafeTensors::deserialize(&bytes).map_err(|e| DataError::Corrupt { path: path.clone(), message: e.to_string() })?;
        let [h, w] = self.manifest.resolution;
        let fl = h * w * 3;
        let nf = info.steps + 1;
        let frames = st.tensor("frames").map_err(|e| DataError::Corrupt { path: path.clone(), message: e.to_string() })?;
        let frames = frames.data()[info.frame_offset * fl..(info.frame_offset + nf) * fl].to_vec();
        let dim = self.manifest.action_spec.dim;
        let f32s = |name: &str, start: usize, len: usize| -> Result<Vec<f32>, DataError> {
            let t = st.tensor(name).map_err(|e| DataError::Corrupt { path: path.clone(), message: e.to_string() })?;
            Ok(t.data()[start * 4..(start + len) * 4].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let actions = f32s("actions", info.action_offset * dim, info.steps * dim)?;
        let sd = self.manifest.state_dim();
        let states = if sd > 0 { f32s("states", info.frame_offset * sd, nf * sd)? } else { Vec::new() };
        let ep = Episode {
            height: h,
            width: w,
            frames,
            action_dim: dim,
            actions,
            state_dim: sd,
            states,
            seed: info.seed,
            policy: info.policy,
            caption: info.caption,
            events: info.events,
            contact_steps: info.contact_steps,
        };
        ep.check().map_err(|message| DataError::Corrupt { path, message: format!("episode {i}: {message}") })?;
        Ok(ep)
    }
}
