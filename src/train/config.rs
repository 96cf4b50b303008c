//! `foresight train --config FILE`: what to train and for how long (JSON).

use serde::{Deserialize, Serialize};

use crate::model::diffusion::SamplerConfig;
use crate::model::AutoencoderConfig;
use crate::train::dynamics::DynamicsConfig;

/// One stage's optimisation schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Optimiser steps.
    pub steps: u64,
    /// Examples per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    #[serde(default = "default_warmup")]
    pub warmup: u64,
    /// Validate every this many steps.
    #[serde(default = "default_val_every")]
    pub val_every: u64,
    /// Checkpoint every this many steps.
    #[serde(default = "default_ckpt_every")]
    pub ckpt_every: u64,
    /// Autoencoder stage only: train the decoder alone, the encoder (and so the latent space a
    /// transformer was trained on) stays as it is. For sharpening a shipped checkpoint's frames
    /// with `--init` without retraining its dynamics.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freeze_encoder: bool,
    /// Autoencoder stage only: extra loss weight `1 + w` on pixels of saturated colour in the
    /// truth (bodies are coloured, floors and walls grey), so that the decoder draws bodies in
    /// their own colours, where they are located. 0 (absent): every pixel alike.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub colour_weight: f64,
    /// Autoencoder stage only: weight of the L1 term beside the squared error (absent: 1). 0
    /// trains on the squared error alone, which is what PSNR measures: sharper round trips, but
    /// a decoder so trained draws a transformer's uncertain predictions as colour blends, where
    /// L1 draws them in a body's colour (README, session 18).
    #[serde(default = "default_l1_weight", skip_serializing_if = "is_one")]
    pub l1_weight: f64,
    /// Dynamics stage only: decay of an exponential moving average of the transformer's weights
    /// (for example 0.995: an average over the last ~200 steps), taken after every step from
    /// the stage's first on (or from the step where a run started without it is resumed with
    /// it), with the decay ramped up as `min(ema, (1 + n) / (10 + n))` after n steps. `world_model.safetensors` then holds the average (what is validated, loaded,
    /// exported and fine-tuned with `--init`); the live weights that `--resume` continues from
    /// go to `dynamics.live.safetensors`. 0 (absent): no average.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ema: f64,
}

fn default_l1_weight() -> f64 {
    1.0
}
fn is_one(x: &f64) -> bool {
    *x == 1.0
}

/// For `skip_serializing_if` on optional weights and fractions.
pub(crate) fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn default_warmup() -> u64 {
    100
}
fn default_val_every() -> u64 {
    250
}
fn default_ckpt_every() -> u64 {
    100
}
fn default_val_fraction() -> f64 {
    0.05
}

/// The whole training recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of batch sampling and initialisation.
    pub seed: u64,
    /// Fraction of episodes held out for validation (the last ones).
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Autoencoder sizes.
    pub autoencoder: AutoencoderConfig,
    /// Stage 1 schedule.
    pub autoencoder_stage: StageConfig,
    /// Transformer sizes and regularisation.
    pub dynamics: DynamicsConfig,
    /// Stage 2 schedule.
    pub dynamics_stage: StageConfig,
    /// Default sampler written into the checkpoint.
    #[serde(default)]
    pub sampler: SamplerConfig,
}

impl TrainConfig {
    /// Reads and checks a config file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let cfg: TrainConfig = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        cfg.autoencoder.validate().map_err(|e| anyhow::anyhow!("{}: autoencoder: {e}", path.display()))?;
        cfg.sampler.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (name, s) in [("autoencoder_stage", &cfg.autoencoder_stage), ("dynamics_stage", &cfg.dynamics_stage)] {
            anyhow::ensure!(s.batch > 0 && s.lr.is_finite() && s.lr > 0.0 && s.val_every > 0 && s.ckpt_every > 0, "{}: {name}: batch, lr, val_every and ckpt_every must be positive", path.display());
            anyhow::ensure!(s.l1_weight.is_finite() && s.l1_weight >= 0.0 && s.colour_weight.is_finite() && s.colour_weight >= 0.0, "{}: {name}: l1_weight and colour_weight must be finite and not negative", path.display());
            anyhow::ensure!((0.0..1.0).contains(&s.ema), "{}: {name}: ema (a decay) must be in [0, 1), got {}", path.display(), s.ema);
        }
        anyhow::ensure!(cfg.autoencoder_stage.ema == 0.0, "{}: autoencoder_stage: ema is a dynamics-stage option", path.display());
        anyhow::ensure!((0.0..0.5).contains(&cfg.val_fraction), "{}: val_fraction must be in [0, 0.5)", path.display());
        Ok(cfg)
    }
}

/// Learning rate at `step`: linear warm-up, then cosine decay to 10% of the peak.
pub fn lr_at(s: &StageConfig, step: u64) -> f64 {
    if step < s.warmup {
        return s.lr * (step + 1) as f64 / s.warmup as f64;
    }
    let p = (step - s.warmup) as f64 / (s.steps.saturating_sub(s.warmup)).max(1) as f64;
    s.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()))
}

#[cfg(test)]
mod tests {
    use super::TrainConfig;

    /// `configs/tiny.json` with its autoencoder stage's `key` set to `value`, loaded.
    fn tiny_with(key: &str, value: serde_json::Value) -> anyhow::Result<TrainConfig> {
        tiny_stage_with("autoencoder_stage", key, value)
    }

    /// `configs/tiny.json` with `stage`'s `key` set to `value`, loaded.
    fn tiny_stage_with(stage: &str, key: &str, value: serde_json::Value) -> anyhow::Result<TrainConfig> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("configs/tiny.json"))?)?;
        cfg[stage][key] = value;
        let dir = std::env::temp_dir().join(format!("foresight-config-{}-{stage}-{key}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("config.json");
        std::fs::write(&path, serde_json::to_string(&cfg)?)?;
        let loaded = TrainConfig::load(&path);
        std::fs::remove_dir_all(&dir)?;
        loaded
    }

    #[test]
    fn l1_weight_defaults_to_one_and_refuses_negative_values() {
        let cfg = tiny_with("colour_weight", serde_json::json!(0.0)).unwrap();
        assert_eq!(cfg.autoencoder_stage.l1_weight, 1.0);
        // The default is not written back, so configs saved before the option read the same.
        assert!(serde_json::to_value(&cfg.autoencoder_stage).unwrap().get("l1_weight").is_none());
        assert_eq!(tiny_with("l1_weight", serde_json::json!(0.0)).unwrap().autoencoder_stage.l1_weight, 0.0);
        let err = tiny_with("l1_weight", serde_json::json!(-0.5)).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("l1_weight"), "{err}");
    }

    #[test]
    fn ema_is_a_dynamics_decay_below_one() {
        assert_eq!(tiny_stage_with("dynamics_stage", "ema", serde_json::json!(0.995)).unwrap().dynamics_stage.ema, 0.995);
        assert_eq!(tiny_with("colour_weight", serde_json::json!(0.0)).unwrap().dynamics_stage.ema, 0.0);
        for bad in [1.0, -0.1] {
            let err = tiny_stage_with("dynamics_stage", "ema", serde_json::json!(bad)).unwrap_err().to_string();
            assert!(err.contains("config.json") && err.contains("ema"), "{err}");
        }
        let err = tiny_with("ema", serde_json::json!(0.9)).unwrap_err().to_string();
        assert!(err.contains("autoencoder_stage") && err.contains("ema"), "{err}");
    }
}
