//! Integration tests of bevy_foresight.

mod app;
mod asset;
mod recorder;
mod view;
mod worker;

use std::sync::Arc;

use candle_core::Device;
use candle_nn::VarMap;
use foresight::data::{ActionSpec, BodyInfo};
use foresight::model::diffusion::SamplerConfig;
use foresight::model::dit::DitConfig;
use foresight::model::AutoencoderConfig;
use foresight::scene::Role;
use foresight::world_model::{WorldModel, WorldModelMeta, WM_FORMAT_VERSION};

/// An untrained tiny model (16×16 frames, 2-d actions, K = 2, captions, both directions):
/// plumbing and speed only.
pub fn model() -> Arc<WorldModel> {
    let (meta, vm) = tiny_meta();
    Arc::new(WorldModel::build(meta, &vm, &Device::Cpu).unwrap())
}

/// Writes the tiny model as a checkpoint `dir/NAME.safetensors` + `dir/NAME.json`.
pub fn save_tiny(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let (meta, vm) = tiny_meta();
    let _ = WorldModel::build(meta.clone(), &vm, &Device::Cpu).unwrap();
    let weights = dir.join(format!("{name}.safetensors"));
    foresight::train::checkpoint::save_tensors(&weights, &foresight::train::checkpoint::varmap_tensors(&vm)).unwrap();
    foresight::train::checkpoint::save_json(&foresight::train::checkpoint::json_path(&weights), &meta).unwrap();
    weights
}

fn tiny_meta() -> (WorldModelMeta, VarMap) {
    let ae = AutoencoderConfig::tiny();
    let (c, h, w) = ae.latent_shape();
    let meta = WorldModelMeta {
        format_version: WM_FORMAT_VERSION,
        scene: "test".into(),
        scene_hash: "0".into(),
        resolution: ae.resolution,
        dt: 0.1,
        frame_skip: 1,
        action_spec: ActionSpec { dim: 2, names: vec!["x".into(), "y".into()], low: vec![-1.0; 2], high: vec![1.0; 2], discrete: false },
        bodies: vec![BodyInfo { name: "a".into(), colour: [200, 0, 0], role: Role::Agent }],
        context: 2,
        latent_scale: 1.0,
        delta_scale: 1.0,
        dit: DitConfig { latent: [c, h, w], patch: 2, context: 2, action_dim: 2, dim: 16, depth: 1, heads: 2, mlp_ratio: 2, text: Some(foresight::model::text::TextConfig { buckets: 64, max_tokens: 8, dim: 16, depth: 1, heads: 2 }), bidirectional: true, chunk: 1, token_actions: false },
        autoencoder: ae,
        sampler: SamplerConfig::default(),
        autoencoder_psnr: 0.0,
        train_seeds: vec![],
        steps: 0,
        command: String::new(),
    };
    (meta, VarMap::new())
}
