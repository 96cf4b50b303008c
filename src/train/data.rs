//! Training data in memory: every frame of a dataset, split by episode into training and
//! held-out parts.

use crate::data::{DataError, Dataset, Episode};

/// Frames and episodes of a dataset, split into training and validation episodes.
pub struct FramePool {
    /// Frame height.
    pub height: usize,
    /// Frame width.
    pub width: usize,
    /// Training episodes.
    pub train: Vec<Episode>,
    /// Held-out episodes (the last `val_fraction` of the dataset).
    pub val: Vec<Episode>,
    train_index: Vec<(usize, usize)>,
    val_index: Vec<(usize, usize)>,
}

impl FramePool {
    /// Loads every episode of `ds`.
    pub fn load(ds: &mut Dataset, val_fraction: f64) -> Result<Self, DataError> {
        let (train, val) = split(ds, val_fraction)?;
        Ok(Self::from_parts(ds.manifest.resolution, train, val))
    }

    /// Loads several datasets of the same scene (for example one per data-collection policy):
    /// each is split on its own, so every one keeps held-out episodes.
    pub fn load_many(sets: &mut [Dataset], val_fraction: f64) -> Result<Self, DataError> {
        let Some((first, rest)) = sets.split_first_mut() else {
            return Err(DataError::Invalid("training needs at least one dataset".into()));
        };
        let (mut train, mut val) = split(first, val_fraction)?;
        for ds in rest {
            let (a, b) = (&pool_manifest_key(first), &pool_manifest_key(ds));
            if a != b {
                return Err(DataError::Invalid(format!(
                    "{}: scene `{}` ({}), {:?} frames, {}-d actions do not match {}: `{}` ({}), {:?}, {}-d",
                    ds.dir().display(), b.0, b.1, b.2, b.3, first.dir().display(), a.0, a.1, a.2, a.3
                )));
            }
            let (t, v) = split(ds, val_fraction)?;
            train.extend(t);
            val.extend(v);
        }
        Ok(Self::from_parts(first.manifest.resolution, train, val))
    }

    fn from_parts([height, width]: [usize; 2], train: Vec<Episode>, val: Vec<Episode>) -> Self {
        let index = |e: &[Episode]| e.iter().enumerate().flat_map(|(i, ep)| (0..ep.num_frames()).map(move |t| (i, t))).collect();
        FramePool { height, width, train_index: index(&train), val_index: index(&val), train, val }
    }

    /// Frames available for training.
    pub fn train_len(&self) -> usize {
        self.train_index.len()
    }

    /// Held-out frames.
    pub fn val_len(&self) -> usize {
        self.val_index.len()
    }

    /// Training frame `i`.
    pub fn train_frame(&self, i: usize) -> &[u8] {
        let (e, t) = self.train_index[i];
        self.train[e].frame(t)
    }

    /// Held-out frame `i`.
    pub fn val_frame(&self, i: usize) -> &[u8] {
        let (e, t) = self.val_index[i];
        self.val[e].frame(t)
    }

    /// Seeds of the training episodes (recorded in checkpoints; `eval` refuses them).
    pub fn train_seeds(&self) -> Vec<u64> {
        self.train.iter().map(|e| e.seed).collect()
    }
}

/// Every episode of `ds`, the last `val_fraction` (at least one) held out.
fn split(ds: &mut Dataset, val_fraction: f64) -> Result<(Vec<Episode>, Vec<Episode>), DataError> {
    let n = ds.len();
    if n < 2 {
        return Err(DataError::Invalid(format!("{}: {n} episodes; training needs at least 2", ds.dir().display())));
    }
    let n_val = ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1);
    let mut eps = (0..n).map(|i| ds.episode(i)).collect::<Result<Vec<_>, _>>()?;
    let val = eps.split_off(n - n_val);
    Ok((eps, val))
}

fn pool_manifest_key(ds: &Dataset) -> (String, String, [usize; 2], usize) {
    let m = &ds.manifest;
    (m.scene.clone(), m.scene_hash.clone(), m.resolution, m.action_spec.dim)
}
