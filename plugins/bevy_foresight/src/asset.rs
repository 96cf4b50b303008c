//! World-model checkpoints as Bevy assets: `NAME.safetensors` loads with its `NAME.json` beside
//! it; a missing, truncated or mismatched checkpoint is an asset load failure with the reason.

use std::path::Path;
use std::sync::Arc;

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::prelude::*;
use foresight::world_model::WorldModel;

/// A loaded world model.
#[derive(Asset, TypePath, Clone)]
pub struct WorldModelAsset {
    /// The model, shared with the worker.
    pub model: Arc<WorldModel>,
}

/// Loads `*.safetensors` world-model checkpoints (the JSON is read from beside the weights).
#[derive(Default, TypePath)]
pub struct WorldModelLoader;

/// Why a checkpoint asset failed to load.
#[derive(Debug, thiserror::Error)]
pub enum WorldModelLoadError {
    /// The weights or the JSON could not be read.
    #[error("{path}: cannot read: {message}")]
    Read {
        /// The file.
        path: String,
        /// The reader's error.
        message: String,
    },
    /// The checkpoint is not valid.
    #[error(transparent)]
    Model(#[from] foresight::world_model::WorldModelError),
}

impl AssetLoader for WorldModelLoader {
    type Asset = WorldModelAsset;
    type Settings = ();
    type Error = WorldModelLoadError;

    async fn load(&self, reader: &mut dyn Reader, _settings: &(), load_context: &mut LoadContext<'_>) -> Result<WorldModelAsset, WorldModelLoadError> {
        let path = load_context.path().path().to_path_buf();
        let mut weights = Vec::new();
        reader.read_to_end(&mut weights).await.map_err(|e| WorldModelLoadError::Read { path: path.display().to_string(), message: e.to_string() })?;
        let json_path = foresight::train::checkpoint::json_path(&path);
        let json = load_context
            .read_asset_bytes(json_path.clone())
            .await
            .map_err(|e| WorldModelLoadError::Read { path: json_path.display().to_string(), message: e.to_string() })?;
        let model = WorldModel::from_bytes(&json, &weights, Path::new(&path))?;
        Ok(WorldModelAsset { model: Arc::new(model) })
    }

    fn extensions(&self) -> &[&str] {
        &["safetensors"]
    }
}

/// Registers [`WorldModelAsset`] and its loader (needs `AssetPlugin`).
pub struct WorldModelAssetPlugin;

impl Plugin for WorldModelAssetPlugin {
    fn build(&self, app: &mut App) {
        app.init_asset::<WorldModelAsset>().init_asset_loader::<WorldModelLoader>();
    }
}
