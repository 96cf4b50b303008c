//! End-to-end on a synthetic dataset: train tiny stages, then query the world model.

use std::path::{Path, PathBuf};

use foresight::data::{ActionSpec, BodyInfo, DatasetWriter, Episode, Events, Manifest, FORMAT_VERSION};
use foresight::model::diffusion::SamplerConfig;
use foresight::scene::Role;
use foresight::world_model::{Query, WorldModel};

use crate::{root, tmpdir};

/// Steps per synthetic episode (long enough for a 16-step captioned clip).
const STEPS: usize = 20;

/// A 64×64 world where a red square moves by its action (dx, dy) and a blue one stays.
pub(crate) fn synthetic_dataset(dir: &Path) {
    synthetic_dataset_from(dir, 1000);
}

/// The same world with episode seeds starting at `first_seed`.
fn synthetic_dataset_from(dir: &Path, first_seed: u64) {
    synthetic_dataset_dims(dir, first_seed, 2);
}

/// With `action_dim` action values (the first two move the red square, the rest are zero).
pub(crate) fn synthetic_dataset_dims(dir: &Path, first_seed: u64, action_dim: usize) {
    let names: Vec<String> = (0..action_dim).map(|i| format!("a{i}")).collect();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        scene: "squares".into(),
        scene_hash: "0".into(),
        resolution: [64, 64],
        dt: 0.1,
        frame_skip: 1,
        action_spec: ActionSpec { dim: action_dim, names, low: vec![-1.0; action_dim], high: vec![1.0; action_dim], discrete: false },
        state_spec: Some(foresight::data::StateSpec { names: ["red", "blue"].iter().flat_map(|b| foresight::data::STATE_FIELDS.iter().map(move |f| format!("{b}.{f}"))).collect() }),
        bodies: vec![BodyInfo { name: "red".into(), colour: [220, 40, 40], role: Role::Agent }, BodyInfo { name: "blue".into(), colour: [40, 90, 230], role: Role::Object }],
        contact_fraction: None,
        episodes: vec![],
        run_seed: Some(0),
        command: "test".into(),
    };
    let mut w = DatasetWriter::create(dir, manifest, 8).unwrap();
    for e in 0..12u64 {
        let mut rng = foresight::rng::Rng::new(e);
        let (mut x, mut y) = (rng.range(10.0, 50.0), rng.range(10.0, 50.0));
        let (bx, by) = (rng.range(8.0, 56.0) as i32, rng.range(8.0, 56.0) as i32);
        let steps = STEPS;
        let mut frames = Vec::new();
        let mut actions = Vec::new();
        let mut states = Vec::new();
        for t in 0..=steps {
            for (px, py) in [(x as i32 as f32 - 0.5, y as i32 as f32 - 0.5), (bx as f32 - 0.5, by as f32 - 0.5)] {
                let mut row = [0f32; 15];
                (row[13], row[14]) = (px, py);
                states.extend(row);
            }
            let mut f = vec![30u8; 64 * 64 * 3];
            let mut paint = |cx: i32, cy: i32, c: [u8; 3]| {
                for yy in (cy - 3).max(0)..(cy + 3).min(64) {
                    for xx in (cx - 3).max(0)..(cx + 3).min(64) {
                        f[((yy * 64 + xx) * 3) as usize..((yy * 64 + xx) * 3 + 3) as usize].copy_from_slice(&c);
                    }
                }
            };
            paint(bx, by, [40, 90, 230]);
            paint(x as i32, y as i32, [220, 40, 40]);
            frames.extend(f);
            if t < steps {
                let (ax, ay) = (rng.range(-1.0, 1.0), rng.range(-1.0, 1.0));
                actions.extend([ax, ay]);
                actions.extend(std::iter::repeat_n(0.0, action_dim - 2));
                x = (x + 3.0 * ax).clamp(4.0, 60.0);
                y = (y + 3.0 * ay).clamp(4.0, 60.0);
            }
        }
        w.push(Episode { height: 64, width: 64, frames, action_dim, actions, state_dim: 30, states, seed: first_seed + e, policy: "random".into(), caption: String::new(), events: Events::default(), contact_steps: 0 }).unwrap();
    }
    w.finish().unwrap();
}

/// Runs `foresight train` with the tiny config; returns whether it succeeded.
fn train(data: &Path, out: &Path, extra: &[&std::ffi::OsStr]) -> bool {
    train_with(&root().join("configs/tiny.json"), data, out, extra)
}

/// `configs/tiny.json` changed by `edit`, written to `dir/name`.
pub(crate) fn tiny_config(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("configs/tiny.json")).unwrap()).unwrap();
    edit(&mut cfg);
    let path = dir.join(name);
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

/// The latent of one frame, flattened.
fn code(wm: &WorldModel, frame: &[u8]) -> Vec<f32> {
    wm.encode(&[frame]).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Every frame (`frames[sample][step]`) is its latent (`(samples, steps, C, h, w)`) decoded:
/// to a level, since a frame decoded in another batch may round one value the other way.
pub(crate) fn assert_frames_decode_their_latents(wm: &WorldModel, frames: &[Vec<Vec<u8>>], latents: &candle_core::Tensor) {
    let (n, h, c, lh, lw) = latents.dims5().unwrap();
    let decoded = wm.decode(&latents.reshape((n * h, c, lh, lw)).unwrap()).unwrap();
    let got = frames.concat();
    assert_eq!(got.len(), decoded.len());
    for (i, (a, b)) in got.iter().zip(&decoded).enumerate() {
        let off = a.iter().zip(b).filter(|(x, y)| x.abs_diff(**y) > 0).count();
        assert!(a.iter().zip(b).all(|(x, y)| x.abs_diff(*y) <= 1) && off * 1000 < a.len(), "frame {i} of {n}x{h}: {off} values differ");
    }
}

/// Sample 0's latent of predicted step `t`, flattened.
fn latent(p: &foresight::world_model::Prediction, t: usize) -> Vec<f32> {
    p.latents.get(0).unwrap().get(t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

pub(crate) fn train_with(config: &Path, data: &Path, out: &Path, extra: &[&std::ffi::OsStr]) -> bool {
    std::process::Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["train", "--data"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra)
        .status()
        .unwrap()
        .success()
}

/// Trains the tiny config once per test process and returns the checkpoint.
pub(crate) fn tiny_checkpoint() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let base = tmpdir("wm");
        let data = base.join("data");
        synthetic_dataset(&data);
        let out = base.join("run");
        assert!(train(&data, &out, &[]));
        out.join("world_model.safetensors")
    })
    .clone()
}

fn query(wm: &WorldModel, samples: usize, seed: u64, horizon: usize) -> Query {
    let frame = vec![30u8; 64 * 64 * 3];
    let _ = wm;
    Query { context: vec![frame.clone(), frame], past_actions: None, actions: vec![vec![0.5, -0.5]; horizon], samples, seed }
}

#[test]
fn predictions_are_deterministic_per_seed_and_differ_across_seeds() {
    let wm = WorldModel::load(&tiny_checkpoint()).unwrap();
    let s = SamplerConfig::default();
    let a = wm.predict(&query(&wm, 2, 7, 3), &s).unwrap();
    let b = wm.predict(&query(&wm, 2, 7, 3), &s).unwrap();
    assert_eq!(a.frames.len(), 2);
    assert_eq!(a.frames[0].len(), 3);
    assert_eq!(a.frames[0][0].len(), 64 * 64 * 3);
    assert_eq!(a.frames, b.frames, "same seed, same rollout bytes");
    let c = wm.predict(&query(&wm, 2, 8, 3), &s).unwrap();
    assert_ne!(a.latents.flatten_all().unwrap().to_vec1::<f32>().unwrap(), c.latents.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    // Two samples of one query differ too.
    assert_ne!(a.latents.get(0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), a.latents.get(1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
    // A batched call answers each query as it would alone.
    let both = wm.predict_batch(&[query(&wm, 2, 7, 3), query(&wm, 1, 9, 2)], &s).unwrap();
    assert_eq!(both[0].frames, a.frames);
    assert_eq!(both[1].frames[0].len(), 2);
    // Re-encoding the context: the first frame is the same prediction, the later ones go on
    // from the re-encoded frame (so they differ), and the same seed still gives the same bytes.
    let r = SamplerConfig { reencode: true, ..s };
    let x = wm.predict(&query(&wm, 2, 7, 3), &r).unwrap();
    let y = wm.predict(&query(&wm, 2, 7, 3), &r).unwrap();
    assert_eq!(x.frames, y.frames);
    let lat = latent;
    assert_eq!(lat(&x, 0), lat(&a, 0));
    assert_ne!(lat(&x, 2), lat(&a, 2));
    // Re-encoding every second chunk: frames 0 and 1 are the plain rollout's (frame 1 was
    // predicted from raw latents), frame 2 goes on from a re-encoded frame 1.
    let e = SamplerConfig { reencode: true, reencode_every: 2, ..s };
    let w = wm.predict(&query(&wm, 2, 7, 3), &e).unwrap();
    assert_eq!(lat(&w, 1), lat(&a, 1));
    assert_ne!(lat(&w, 2), lat(&a, 2));
    assert_ne!(lat(&w, 2), lat(&x, 2));
    assert!(wm.predict(&query(&wm, 1, 0, 2), &SamplerConfig { reencode_every: 0, ..r }).is_err());
    // The frames decoded to re-encode them are reused as outputs: in a batch of queries of
    // different horizons and samples, every output frame is still its own latent decoded.
    for sampler in [r, e] {
        let got = wm.predict_batch(&[query(&wm, 2, 7, 5), query(&wm, 3, 9, 2), query(&wm, 1, 4, 4)], &sampler).unwrap();
        for p in &got {
            assert_frames_decode_their_latents(&wm, &p.frames, &p.latents);
        }
    }
}

#[test]
fn bad_queries_are_errors() {
    let wm = WorldModel::load(&tiny_checkpoint()).unwrap();
    let s = SamplerConfig::default();
    let mut q = query(&wm, 1, 0, 2);
    q.context[0].truncate(100);
    assert!(wm.predict(&q, &s).unwrap_err().to_string().contains("bytes"));
    let mut q = query(&wm, 1, 0, 2);
    q.actions[1][0] = f32::NAN;
    assert!(wm.predict(&q, &s).unwrap_err().to_string().contains("not finite"));
    let mut q = query(&wm, 1, 0, 2);
    q.actions[0] = vec![0.0; 3];
    assert!(wm.predict(&q, &s).unwrap_err().to_string().contains("takes 2"));
    let q = query(&wm, 1, 0, 1_000_000);
    assert!(wm.predict(&q, &s).unwrap_err().to_string().contains("horizon"));
    let mut q = query(&wm, 1, 0, 2);
    q.context = vec![vec![30u8; 64 * 64 * 3]; 9];
    assert!(wm.predict(&q, &s).is_err());
    assert!(wm.predict(&query(&wm, 1, 0, 2), &SamplerConfig { steps: 0, ..s }).is_err());
}

#[test]
fn truncated_or_mismatched_checkpoints_are_refused() {
    let ckpt = tiny_checkpoint();
    let dir = tmpdir("wm-bad");
    let bytes = std::fs::read(&ckpt).unwrap();
    let json = std::fs::read_to_string(ckpt.with_extension("json")).unwrap();
    let trunc = dir.join("trunc.safetensors");
    std::fs::write(&trunc, &bytes[..bytes.len() - 1000]).unwrap();
    std::fs::write(dir.join("trunc.json"), &json).unwrap();
    let err = WorldModel::load(&trunc).err().unwrap().to_string();
    assert!(err.contains("trunc.safetensors") && err.contains("truncated"), "{err}");
    let mism = dir.join("mism.safetensors");
    std::fs::write(&mism, &bytes).unwrap();
    std::fs::write(dir.join("mism.json"), json.replace("\"depth\": 1", "\"depth\": 2")).unwrap();
    let err = WorldModel::load(&mism).err().unwrap().to_string();
    assert!(err.contains("does not match") || err.contains("lack"), "{err}");
    assert!(WorldModel::load(&dir.join("missing.safetensors")).is_err());
}

#[test]
fn resume_continues_exactly() {
    let base = tmpdir("resume");
    let data = base.join("data");
    synthetic_dataset(&data);
    let run = |out: &Path, extra: &[&str]| {
        let extra: Vec<&std::ffi::OsStr> = extra.iter().map(std::ffi::OsStr::new).collect();
        assert!(train(&data, out, &extra));
    };
    // Straight through.
    run(&base.join("a"), &[]);
    // Stopped (as if killed) in stage 1 and again in stage 2, resumed each time.
    let b = base.join("b");
    run(&b, &["--stop-after", "3"]);
    assert!(!b.join("world_model.safetensors").exists());
    // A budget that ends exactly with the autoencoder stage (6 steps) stops before the transformer.
    run(&b, &["--resume", "--stop-after", "3"]);
    assert!(b.join("autoencoder.safetensors").exists() && !b.join("dynamics.state.json").exists());
    run(&b, &["--resume", "--stop-after", "3"]);
    run(&b, &["--resume"]);
    let wa = std::fs::read(base.join("a/world_model.safetensors")).unwrap();
    let wb = std::fs::read(b.join("world_model.safetensors")).unwrap();
    assert!(wa == wb, "a resumed run must end with the same weights as an uninterrupted one");
    let sa = std::fs::read(base.join("a/dynamics.opt.safetensors")).unwrap();
    let sb = std::fs::read(b.join("dynamics.opt.safetensors")).unwrap();
    assert!(sa == sb, "and the same optimiser state");
    // Without --resume an existing run is not overwritten.
    assert!(!train(&data, &b, &[]));
}

#[test]
fn ema_checkpoints_hold_the_average_and_resume_exactly() {
    let base = tmpdir("ema");
    let data = base.join("data");
    synthetic_dataset(&data);
    let cfg = tiny_config(&base, "ema.json", |c| c["dynamics_stage"]["ema"] = 0.9.into());
    let run = |out: &Path, config: &Path, extra: &[&str]| {
        let extra: Vec<&std::ffi::OsStr> = extra.iter().map(std::ffi::OsStr::new).collect();
        assert!(train_with(config, &data, out, &extra));
    };
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    run(&base.join("a"), &cfg, &[]);
    // Killed in the transformer stage twice (6 autoencoder steps first), resumed each time.
    let b = base.join("b");
    run(&b, &cfg, &["--stop-after", "7"]);
    run(&b, &cfg, &["--resume", "--stop-after", "2"]);
    run(&b, &cfg, &["--resume"]);
    for f in ["world_model.safetensors", "dynamics.live.safetensors", "dynamics.opt.safetensors"] {
        assert!(read(base.join("a").join(f)) == read(b.join(f)), "{f}: a resumed run must end as an uninterrupted one");
    }
    // The average does not steer training: the live weights are those of the same run without it.
    let c = base.join("c");
    run(&c, &root().join("configs/tiny.json"), &[]);
    assert!(!c.join("dynamics.live.safetensors").exists());
    assert!(read(c.join("world_model.safetensors")) == read(b.join("dynamics.live.safetensors")));
    // And the checkpoint holds the average, which differs from the live weights and loads.
    let dev = candle_core::Device::Cpu;
    let avg = foresight::train::checkpoint::load_tensors(&b.join("world_model.safetensors"), &dev).unwrap();
    let live = foresight::train::checkpoint::load_tensors(&b.join("dynamics.live.safetensors"), &dev).unwrap();
    let differ = |k: &str| avg[k].flatten_all().unwrap().to_vec1::<f32>().unwrap() != live[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(avg.keys().any(|k| k.starts_with("dit.") && differ(k)), "the average must differ from the live weights");
    assert!(avg.keys().filter(|k| k.starts_with("ae.")).all(|k| !differ(k)), "the autoencoder is not averaged");
    WorldModel::load(&b.join("world_model.safetensors")).unwrap();
    // A run started with the average cannot be resumed without it (its checkpoint is no live
    // weights); one started without it can take it up (the average starts where it resumes).
    let plain = root().join("configs/tiny.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_foresight")).args(["train", "--data"]).arg(&data).arg("--config").arg(&plain).arg("--out").arg(&b).arg("--resume").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("dynamics.live.safetensors"), "{err}");
    let d = base.join("d");
    run(&d, &plain, &["--stop-after", "8"]);
    run(&d, &cfg, &["--resume"]);
    assert!(read(d.join("dynamics.live.safetensors")) == read(c.join("world_model.safetensors")));
    assert!(read(d.join("world_model.safetensors")) != read(c.join("world_model.safetensors")));
}

#[test]
fn every_transformer_tensor_gets_a_gradient_after_one_step() {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    use foresight::model::dit::{Dit, DitConfig, DitInput};
    use foresight::train::{AdamW, AdamWConfig};
    let dev = Device::Cpu;
    // One frame a call, and a chunk of three frames denoised together.
    for chunk in [1, 3] {
        let vm = VarMap::new();
        let cfg = DitConfig { latent: [2, 4, 4], patch: 2, context: 2, action_dim: 3, dim: 16, depth: 2, heads: 2, mlp_ratio: 2, text: None, bidirectional: false, chunk, token_actions: chunk > 1 };
        let slots = cfg.action_slots();
        let dit = Dit::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        let b = 3;
        let noisy = Tensor::randn(0f32, 1.0, (b, 2 * chunk, 4, 4), &dev).unwrap();
        let ctx = Tensor::randn(0f32, 1.0, (b, 2, 2, 4, 4), &dev).unwrap();
        let ones = Tensor::ones((b, 2), DType::F32, &dev).unwrap();
        let amask = Tensor::ones((b, slots), DType::F32, &dev).unwrap();
        let tau = Tensor::new(&[0.3f32, 0.9, 1.0], &dev).unwrap();
        let cn = Tensor::new(&[0.0f32, 0.1, 0.2], &dev).unwrap();
        let acts = Tensor::randn(0f32, 1.0, (b, slots, 3), &dev).unwrap();
        let drop = Tensor::new(&[0f32, 0.0, 1.0], &dev).unwrap();
        let target = Tensor::randn(0f32, 1.0, (b, 2 * chunk, 4, 4), &dev).unwrap();
        let inp = DitInput { noisy: &noisy, context: &ctx, context_mask: &ones, tau: &tau, context_noise: &cn, actions: &acts, action_mask: &amask, drop_actions: &drop, extras: None };
        let loss = |d: &Dit| d.forward(&inp).unwrap().sub(&target).unwrap().sqr().unwrap().mean_all().unwrap();
        let vars = vm.data().lock().unwrap().clone();
        let mut opt = AdamW::new(vars.clone(), AdamWConfig { lr: 1e-2, ..Default::default() }).unwrap();
        // adaLN-Zero starts with a zero head and zero gates: the first step moves the head, the
        // second the gates, and from the third gradient on every tensor takes part.
        for _ in 0..2 {
            opt.step(&loss(&dit).backward().unwrap()).unwrap();
        }
        let grads = loss(&dit).backward().unwrap();
        for (name, var) in vars {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("chunk {chunk}: {name} received no gradient"));
            let n = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(n > 0.0, "chunk {chunk}: {name} has an all-zero gradient");
        }
        // Every frame of the chunk reads its own noisy input and its own action.
        let out = dit.forward(&inp).unwrap();
        let scale = |n: usize, last: f32, shape: (usize, usize, usize, usize)| {
            let mut m = vec![1f32; n];
            m[n - 1] = last;
            Tensor::from_vec(m, n, &dev).unwrap().reshape(shape).unwrap()
        };
        let zero_last_frame = noisy.broadcast_mul(&scale(chunk, 0.0, (1, chunk, 1, 1)).repeat((1, 1, 2, 1)).unwrap().reshape((1, chunk * 2, 1, 1)).unwrap()).unwrap();
        let flip_last_action = acts.broadcast_mul(&scale(slots, -1.0, (1, slots, 1, 1)).squeeze(3).unwrap()).unwrap();
        for (what, n2, a2) in [("noisy frame", &zero_last_frame, &acts), ("action", &noisy, &flip_last_action)] {
            let inp2 = DitInput { noisy: n2, actions: a2, ..inp };
            let d = (dit.forward(&inp2).unwrap() - &out).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d > 0.0, "chunk {chunk}: changing the last {what} changed nothing");
        }
    }
}

#[test]
fn init_to_a_longer_chunk_with_token_actions_starts_as_the_one_frame_model() {
    use foresight::model::diffusion::SamplerConfig;
    let ckpt = tiny_checkpoint();
    let base = tmpdir("chunk");
    let data = base.join("data");
    synthetic_dataset(&data);
    let out = base.join("ft");
    // A vanishing learning rate: the fine-tuned model is the mapped initial one.
    let path = tiny_config(&base, "chunk.json", |cfg| {
        cfg["autoencoder_stage"]["steps"] = 0.into();
        cfg["dynamics"]["chunk"] = 3.into();
        cfg["dynamics"]["token_actions"] = true.into();
        cfg["dynamics_stage"]["steps"] = 1.into();
        cfg["dynamics_stage"]["lr"] = 1e-12.into();
    });
    assert!(train_with(&path, &data, &out, &["--init".as_ref(), ckpt.as_os_str()]));
    let a = WorldModel::load(&ckpt).unwrap();
    let b = WorldModel::load(&out.join("world_model.safetensors")).unwrap();
    assert_eq!((a.meta.dit.chunk, b.meta.dit.chunk, b.meta.dit.token_actions), (1, 3, true));
    // The mean future (temperature 0): the chunk's frames all start as the one-frame model's
    // first frame; horizons that are not a multiple of the chunk are cut to length.
    let s = SamplerConfig { temperature: 0.0, ..a.meta.sampler };
    let pa = a.predict(&query(&a, 1, 3, 5), &s).unwrap();
    let pb = b.predict(&query(&b, 1, 3, 5), &s).unwrap();
    assert_eq!(pb.frames[0].len(), 5);
    assert_eq!(pb.latents.dims()[..2], [1, 5]);
    let lat = latent;
    let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(u, v)| (u - v).abs() < 1e-4);
    assert!(close(&lat(&pa, 0), &lat(&pb, 0)), "first frame differs from the one-frame model's");
    assert!(close(&lat(&pb, 1), &lat(&pb, 0)) && close(&lat(&pb, 2), &lat(&pb, 0)));
    assert!(!close(&lat(&pa, 1), &lat(&pa, 0)) || !close(&lat(&pa, 2), &lat(&pa, 0)), "the one-frame model moved nothing: the test cannot tell");
}

#[test]
fn init_fine_tunes_a_checkpoint_and_keeps_its_autoencoder() {
    let ckpt = tiny_checkpoint();
    let base = tmpdir("init");
    let data = base.join("data");
    // Other episodes than the checkpoint's (its seeds start at 1000).
    synthetic_dataset_from(&data, 5000);
    let out = base.join("ft");
    // autoencoder_stage.steps 0: the autoencoder stays frozen.
    let frozen = tiny_config(&base, "frozen.json", |cfg| cfg["autoencoder_stage"]["steps"] = 0.into());
    assert!(train_with(&frozen, &data, &out, &["--init".as_ref(), ckpt.as_os_str()]));
    let a = WorldModel::load(&ckpt).unwrap();
    let b = WorldModel::load(&out.join("world_model.safetensors")).unwrap();
    assert_eq!(a.meta.autoencoder, b.meta.autoencoder);
    assert_eq!(a.meta.delta_scale, b.meta.delta_scale);
    let frame = vec![30u8; 64 * 64 * 3];
    let za = code(&a, &frame);
    let zb = code(&b, &frame);
    assert_eq!(za, zb, "the autoencoder stays frozen");
    assert_eq!(b.meta.steps, 6);
    let seeds = |dir: &Path| foresight::data::Dataset::open(dir).unwrap().manifest.episodes.iter().map(|e| e.seed).collect::<Vec<_>>();
    assert!(seeds(&data).iter().all(|s| !a.meta.train_seeds.contains(s)));
    // (Its own: the training share of them; the held-out ones stay out.)
    let (own, theirs) = b.meta.train_seeds.iter().partition::<Vec<u64>, _>(|s| seeds(&data).contains(s));
    assert!(own.len() > seeds(&data).len() / 2 && own.len() < seeds(&data).len(), "{} of {}", own.len(), seeds(&data).len());
    assert_eq!(theirs, a.meta.train_seeds, "the fine-tune lists the checkpoint's seeds after its own");
    // A weight average lists every averaged checkpoint's seeds and how it was made.
    let avg = base.join("avg.safetensors");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_foresight")).args(["export", "--f32", "--checkpoint"]).arg(&ckpt).arg("--average").arg(out.join("world_model.safetensors")).arg("--out").arg(&avg).status().unwrap();
    assert!(st.success());
    let m = WorldModel::load(&avg).unwrap();
    assert!(b.meta.train_seeds.iter().all(|s| m.meta.train_seeds.contains(s)) && m.meta.train_seeds.len() == b.meta.train_seeds.len());
    assert!(m.meta.command.contains("--average"), "{}", m.meta.command);
    let t = |p: &Path| foresight::train::checkpoint::load_tensors(p, &candle_core::Device::Cpu).unwrap();
    let (ta, tb, tm) = (t(&ckpt), t(&out.join("world_model.safetensors")), t(&avg));
    let name = ta.keys().find(|k| k.starts_with("dit.") && ta[*k].flatten_all().unwrap().to_vec1::<f32>().unwrap() != tb[*k].flatten_all().unwrap().to_vec1::<f32>().unwrap()).expect("a transformer tensor the fine-tune changed").clone();
    let mean = ((&ta[&name] + &tb[&name]).unwrap() / 2.0).unwrap();
    let off = (mean - &tm[&name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(off < 1e-6, "{name}: the average is off by {off}");
    // Seeds a checkpoint's JSON lacks can be added from their dataset; eval then refuses it.
    let marked = base.join("marked.safetensors");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_foresight")).args(["export", "--checkpoint"]).arg(&ckpt).arg("--train-seeds-from").arg(&data).arg("--out").arg(&marked).status().unwrap();
    assert!(st.success());
    assert!(seeds(&data).iter().all(|s| WorldModel::load(&marked).unwrap().meta.train_seeds.contains(s)));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_foresight")).args(["eval", "--context", "2", "--horizon", "2", "--checkpoint"]).arg(&marked).arg("--data").arg(&data).arg("--json").arg(base.join("e.json")).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("used to train"), "{}", String::from_utf8_lossy(&o.stderr));
    // Another game with 3-d actions: the autoencoder is fine-tuned (6 steps), the transformer
    // starts from the checkpoint except its action embedding.
    let data3 = base.join("data3");
    synthetic_dataset_dims(&data3, 1000, 3);
    let out3 = base.join("ft3");
    assert!(train(&data3, &out3, &["--init".as_ref(), ckpt.as_os_str()]));
    let c = WorldModel::load(&out3.join("world_model.safetensors")).unwrap();
    assert_eq!(c.meta.action_spec.dim, 3);
    assert_eq!(c.meta.autoencoder, a.meta.autoencoder);
    // Its episodes share the checkpoint's seeds: each is listed once.
    assert!(a.meta.train_seeds.iter().all(|s| c.meta.train_seeds.contains(s)));
    let mut unique = c.meta.train_seeds.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), c.meta.train_seeds.len(), "a seed listed twice");
    assert_ne!(c.meta.delta_scale, a.meta.delta_scale, "another latent: the delta scale is measured on the new data");
    let zc = code(&c, &frame);
    assert!(za != zc, "the autoencoder was fine-tuned");
}

#[test]
fn a_fresh_transformer_trains_on_a_checkpoints_frozen_autoencoder() {
    let ckpt = tiny_checkpoint();
    let base = tmpdir("ae-from");
    let data = base.join("data");
    synthetic_dataset(&data);
    let out = base.join("fresh");
    let wider = tiny_config(&base, "wider.json", |cfg| cfg["dynamics"]["dim"] = 24.into());
    assert!(train_with(&wider, &data, &out, &["--autoencoder".as_ref(), ckpt.as_os_str()]));
    let a = WorldModel::load(&ckpt).unwrap();
    let b = WorldModel::load(&out.join("world_model.safetensors")).unwrap();
    assert_eq!(a.meta.autoencoder, b.meta.autoencoder);
    assert_eq!((a.meta.dit.dim, b.meta.dit.dim), (16, 24), "the config's transformer, trained afresh");
    let frame = vec![30u8; 64 * 64 * 3];
    let za = code(&a, &frame);
    let zb = code(&b, &frame);
    assert_eq!(za, zb, "the autoencoder stays frozen");
    assert!(!train_with(&wider, &data, &base.join("both"), &["--autoencoder".as_ref(), ckpt.as_os_str(), "--init".as_ref(), ckpt.as_os_str()]), "--init and --autoencoder exclude each other");
}

#[test]
fn a_convolutional_autoencoder_trains_end_to_end() {
    let base = tmpdir("conv");
    let data = base.join("data");
    synthetic_dataset(&data);
    let out = base.join("run");
    let conv = tiny_config(&base, "conv.json", |cfg| {
        cfg["autoencoder"] = serde_json::json!({"kind": "conv", "resolution": [64, 64], "patch": 4, "dim": 8, "depth": 1, "heads": 1, "mlp_ratio": 1, "latent_channels": 2, "latent_patch": 1});
    });
    assert!(train_with(&conv, &data, &out, &[]));
    let wm = WorldModel::load(&out.join("world_model.safetensors")).unwrap();
    assert_eq!(wm.meta.autoencoder.kind, foresight::model::autoencoder::AeKind::Conv);
    assert_eq!(wm.meta.dit.latent, [2, 16, 16]);
    let p = wm.predict(&query(&wm, 2, 7, 3), &wm.meta.sampler).unwrap();
    assert_eq!((p.frames.len(), p.frames[0].len(), p.frames[0][0].len()), (2, 3, 64 * 64 * 3));
    let again = wm.predict(&query(&wm, 2, 7, 3), &wm.meta.sampler).unwrap();
    assert_eq!(p.frames, again.frames, "same seed, same bytes");
    // A decoder with a full-resolution refinement, trained with the encoder frozen, then put under the transformer: the latent space (the codes) stays, the frames
    // are drawn by the new decoder.
    let ckpt = out.join("world_model.safetensors");
    let refine = tiny_config(&base, "refine.json", |cfg| {
        cfg["autoencoder"] = serde_json::json!({"kind": "conv", "resolution": [64, 64], "patch": 4, "dim": 8, "depth": 1, "heads": 1, "mlp_ratio": 1, "latent_channels": 2, "latent_patch": 1, "refine_width": 4, "refine_depth": 1});
        cfg["autoencoder_stage"] = serde_json::json!({"steps": 3, "batch": 4, "lr": 0.01, "warmup": 1, "freeze_encoder": true});
        cfg["dynamics_stage"]["steps"] = 0.into();
    });
    let dec = base.join("dec");
    assert!(train_with(&refine, &data, &dec, &["--init".as_ref(), ckpt.as_os_str()]));
    let exported = base.join("refined.safetensors");
    let export = |from: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_foresight"))
            .args(["export", "--f32", "--checkpoint"])
            .arg(&ckpt)
            .arg("--out")
            .arg(&exported)
            .arg("--decoder-from")
            .arg(from)
            .status()
            .unwrap()
            .success()
    };
    assert!(export(&dec.join("autoencoder.safetensors")));
    let refined = WorldModel::load(&exported).unwrap();
    assert_eq!((refined.meta.autoencoder.refine_width, refined.meta.autoencoder.refine_depth), (4, 1));
    let frame: Vec<u8> = (0..64 * 64 * 3).map(|i| (i * 37 % 251) as u8).collect();
    assert_eq!(code(&wm, &frame), code(&refined, &frame), "the encoder is the same");
    let z = wm.encode(&[frame.as_slice()]).unwrap();
    assert_ne!(wm.decode(&z).unwrap(), refined.decode(&z).unwrap(), "the decoder was trained");
    let q = refined.predict(&query(&refined, 2, 7, 3), &refined.meta.sampler).unwrap();
    assert_eq!(q.frames[0].len(), 3);
    // A decoder over another encoder is refused.
    assert!(!export(&ckpt_of_another_encoder(&base, &data)));
}

/// A conv world model trained from another seed (another encoder).
fn ckpt_of_another_encoder(base: &Path, data: &Path) -> PathBuf {
    let out = base.join("other");
    let cfg = tiny_config(base, "other.json", |cfg| {
        cfg["seed"] = 99.into();
        cfg["autoencoder"] = serde_json::json!({"kind": "conv", "resolution": [64, 64], "patch": 4, "dim": 8, "depth": 1, "heads": 1, "mlp_ratio": 1, "latent_channels": 2, "latent_patch": 1});
        cfg["dynamics_stage"]["steps"] = 1.into();
    });
    assert!(train_with(&cfg, data, &out, &[]));
    out.join("world_model.safetensors")
}

#[test]
fn world_model_env_steps_in_imagination() {
    use foresight::env::{Env, WorldModelEnv};
    let wm = WorldModel::load(&tiny_checkpoint()).unwrap();
    let mut scene = foresight::scene::Scene::load(root().join("scenes/push.ron")).unwrap();
    assert!(WorldModelEnv::reset(&wm, scene.clone(), vec![vec![30u8; 64 * 64 * 3]], None, 0).is_err(), "a model of another scene is refused");
    scene.name = "squares".into();
    let frame = vec![30u8; 64 * 64 * 3];
    let mut env = WorldModelEnv::reset(&wm, scene, vec![frame.clone(), frame], Some(vec![vec![0.0, 0.0]]), 5).unwrap();
    let a = env.step(&[0.5, 0.5]).unwrap();
    let b = env.step(&[0.5, 0.5]).unwrap();
    assert_eq!(a.frame.len(), 64 * 64 * 3);
    assert_eq!(env.frame(), b.frame.as_slice());
    assert!(a.reward.is_finite() && b.reward.is_finite());
    assert!(env.step(&[f32::NAN, 0.0]).is_err());
}

/// The environment's window stays in latent space: a predicted frame goes on as its latent, and
/// is re-encoded from its image only on the steps the sampler says (`reencode_every`).
#[test]
fn world_model_env_keeps_latents_and_reencodes_as_the_sampler_says() {
    use foresight::env::{Env, WorldModelEnv};
    use candle_core::Tensor;
    use foresight::rng::mix64;
    let wm = WorldModel::load(&tiny_checkpoint()).unwrap();
    let mut scene = foresight::scene::Scene::load(root().join("scenes/push.ron")).unwrap();
    scene.name = "squares".into();
    let start: Vec<Vec<u8>> = (0..2u8).map(|i| (0..64 * 64 * 3).map(|j| ((j * 7 + i as usize * 31) % 200) as u8).collect()).collect();
    let acts = [[0.5f32, -0.3], [-0.2, 0.8], [0.1, 0.1]];
    for (reencode, every) in [(false, 1), (true, 1), (true, 2)] {
        let sampler = foresight::model::diffusion::SamplerConfig { reencode, reencode_every: every, ..wm.meta.sampler };
        let mut env = WorldModelEnv::reset(&wm, scene.clone(), start.clone(), Some(vec![vec![0.0, 0.0]]), 9).unwrap().with_sampler(sampler);
        // The same steps by hand: one-step latent rollouts from the window.
        let z0 = wm.encode(&start.iter().map(|f| f.as_slice()).collect::<Vec<_>>()).unwrap();
        let mut window: Vec<Tensor> = (0..2).map(|i| z0.narrow(0, i, 1).unwrap()).collect();
        let mut past = vec![vec![0.0f32, 0.0]];
        for (t, a) in acts.iter().enumerate() {
            let got = env.step(a).unwrap();
            let q = Query { context: Vec::new(), past_actions: Some(past.clone()), actions: vec![a.to_vec()], samples: 1, seed: 9 ^ mix64(t as u64) };
            let z = wm.rollout_latent(&[q], &[Tensor::cat(&window, 0).unwrap()], &sampler).unwrap().remove(0).squeeze(0).unwrap();
            let frame = wm.decode(&z).unwrap().remove(0);
            assert_eq!(got.frame, frame, "step {t}, reencode {reencode} every {every}");
            let next = if reencode && (t + 1) % every == 0 { wm.encode(&[frame.as_slice()]).unwrap() } else { z };
            window.push(next);
            past.push(a.to_vec());
            if window.len() > wm.meta.context {
                window.remove(0);
                past.remove(0);
            }
            let diff = (env.window().unwrap() - Tensor::cat(&window, 0).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(diff, 0.0, "step {t}: the window differs");
        }
    }
}

/// Episodes imagined together advance as they would alone (one batched call), only the ones
/// asked for advance, and bad calls are refused.
#[test]
fn world_model_envs_step_episodes_together_as_alone() {
    use foresight::env::{Env, EnvStart, WorldModelEnv, WorldModelEnvs};
    let wm = WorldModel::load(&tiny_checkpoint()).unwrap();
    let mut scene = foresight::scene::Scene::load(root().join("scenes/push.ron")).unwrap();
    scene.name = "squares".into();
    let frame = |v: usize| -> Vec<u8> { (0..64 * 64 * 3).map(|j| ((j * 3 + v * 57) % 230) as u8).collect() };
    let start = |v: usize| EnvStart { frames: vec![frame(v)], past_actions: None, seed: 40 + v as u64 };
    let mut envs = WorldModelEnvs::reset(&wm, scene.clone(), vec![start(0), start(1), start(2)]).unwrap();
    let mut alone: Vec<WorldModelEnv> = (0..3).map(|v| WorldModelEnv::reset(&wm, scene.clone(), vec![frame(v)], None, 40 + v as u64).unwrap()).collect();
    let acts = |t: usize| -> Vec<Vec<f32>> { (0..3).map(|v| vec![0.3 * v as f32 - 0.2, 0.1 * t as f32]).collect() };
    for t in 0..3 {
        // Episode 1 sits out the second step.
        let which: Vec<usize> = if t == 1 { vec![0, 2] } else { vec![0, 1, 2] };
        let a = acts(t);
        let got = envs.step(&which, &which.iter().map(|&i| a[i].clone()).collect::<Vec<_>>()).unwrap();
        for (&i, g) in which.iter().zip(&got) {
            let want = alone[i].step(&a[i]).unwrap();
            let worst = g.frame.iter().zip(&want.frame).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
            assert!(worst <= 1, "step {t}, episode {i}: batched and alone differ by {worst}");
            assert_eq!(envs.frame(i), g.frame.as_slice());
        }
    }
    assert_eq!(envs.window(1).unwrap().dim(0).unwrap(), 3.min(wm.meta.context), "episode 1 stepped twice: 3 latents (at most K) in its window");
    assert_eq!(envs.window(0).unwrap().dim(0).unwrap(), 4.min(wm.meta.context), "episode 0 stepped three times");
    for (which, n) in [(vec![0, 0], 2), (vec![3], 1), (vec![0, 1], 1)] {
        assert!(envs.step(&which, &vec![vec![0.0, 0.0]; n]).is_err(), "{which:?} with {n} actions was accepted");
    }
    assert!(WorldModelEnvs::reset(&wm, scene.clone(), vec![EnvStart { frames: vec![frame(0)], past_actions: Some(vec![vec![0.0, 0.0]]), seed: 0 }]).is_err(), "two past actions for one frame");
}

#[test]
fn export_to_f16_halves_the_file_and_still_loads() {
    let ckpt = tiny_checkpoint();
    let out = tmpdir("export").join("tiny.safetensors");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_foresight")).args(["export", "--checkpoint"]).arg(&ckpt).arg("--out").arg(&out).status().unwrap();
    assert!(st.success());
    let (a, b) = (std::fs::metadata(&ckpt).unwrap().len(), std::fs::metadata(&out).unwrap().len());
    assert!(b < a * 6 / 10, "{b} bytes is not about half of {a}");
    let wm = WorldModel::load(&out).unwrap();
    let p = wm.predict(&query(&wm, 1, 3, 2), &foresight::model::diffusion::SamplerConfig::default()).unwrap();
    assert_eq!(p.frames[0].len(), 2);
    // The sampler defaults chosen on validation episodes go into the JSON; bad ones are refused.
    let export = |extra: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_foresight")).args(["export", "--checkpoint"]).arg(&ckpt).arg("--out").arg(&out).args(extra).output().unwrap();
    assert!(export(&["--temperature", "0.5", "--reencode-every", "4"]).status.success());
    let s = WorldModel::load(&out).unwrap().meta.sampler;
    assert_eq!((s.temperature, s.reencode, s.reencode_every), (0.5, true, 4));
    assert!(export(&["--reencode-every", "off"]).status.success());
    assert!(!WorldModel::load(&out).unwrap().meta.sampler.reencode);
    for bad in ["0", "often"] {
        let o = export(&["--reencode-every", bad]);
        assert!(!o.status.success(), "--reencode-every {bad} was accepted");
    }
    assert!(export(&["--steps", "1"]).status.success());
    assert_eq!(WorldModel::load(&out).unwrap().meta.sampler.steps, 1);
    for bad in ["0", "9"] {
        let o = export(&["--steps", bad]);
        assert!(!o.status.success(), "--steps {bad} was accepted");
    }
}

#[test]
fn eval_refuses_training_seeds_and_reports_the_contract_keys() {
    use foresight::eval::{evaluate, EvalConfig};
    let wm = WorldModel::load(&tiny_checkpoint()).unwrap();
    let cfg = EvalConfig { context: 2, horizon: 4, start: 0, long_horizon: 0, max_episodes: 32, sampler: SamplerConfig::default(), seed: 0 };
    let seen = tmpdir("eval-seen").join("data");
    synthetic_dataset(&seen);
    let err = evaluate(&wm, &mut foresight::data::Dataset::open(&seen).unwrap(), &cfg).unwrap_err().to_string();
    assert!(err.contains("were used to train"), "{err}");
    let fresh = tmpdir("eval-fresh").join("data");
    synthetic_dataset_from(&fresh, 50_000);
    let report = evaluate(&wm, &mut foresight::data::Dataset::open(&fresh).unwrap(), &cfg).unwrap();
    assert_eq!(report.episodes, 12);
    let json = serde_json::to_value(&report).unwrap();
    for k in ["psnr", "ssim", "position_error_px", "agent_position_error_px", "pushed_position_error_px"] {
        assert_eq!(json[k].as_array().map(|a| a.len()), Some(4), "`{k}`");
        assert!(json["copy_last"].get(k).is_some(), "copy_last lacks `{k}`");
    }
    for k in ["position_error_px", "agent_position_error_px", "pushed_position_error_px"] {
        assert!(json["constant_velocity"].get(k).is_some(), "constant_velocity lacks `{k}`");
    }
    for k in ["controllability_db", "controllability_ratio", "missing_fraction", "autoencoder_psnr", "autoencoder_position_error_px", "episodes", "policy"] {
        assert!(json.get(k).is_some(), "report lacks `{k}`");
    }
    // Copy-last is exact at no motion and the truth locates the squares.
    assert!(report.copy_last.agent_position_error_px.iter().all(|v| v.is_finite()));
    // One score per window, whose agent errors average to the report's curves.
    assert_eq!(report.per_episode.len(), 12);
    for (name, curve, of) in [
        ("model", &report.model.agent_position_error_px, (|e: &foresight::eval::EpisodeScore| e.agent_position_error_px.clone()) as fn(&_) -> Vec<Option<f64>>),
        ("copy-last", &report.copy_last.agent_position_error_px, |e| e.copy_last_agent_position_error_px.clone()),
    ] {
        for (t, want) in curve.iter().enumerate() {
            let vals: Vec<f64> = report.per_episode.iter().filter_map(|e| of(e)[t]).collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            assert!((mean - want).abs() < 1e-9, "{name} h{}: per-episode mean {mean}, curve {want}", t + 1);
        }
    }
    assert!(report.per_episode.windows(2).all(|w| w[0].episode < w[1].episode));
    // Bodies lost per horizon: fractions whose weighted mean is the overall one (every window
    // shows every body here), and the agent lost exactly where its window's error is the
    // half-diagonal a body not found costs.
    assert_eq!((report.missing_fraction_per_horizon.len(), report.agent_missing_fraction.len()), (4, 4));
    assert!(report.missing_fraction_per_horizon.iter().chain(&report.agent_missing_fraction).all(|f| (0.0..=1.0).contains(f)));
    let per_h = report.missing_fraction_per_horizon.iter().sum::<f64>() / 4.0;
    assert!((per_h - report.missing_fraction).abs() < 1e-9, "{per_h} vs {}", report.missing_fraction);
    let [h, w] = wm.meta.resolution;
    let half_diag = ((h * h + w * w) as f64).sqrt() / 2.0;
    for (t, want) in report.agent_missing_fraction.iter().enumerate() {
        let lost = report.per_episode.iter().filter(|e| e.agent_position_error_px[t].is_some_and(|v| (v - half_diag).abs() < 1e-4)).count();
        assert!((lost as f64 / 12.0 - want).abs() < 1e-9, "h{}: {lost} of 12 windows vs {want}", t + 1);
    }
    let md = foresight::eval::markdown(&report, "t");
    assert!(md.contains("windows hold half of it") && md.contains("agent lost"), "{md}");
    // Windows later in the episodes: other truth, other baselines; beyond the end, a clear error.
    let mut ds = foresight::data::Dataset::open(&fresh).unwrap();
    let later = evaluate(&wm, &mut ds, &EvalConfig { start: 3, ..cfg.clone() }).unwrap();
    assert_eq!((later.start, later.episodes), (3, 12));
    assert_ne!(later.copy_last.agent_position_error_px, report.copy_last.agent_position_error_px);
    let err = evaluate(&wm, &mut ds, &EvalConfig { start: 10_000, ..cfg }).unwrap_err().to_string();
    assert!(err.contains("start 10000"), "{err}");
}

/// The shipped checkpoints: small, consistent with their scenes, and deterministic.
#[test]
fn shipped_checkpoints_load_predict_and_fit_their_scenes() {
    for name in ["push", "bounce", "arm"] {
        let weights = root().join(format!("assets/{name}.safetensors"));
        assert!(weights.exists(), "{} is not shipped", weights.display());
        let size = std::fs::metadata(&weights).unwrap().len();
        assert!(size <= 16 << 20, "{name}: {size} bytes, over 16 MB");
        let wm = WorldModel::load(&weights).unwrap();
        let scene = foresight::scene::Scene::load(root().join(format!("scenes/{name}.ron"))).unwrap();
        assert_eq!(wm.meta.scene, scene.name);
        assert_eq!(wm.meta.scene_hash, scene.content_hash(), "{name}: the scene changed since the checkpoint was trained");
        assert_eq!(wm.meta.action_spec.dim, scene.actions.len());
        let [h, w] = wm.meta.resolution;
        let bg = scene.background;
        let frame: Vec<u8> = (0..h * w).flat_map(|_| bg).collect();
        let q = |seed| Query { context: vec![frame.clone(); 2], past_actions: Some(vec![vec![0.0; scene.actions.len()]]), actions: vec![vec![0.5; scene.actions.len()]; 3], samples: 2, seed };
        let a = wm.predict(&q(1), &wm.meta.sampler).unwrap();
        assert_eq!((a.frames.len(), a.frames[0].len(), a.frames[0][0].len()), (2, 3, h * w * 3));
        assert_eq!(a.frames, wm.predict(&q(1), &wm.meta.sampler).unwrap().frames, "{name}: same seed, same bytes");
        assert_ne!(a.frames, wm.predict(&q(2), &wm.meta.sampler).unwrap().frames, "{name}: another seed, another future");
    }
}
