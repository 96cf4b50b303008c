//! Stage 1: train the autoencoder on every frame of the training episodes, then freeze it.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::checkpoint::{json_path, load_into_varmap, load_json, load_tensors, save_json, save_tensors, varmap_tensors, CheckpointError};
use super::config::{lr_at, StageConfig};
use super::data::FramePool;
use super::optim::{AdamW, AdamWConfig};
use crate::model::frames::{frames_to_tensor, psnr, tensor_to_frames};
use crate::model::{Autoencoder, AutoencoderConfig};
use crate::rng::Rng;

/// Version of the autoencoder checkpoint JSON.
pub const AE_FORMAT_VERSION: u32 = 1;

/// `autoencoder.json`: what `autoencoder.safetensors` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderMeta {
    /// [`AE_FORMAT_VERSION`].
    pub format_version: u32,
    /// Network sizes.
    pub config: AutoencoderConfig,
    /// Frame size `[H, W]`.
    pub resolution: [usize; 2],
    /// Standard deviation of the latents over training frames (diffusion works on z / scale).
    pub latent_scale: f32,
    /// Mean reconstruction PSNR on held-out frames, dB.
    pub val_psnr: f64,
    /// Optimiser steps taken.
    pub steps: u64,
}

/// Progress of a stage, for `--resume`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageState {
    /// Steps done.
    pub step: u64,
    /// `(step, training loss)` every log interval.
    pub loss: Vec<(u64, f64)>,
    /// `(step, validation metric)` every validation.
    pub val: Vec<(u64, f64)>,
    /// Wall seconds spent so far.
    pub seconds: f64,
}

/// A trained autoencoder loaded for inference.
pub struct LoadedAutoencoder {
    /// The network.
    pub model: Autoencoder,
    /// Its description.
    pub meta: AutoencoderMeta,
}

/// Loads `autoencoder.safetensors` + `.json`, refusing mismatched or truncated files.
pub fn load_autoencoder(weights: &Path, device: &Device) -> Result<LoadedAutoencoder, CheckpointError> {
    let meta: AutoencoderMeta = load_json(&json_path(weights))?;
    if meta.format_version != AE_FORMAT_VERSION {
        return Err(CheckpointError::Invalid { path: json_path(weights), message: format!("format_version {} is not {AE_FORMAT_VERSION}", meta.format_version) });
    }
    let tensors = load_tensors(weights, device)?;
    let vm = VarMap::new();
    let model = Autoencoder::new(meta.config.clone(), VarBuilder::from_varmap(&vm, DType::F32, device)).map_err(|e| CheckpointError::Invalid { path: json_path(weights), message: e.to_string() })?;
    load_into_varmap(&vm, &tensors, weights, "")?;
    Ok(LoadedAutoencoder { model, meta })
}

/// The autoencoder tensors (`ae.` prefix removed, f32) of a world-model checkpoint.
pub fn world_model_autoencoder(weights: &Path) -> Result<std::collections::HashMap<String, candle_core::Tensor>, CheckpointError> {
    let tensors = load_tensors(weights, &Device::Cpu)?;
    let mut ae = std::collections::HashMap::new();
    for (k, v) in tensors {
        if let Some(rest) = k.strip_prefix("ae.") {
            let v = v.to_dtype(DType::F32).map_err(|e| CheckpointError::Invalid { path: weights.to_owned(), message: e.to_string() })?;
            ae.insert(rest.to_string(), v);
        }
    }
    Ok(ae)
}

/// Reconstruction PSNR (mean over frames) of `frames` through the autoencoder.
pub fn reconstruction_psnr(ae: &Autoencoder, frames: &[&[u8]], h: usize, w: usize, device: &Device) -> candle_core::Result<f64> {
    let mut total = 0.0;
    for chunk in frames.chunks(64) {
        let x = frames_to_tensor(chunk, h, w, device)?;
        let y = tensor_to_frames(&ae.decode(&ae.encode(&x)?)?)?;
        total += chunk.iter().zip(&y).map(|(a, b)| psnr(a, b)).sum::<f64>();
    }
    Ok(total / frames.len().max(1) as f64)
}

/// `(B, 1, H, W)` loss weights of frames `(B, 3, H, W)` in [-1, 1]: `1 + w` where the pixel's
/// channels spread by more than 0.3 (38 of 255: a saturated colour), 1 elsewhere. Applied to the
/// difference, so the squared term weighs `(1 + w)²`.
pub fn colour_weights(x: &candle_core::Tensor, w: f64) -> candle_core::Result<candle_core::Tensor> {
    let spread = (x.max_keepdim(1)? - x.min_keepdim(1)?)?;
    (spread.gt(0.3)?.to_dtype(DType::F32)? * w)? + 1.0
}

/// Trains (or resumes) stage 1 into `out/autoencoder.*`. `progress` gets `(step, loss, steps/s)`.
pub fn train_autoencoder(
    pool: &FramePool,
    cfg: &AutoencoderConfig,
    stage: &StageConfig,
    seed: u64,
    out: &Path,
    resume: bool,
    init: Option<&std::collections::HashMap<String, candle_core::Tensor>>,
    budget: &mut u64,
    device: &Device,
    mut progress: impl FnMut(u64, f64, f64, Option<f64>),
) -> anyhow::Result<AutoencoderMeta> {
    anyhow::ensure!(cfg.resolution == [pool.height, pool.width], "the autoencoder is configured for {:?} frames, the dataset has {}x{}", cfg.resolution, pool.height, pool.width);
    let weights = out.join("autoencoder.safetensors");
    let opt_path = out.join("autoencoder.opt.safetensors");
    let state_path = out.join("autoencoder.state.json");
    let vm = VarMap::new();
    let model = Autoencoder::new(cfg.clone(), VarBuilder::from_varmap(&vm, DType::F32, device))?;
    let trained: std::collections::HashMap<String, candle_core::Var> =
        vm.data().lock().map_err(|_| anyhow::anyhow!("poisoned"))?.iter().filter(|(k, _)| !stage.freeze_encoder || !k.starts_with("encoder.")).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut opt = AdamW::new(trained, AdamWConfig { lr: stage.lr, weight_decay: 0.0, ..Default::default() })?;
    super::checkpoint::reseed_varmap(&vm, seed)?;
    let mut state = StageState::default();
    if resume && state_path.exists() {
        state = load_json(&state_path)?;
        load_into_varmap(&vm, &load_tensors(&weights, device)?, &weights, "")?;
        opt.load_state(&load_tensors(&opt_path, device)?, state.step)?;
    } else if let Some(init) = init {
        // Fine-tuning: start from a checkpoint's autoencoder (`--init`); a new output head
        // (the caller checked that the encoder and latent agree) starts fresh.
        let (fresh, dropped) = super::checkpoint::load_matching_into_varmap(&vm, init, Path::new("--init"))?;
        if !fresh.is_empty() || !dropped.is_empty() {
            println!("autoencoder --init: {} tensors start fresh ({}), {} of the checkpoint's are not used ({})", fresh.len(), fresh.join(", "), dropped.len(), dropped.join(", "));
        }
    }
    let (h, w) = (pool.height, pool.width);
    let started = Instant::now() - std::time::Duration::from_secs_f64(state.seconds);
    let mut window = (Instant::now(), state.step);
    let save = |vm: &VarMap, opt: &AdamW, state: &StageState, val_psnr: f64| -> anyhow::Result<AutoencoderMeta> {
        let scale = latent_scale(&model, pool, h, w, device)?;
        let meta = AutoencoderMeta { format_version: AE_FORMAT_VERSION, config: cfg.clone(), resolution: [h, w], latent_scale: scale, val_psnr, steps: state.step };
        save_tensors(&weights, &varmap_tensors(vm))?;
        save_json(&json_path(&weights), &meta)?;
        save_tensors(&opt_path, &opt.state())?;
        save_json(&state_path, state)?;
        Ok(meta)
    };
    let mut val_psnr = state.val.last().map_or(0.0, |v| v.1);
    while state.step < stage.steps && *budget > 0 {
        *budget -= 1;
        let step = state.step;
        opt.config.lr = lr_at(stage, step);
        let mut rng = Rng::new(seed ^ crate::rng::mix64(step.wrapping_add(1)));
        let batch: Vec<&[u8]> = (0..stage.batch).map(|_| pool.train_frame(rng.below(pool.train_len()))).collect();
        let x = frames_to_tensor(&batch, h, w, device)?;
        let z = model.encode(&x)?;
        let y = model.decode(&if stage.freeze_encoder { z.detach() } else { z })?;
        let diff = (&y - &x)?;
        let diff = if stage.colour_weight > 0.0 { diff.broadcast_mul(&colour_weights(&x, stage.colour_weight)?)? } else { diff };
        // L1 keeps flat colours' edges sharp; MSE is what PSNR measures.
        let mse = diff.sqr()?.mean_all()?;
        let loss = if stage.l1_weight > 0.0 { (mse + (diff.abs()?.mean_all()? * stage.l1_weight)?)? } else { mse };
        let grads = loss.backward()?;
        opt.step(&grads)?;
        let last_loss = loss.to_scalar::<f32>()? as f64;
        if !last_loss.is_finite() {
            anyhow::bail!("autoencoder loss became {last_loss} at step {step}; lower the learning rate");
        }
        state.step += 1;
        if state.step % 10 == 0 {
            state.loss.push((state.step, last_loss));
        }
        let validate = state.step % stage.val_every == 0 || state.step == stage.steps;
        if validate {
            let frames: Vec<&[u8]> = (0..pool.val_len().min(256)).map(|i| pool.val_frame(i)).collect();
            val_psnr = reconstruction_psnr(&model, &frames, h, w, device)?;
            state.val.push((state.step, val_psnr));
        }
        let rate = (state.step - window.1) as f64 / window.0.elapsed().as_secs_f64().max(1e-9);
        progress(state.step, last_loss, rate, validate.then_some(val_psnr));
        if window.0.elapsed().as_secs_f64() > 30.0 {
            window = (Instant::now(), state.step);
        }
        if state.step % stage.ckpt_every == 0 || state.step == stage.steps {
            state.seconds = started.elapsed().as_secs_f64();
            save(&vm, &opt, &state, val_psnr)?;
        }
    }
    state.seconds = started.elapsed().as_secs_f64();
    save(&vm, &opt, &state, val_psnr)
}

/// Standard deviation of latents over up to 512 training frames.
fn latent_scale(model: &Autoencoder, pool: &FramePool, h: usize, w: usize, device: &Device) -> candle_core::Result<f32> {
    let n = pool.train_len().min(512);
    let mut sum = 0.0f64;
    let mut sq = 0.0f64;
    let mut count = 0usize;
    let step = (pool.train_len() / n.max(1)).max(1);
    let frames: Vec<&[u8]> = (0..n).map(|i| pool.train_frame(i * step)).collect();
    for chunk in frames.chunks(64) {
        let z = model.encode(&frames_to_tensor(chunk, h, w, device)?)?.flatten_all()?;
        let v: Vec<f32> = z.to_vec1()?;
        count += v.len();
        for x in v {
            sum += x as f64;
            sq += (x as f64) * (x as f64);
        }
    }
    let mean = sum / count.max(1) as f64;
    Ok(((sq / count.max(1) as f64 - mean * mean).max(1e-8)).sqrt() as f32)
}



/// Installs the autoencoder of a world-model checkpoint as a finished stage 1 in `out` (for
/// fine-tuning with `--init`): weights, description and a state marking `steps` done.
pub fn install_from_world_model(weights: &Path, out: &Path, steps: u64) -> anyhow::Result<()> {
    let wm = crate::world_model::WorldModel::load(weights)?;
    let ae = world_model_autoencoder(weights)?;
    let target = out.join("autoencoder.safetensors");
    save_tensors(&target, &ae)?;
    let meta = AutoencoderMeta {
        format_version: AE_FORMAT_VERSION,
        config: wm.meta.autoencoder.clone(),
        resolution: wm.meta.resolution,
        latent_scale: wm.meta.latent_scale,
        val_psnr: wm.meta.autoencoder_psnr,
        steps,
    };
    save_json(&json_path(&target), &meta)?;
    save_json(&out.join("autoencoder.state.json"), &StageState { step: steps, ..Default::default() })?;
    Ok(())
}

/// Replaces the decoder tensors (`ae.decoder.*`) of a world-model checkpoint's `tensors` with
/// those of `other`, after checking that every other autoencoder tensor (the encoder) is
/// bit-identical in f32: a decoder fine-tuned with `freeze_encoder` then draws the frames of a
/// transformer trained on the same latent space. The decoders may differ in their output head
/// or refinement (the caller checks the configs with `same_encoder`): all of ours go, all of
/// theirs come. Returns how many tensors were taken.
pub fn swap_decoder(tensors: &mut std::collections::HashMap<String, candle_core::Tensor>, other: &std::collections::HashMap<String, candle_core::Tensor>) -> Result<usize, String> {
    let f32s = |t: &candle_core::Tensor| t.to_dtype(DType::F32).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f32>()).map_err(|e| e.to_string());
    // Check every encoder tensor before changing anything.
    for (name, t) in tensors.iter().filter(|(k, _)| k.starts_with("ae.") && !k.starts_with("ae.decoder.")) {
        let theirs = other.get(name).ok_or_else(|| format!("no tensor {name}"))?;
        if f32s(t)? != f32s(theirs)? {
            return Err(format!("its {name} differs: another encoder is another latent space, which the transformer does not know"));
        }
    }
    let dtype = tensors.iter().find(|(k, _)| k.starts_with("ae.decoder.")).map(|(_, t)| t.dtype()).ok_or("the checkpoint has no autoencoder decoder tensors (ae.decoder.*)")?;
    let theirs: Vec<(&String, &candle_core::Tensor)> = other.iter().filter(|(k, _)| k.starts_with("ae.decoder.")).collect();
    if theirs.is_empty() {
        return Err("no autoencoder decoder tensors (ae.decoder.*)".into());
    }
    let converted = theirs.into_iter().map(|(k, t)| Ok((k.clone(), t.to_dtype(dtype).map_err(|e| e.to_string())?))).collect::<Result<Vec<_>, String>>()?;
    tensors.retain(|k, _| !k.starts_with("ae.decoder."));
    let n = converted.len();
    tensors.extend(converted);
    Ok(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn swap_decoder_takes_the_decoder_only_when_the_encoders_match() {
        let dev = candle_core::Device::Cpu;
        let t = |v: &[f32]| candle_core::Tensor::new(v, &dev).unwrap();
        let mk = |enc: f32, dec: f32| std::collections::HashMap::from([("ae.encoder.w".to_string(), t(&[enc, 1.0])), ("ae.decoder.w".to_string(), t(&[dec, 2.0])), ("dit.w".to_string(), t(&[7.0]))]);
        let mut mine = mk(0.5, 3.0);
        assert_eq!(super::swap_decoder(&mut mine, &mk(0.5, 9.0)), Ok(1));
        assert_eq!(mine["ae.decoder.w"].to_vec1::<f32>().unwrap(), vec![9.0, 2.0]);
        assert_eq!(mine["dit.w"].to_vec1::<f32>().unwrap(), vec![7.0]);
        // A decoder with another head or a refinement: ours go, theirs come.
        let mut refined = mk(0.5, 5.0);
        refined.insert("ae.decoder.refine.w".to_string(), t(&[1.5]));
        assert_eq!(super::swap_decoder(&mut mine, &refined), Ok(2));
        assert_eq!(mine["ae.decoder.refine.w"].to_vec1::<f32>().unwrap(), vec![1.5]);
        assert_eq!(super::swap_decoder(&mut mine, &mk(0.5, 9.0)), Ok(1));
        assert!(!mine.contains_key("ae.decoder.refine.w"));
        let err = super::swap_decoder(&mut mine, &mk(0.25, 4.0)).unwrap_err();
        assert!(err.contains("ae.encoder.w"), "{err}");
        assert_eq!(mine["ae.decoder.w"].to_vec1::<f32>().unwrap(), vec![9.0, 2.0], "nothing swapped on a mismatch");
    }

    #[test]
    fn colour_weights_pick_saturated_pixels() {
        let dev = candle_core::Device::Cpu;
        // Grey floor, light wall, red disc, blue block.
        let frames: Vec<u8> = [[70u8, 70, 70], [150, 150, 150], [220, 40, 40], [40, 90, 230]].concat();
        let x = crate::model::frames::frames_to_tensor(&[&frames[..]], 2, 2, &dev).unwrap();
        let w = super::colour_weights(&x, 4.0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(w, vec![1.0, 1.0, 5.0, 5.0]);
    }
}
