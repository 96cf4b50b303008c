//! Checkpoints: `NAME.safetensors` (weights) beside `NAME.json` (what the weights are), written
//! atomically; optimiser moments and the training state beside them for `--resume`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::data::{write_atomic, DataError};

/// A checkpoint that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File trouble.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A file is not what it should be.
    #[error("{path}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn invalid(path: &Path, message: impl Into<String>) -> CheckpointError {
    CheckpointError::Invalid { path: path.to_owned(), message: message.into() }
}

/// The JSON that sits beside a `.safetensors` file.
pub fn json_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

/// Serialises tensors to safetensors bytes and writes them atomically.
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<(), CheckpointError> {
    let mut named: Vec<(&String, &Tensor)> = tensors.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let bytes = safetensors::serialize(named, None).map_err(|e| invalid(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// Reads every tensor of a safetensors file; a truncated or corrupt file is refused by name.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_owned(), source })?;
    tensors_from_bytes(&bytes, path, device)
}

/// Reads every tensor of safetensors bytes (`path` names them in errors).
pub fn tensors_from_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<HashMap<String, Tensor>, CheckpointError> {
    candle_core::safetensors::load_buffer(bytes, device).map_err(|e| invalid(path, format!("corrupt or truncated checkpoint: {e}")))
}

/// The variables of a [`VarMap`] as named tensors.
pub fn varmap_tensors(vm: &VarMap) -> HashMap<String, Tensor> {
    let data = vm.data().lock().map(|d| d.clone()).unwrap_or_default();
    data.into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect()
}

/// Copies checkpoint tensors into the variables of a [`VarMap`]; every variable must be there
/// with its shape, and no tensor may be left over (the JSON must describe these weights).
pub fn load_into_varmap(vm: &VarMap, tensors: &HashMap<String, Tensor>, path: &Path, prefix: &str) -> Result<(), CheckpointError> {
    let data = vm.data().lock().map_err(|_| invalid(path, "variable map poisoned"))?;
    for (name, var) in data.iter() {
        let key = format!("{prefix}{name}");
        let t = tensors.get(&key).ok_or_else(|| invalid(path, format!("the weights lack `{key}`: the JSON config does not match them")))?;
        if t.dims() != var.dims() {
            return Err(invalid(path, format!("`{key}` is {:?} in the weights but {:?} in the config", t.dims(), var.dims())));
        }
        // Shipped checkpoints may be stored in f16; variables are f32.
        let t = t.to_dtype(var.dtype()).map_err(|e| invalid(path, e.to_string()))?;
        var.set(&t).map_err(|e| invalid(path, e.to_string()))?;
    }
    let extra: Vec<&String> = tensors.keys().filter(|k| k.starts_with(prefix) && !data.contains_key(&k[prefix.len()..])).collect();
    if let Some(k) = extra.first() {
        return Err(invalid(path, format!("the weights hold `{k}`, which the JSON config has no place for ({} such tensors)", extra.len())));
    }
    Ok(())
}

/// Like [`load_into_varmap`] for a network whose output head changed (`--init` from a
/// checkpoint with another head): every variable the tensors hold is loaded (shapes must
/// agree), the others keep their fresh values. Returns the names left fresh and the tensors
/// that had no place (the old head).
pub fn load_matching_into_varmap(vm: &VarMap, tensors: &HashMap<String, Tensor>, path: &Path) -> Result<(Vec<String>, Vec<String>), CheckpointError> {
    let data = vm.data().lock().map_err(|_| invalid(path, "variable map poisoned"))?;
    let mut fresh = Vec::new();
    for (name, var) in data.iter() {
        let Some(t) = tensors.get(name) else {
            fresh.push(name.clone());
            continue;
        };
        if t.dims() != var.dims() {
            return Err(invalid(path, format!("`{name}` is {:?} in the weights but {:?} in the config", t.dims(), var.dims())));
        }
        let t = t.to_dtype(var.dtype()).map_err(|e| invalid(path, e.to_string()))?;
        var.set(&t).map_err(|e| invalid(path, e.to_string()))?;
    }
    let mut dropped: Vec<String> = tensors.keys().filter(|k| !data.contains_key(*k)).cloned().collect();
    fresh.sort();
    dropped.sort();
    Ok((fresh, dropped))
}

/// Writes a JSON value atomically.
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CheckpointError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| invalid(path, e.to_string()))?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Reads a JSON file into `T`, naming the file on error.
pub fn load_json<T: DeserializeOwned>(path: &Path) -> Result<T, CheckpointError> {
    let text = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_owned(), source })?;
    json_from_bytes(&text, path)
}

/// Parses JSON bytes into `T` (`path` names them in errors).
pub fn json_from_bytes<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T, CheckpointError> {
    serde_json::from_slice(bytes).map_err(|e| invalid(path, format!("not a valid checkpoint description: {e}")))
}

/// Makes initialisation reproducible: candle's CPU generator cannot be seeded, so every variable
/// that was drawn at random (neither all zeros nor all ones) is drawn again from `seed`, in name
/// order, with the standard deviation of its layer's rule: `*.weight` (out, in) Kaiming normal
/// `sqrt(2 / in)`, `*.bias` uniform ±`1/sqrt(in)` (std `1/sqrt(3 in)`), `*pos` 0.02.
pub fn reseed_varmap(vm: &VarMap, seed: u64) -> candle_core::Result<()> {
    let data = vm.data().lock().map_err(|_| candle_core::Error::Msg("variable map poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = crate::rng::Rng::new(seed ^ 0x1417);
    for name in names {
        let var = &data[name];
        let v: Vec<f32> = var.as_tensor().flatten_all()?.to_vec1()?;
        if v.iter().all(|&x| x == 0.0) || v.iter().all(|&x| x == 1.0) {
            continue;
        }
        let fan_in = |w: &str| data.get(w).and_then(|t| t.dims().get(1).copied()).unwrap_or(1) as f32;
        let std = if name.ends_with("pos") {
            0.02
        } else if name.ends_with("table") {
            0.5
        } else if let Some(stem) = name.strip_suffix("weight") {
            (2.0 / fan_in(&format!("{stem}weight"))).sqrt()
        } else if let Some(stem) = name.strip_suffix("bias") {
            1.0 / (3.0 * fan_in(&format!("{stem}weight"))).sqrt()
        } else {
            candle_core::bail!("no initialisation rule for `{name}`");
        };
        let fresh: Vec<f32> = (0..v.len()).map(|_| rng.normal() * std).collect();
        var.set(&Tensor::from_vec(fresh, var.dims(), var.device())?)?;
    }
    Ok(())
}

/// Averages the transformer's weights of several checkpoints of one training trajectory (a
/// uniform average of weights, as an exponential moving average does online): every tensor
/// outside the autoencoder (`ae.*`) becomes the mean over `tensors` and `others`; the
/// autoencoders must be identical, weight for weight (averaging two encoders would be a third
/// latent space, which no transformer knows). Names, shapes and the autoencoder are checked
/// before anything changes. Returns the number of tensors averaged.
pub fn average_weights(tensors: &mut HashMap<String, Tensor>, others: &[HashMap<String, Tensor>]) -> Result<usize, String> {
    let f32s = |t: &Tensor| t.to_dtype(candle_core::DType::F32).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f32>()).map_err(|e| e.to_string());
    for (i, other) in others.iter().enumerate() {
        let n = i + 2;
        if let Some(k) = other.keys().find(|k| !tensors.contains_key(*k)) {
            return Err(format!("checkpoint {n} has a tensor {k} that the first lacks"));
        }
        for (name, t) in tensors.iter() {
            let theirs = other.get(name).ok_or_else(|| format!("checkpoint {n} has no tensor {name}"))?;
            if theirs.dims() != t.dims() {
                return Err(format!("{name} is {:?} in the first checkpoint and {:?} in checkpoint {n}", t.dims(), theirs.dims()));
            }
            if name.starts_with("ae.") && f32s(t)? != f32s(theirs)? {
                return Err(format!("checkpoint {n}'s {name} differs: only transformers trained on one autoencoder can be averaged"));
            }
        }
    }
    let scale = 1.0 / (others.len() + 1) as f64;
    let mut averaged = 0;
    for (name, t) in tensors.iter_mut().filter(|(k, _)| !k.starts_with("ae.")) {
        let dtype = t.dtype();
        let mut sum = t.to_dtype(candle_core::DType::F32).map_err(|e| e.to_string())?;
        for other in others {
            sum = (sum + other[name].to_dtype(candle_core::DType::F32).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        }
        *t = (sum * scale).and_then(|m| m.to_dtype(dtype)).map_err(|e| e.to_string())?;
        averaged += 1;
    }
    Ok(averaged)
}

#[cfg(test)]
mod averaging_tests {
    use super::*;

    fn ckpt(dit: &[f32], ae: &[f32]) -> HashMap<String, Tensor> {
        let dev = Device::Cpu;
        HashMap::from([("dit.w".to_string(), Tensor::new(dit, &dev).unwrap()), ("ae.decoder.w".to_string(), Tensor::new(ae, &dev).unwrap())])
    }

    #[test]
    fn averages_the_transformer_and_keeps_the_autoencoder() {
        let mut a = ckpt(&[1.0, 2.0], &[5.0]);
        let n = average_weights(&mut a, &[ckpt(&[3.0, 6.0], &[5.0]), ckpt(&[2.0, 1.0], &[5.0])]).unwrap();
        assert_eq!(n, 1);
        assert_eq!(a["dit.w"].to_vec1::<f32>().unwrap(), vec![2.0, 3.0]);
        assert_eq!(a["ae.decoder.w"].to_vec1::<f32>().unwrap(), vec![5.0]);
    }

    #[test]
    fn refuses_other_autoencoders_shapes_and_names_without_changing_anything() {
        let mut a = ckpt(&[1.0, 2.0], &[5.0]);
        let e = average_weights(&mut a, &[ckpt(&[3.0, 6.0], &[4.0])]).unwrap_err();
        assert!(e.contains("ae.decoder.w") && e.contains("differs"), "{e}");
        let e = average_weights(&mut a, &[ckpt(&[3.0], &[5.0])]).unwrap_err();
        assert!(e.contains("dit.w"), "{e}");
        let mut extra = ckpt(&[3.0, 6.0], &[5.0]);
        extra.insert("dit.more".into(), Tensor::new(&[0f32], &Device::Cpu).unwrap());
        let e = average_weights(&mut a, &[extra]).unwrap_err();
        assert!(e.contains("dit.more"), "{e}");
        assert_eq!(a["dit.w"].to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
    }
}
