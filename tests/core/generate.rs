//! Issue 6 in the core: tokenizer, text/direction/anchor branches training, the generation
//! requests and their errors, on a tiny checkpoint trained with captions.

use foresight::generate::{cross_fade, pearson, spread_map, Direction, Generate};
use foresight::model::diffusion::SamplerConfig;
use foresight::model::text::{tokenize, word_features, TextConfig};
use foresight::world_model::WorldModel;

use crate::world_model::{assert_frames_decode_their_latents, synthetic_dataset, tiny_config, train_with};
use crate::{root, tmpdir};

#[test]
fn tokenizer_handles_unseen_words_and_refuses_empty_text() {
    let cfg = TextConfig { buckets: 256, max_tokens: 8, ..TextConfig::default() };
    let t = tokenize("The red disc zooms LEFTWARDS!", &cfg).unwrap();
    assert_eq!(t.mask.iter().sum::<f32>(), 5.0);
    // Each word's features sum to 1; an unseen word shares trigrams with a known one.
    for i in 0..5 {
        let s: f32 = t.weights[i * 256..(i + 1) * 256].iter().sum();
        assert!((s - 1.0).abs() < 1e-5);
    }
    let (a, b) = (word_features("left", 256), word_features("leftwards", 256));
    assert!(a[1..].iter().filter(|f| b.contains(f)).count() >= 3, "{a:?} vs {b:?}");
    assert!(tokenize("", &cfg).unwrap_err().contains("empty"));
    assert!(tokenize(" ... !", &cfg).unwrap_err().contains("empty"));
    assert!(tokenize("one two three four five six seven eight nine", &cfg).unwrap_err().contains("at most 8"));
}

#[test]
fn text_direction_and_anchor_branches_all_get_gradients() {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    use foresight::model::dit::{Dit, DitConfig, DitExtras, DitInput};
    use foresight::train::{AdamW, AdamWConfig};
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let text = TextConfig { buckets: 64, max_tokens: 6, dim: 16, depth: 1, heads: 2 };
    let cfg = DitConfig { latent: [2, 4, 4], patch: 2, context: 2, action_dim: 3, dim: 16, depth: 1, heads: 2, mlp_ratio: 2, text: Some(text.clone()), bidirectional: true, chunk: 1, token_actions: false };
    let dit = Dit::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    let b = 3;
    let r = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
    let v = |x: [f32; 3]| Tensor::new(&x, &dev).unwrap();
    let (noisy, ctx, acts, target, anchor) = (r(&[b, 2, 4, 4]), r(&[b, 2, 2, 4, 4]), r(&[b, 2, 3]), r(&[b, 2, 4, 4]), r(&[b, 2, 4, 4]));
    let ones = Tensor::ones((b, 2), DType::F32, &dev).unwrap();
    let toks = ["the red disc goes left", "blue stays still", "up"].map(|s| tokenize(s, &text).unwrap());
    let (tw, tm) = foresight::model::text::stack(&toks.iter().map(Some).collect::<Vec<_>>(), &text, &dev).unwrap();
    let (keep, progress, reverse, amask, adist) = (v([1.0, 1.0, 0.0]), v([0.25, 1.0, 0.5]), v([0.0, 1.0, 0.0]), v([1.0, 0.0, 1.0]), v([0.1, 0.0, 0.5]));
    let extras = DitExtras { text: Some((&tw, &tm)), text_keep: &keep, progress: &progress, reverse: &reverse, anchor: &anchor, anchor_mask: &amask, anchor_dist: &adist };
    let (tau, cn, drop) = (v([0.3, 0.9, 1.0]), v([0.0, 0.1, 0.2]), v([0.0, 0.0, 1.0]));
    let inp = DitInput { noisy: &noisy, context: &ctx, context_mask: &ones, tau: &tau, context_noise: &cn, actions: &acts, action_mask: &ones, drop_actions: &drop, extras: Some(&extras) };
    let loss = |d: &Dit| d.forward(&inp).unwrap().sub(&target).unwrap().sqr().unwrap().mean_all().unwrap();
    let vars = vm.data().lock().unwrap().clone();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig { lr: 1e-2, ..Default::default() }).unwrap();
    // Zero-initialised heads and gates: after a few steps every tensor takes part.
    for _ in 0..3 {
        opt.step(&loss(&dit).backward().unwrap()).unwrap();
    }
    let grads = loss(&dit).backward().unwrap();
    let mut names: Vec<_> = vars.keys().cloned().collect();
    names.sort();
    assert!(names.iter().any(|n| n.starts_with("text.")) && names.iter().any(|n| n.starts_with("direction.")), "{names:?}");
    for (name, var) in vars {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name} received no gradient"));
        let n = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(n > 0.0, "{name} has an all-zero gradient");
    }
}

/// The tiny config with captions, direction and anchors, trained once per test process.
fn tiny_text_checkpoint() -> std::path::PathBuf {
    static ONCE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let base = tmpdir("wm-text");
        let data = base.join("data");
        synthetic_dataset(&data);
        let path = tiny_config(&base, "text.json", |cfg| {
            cfg["dynamics"]["text"] = serde_json::json!({"buckets": 128, "max_tokens": 16, "dim": 16, "depth": 1, "heads": 2});
            cfg["dynamics"]["bidirectional"] = true.into();
            // Two frames a call: every mode runs through chunks and cuts odd horizons to length.
            cfg["dynamics"]["chunk"] = 2.into();
            for (k, v) in [("text_fraction", 0.5), ("reverse_fraction", 0.3), ("anchor_fraction", 0.3)] {
                cfg["dynamics"][k] = v.into();
            }
        });
        assert!(train_with(&path, &data, &base.join("run"), &[]));
        base.join("run/world_model.safetensors")
    })
    .clone()
}

fn frame(shift: usize) -> Vec<u8> {
    let mut f = vec![30u8; 64 * 64 * 3];
    for y in 20..26 {
        for x in 10 + shift..16 + shift {
            f[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3].copy_from_slice(&[220, 40, 40]);
        }
    }
    f
}

#[test]
fn every_generation_mode_answers_with_the_right_shapes_deterministically() {
    let wm = WorldModel::load(&tiny_text_checkpoint()).unwrap();
    assert!(wm.meta.dit.text.is_some() && wm.meta.dit.bidirectional);
    let s = SamplerConfig { text_guidance: 2.0, ..SamplerConfig::default() };
    let video: Vec<Vec<u8>> = (0..6).map(|i| frame(2 * i)).collect();
    let reqs = vec![
        Generate::image_to_video(&video[0], None, Some("the red moves right. the blue stays still."), 5).sampled(2, 1),
        Generate::edit(&video, 0.5, Some(vec![vec![0.5, 0.0]; 5]), None).unwrap(),
        Generate::interpolate(&video[..2], &video[4..], 3, 2).unwrap(),
        Generate::extend(&video, 4, true, None, Some("red goes left"), 2).unwrap(),
    ];
    let a = wm.generate(&reqs, &s).unwrap();
    let b = wm.generate(&reqs, &s).unwrap();
    for ((r, x), y) in reqs.iter().zip(&a).zip(&b) {
        assert_eq!(x.frames.len(), r.samples);
        assert_eq!(x.frames[0].len(), r.horizon);
        assert_eq!(x.latents.dims()[..2], [r.samples, r.horizon]);
        assert_eq!(x.frames, y.frames, "same seed, same video");
    }
    assert_eq!(reqs[3].direction, Direction::Backward);
    // Frames decoded to re-encode them are reused as outputs, in chunks and backwards too:
    // every frame is still its own latent decoded.
    let r = SamplerConfig { reencode: true, reencode_every: 1, ..s };
    for g in wm.generate(&reqs, &r).unwrap() {
        assert_frames_decode_their_latents(&wm, &g.frames, &g.latents);
    }
    // Another caption gives another video.
    let other = Generate::image_to_video(&video[0], None, Some("the red moves up"), 5).sampled(2, 1);
    assert_ne!(wm.generate(&[other], &s).unwrap()[0].frames, a[0].frames);
    // Strength 0 returns the input itself; strength 1 forgets it.
    let kept = wm.edit_video(&video, 0.0, None, None, 2, 3, &s).unwrap();
    assert_eq!(kept.frames, vec![video[1..].to_vec(); 2]);
    let refs: Vec<&[u8]> = video[1..].iter().map(|f| f.as_slice()).collect();
    let z: Vec<f32> = wm.encode(&refs).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(kept.latents.get(1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), z);
    let fresh = wm.edit_video(&video, 1.0, None, None, 1, 3, &s).unwrap();
    let plain = wm.generate(&[Generate { context: vec![video[0].clone()], horizon: 5, samples: 1, seed: 3, ..Default::default() }], &s).unwrap();
    assert_eq!(fresh.frames, plain[0].frames, "strength 1 is plain generation");
}

#[test]
fn bad_generation_requests_are_errors_with_reasons() {
    let wm = WorldModel::load(&tiny_text_checkpoint()).unwrap();
    let s = SamplerConfig::default();
    let f = frame(0);
    let err = |g: Generate| wm.generate(&[g], &s).unwrap_err().to_string();
    assert!(err(Generate::image_to_video(&f[..100], None, None, 4)).contains("64x64x3"));
    assert!(err(Generate::image_to_video(&f, None, Some("  "), 4)).contains("empty"));
    assert!(err(Generate::image_to_video(&f, Some(vec![vec![0.0, f32::NAN]; 4]), None, 4)).contains("not finite"));
    assert!(err(Generate::image_to_video(&f, Some(vec![vec![0.0, 0.0]; 3]), None, 4)).contains("one per frame"));
    assert!(err(Generate::image_to_video(&f, None, None, 0)).contains("horizon"));
    let e = Generate::edit(&[f.clone(), f.clone()], 1.5, None, None).unwrap();
    assert!(err(e).contains("strength"));
    assert!(Generate::edit(std::slice::from_ref(&f), 0.5, None, None).unwrap_err().to_string().contains("at least 2"));
    let small = vec![0u8; 32 * 32 * 3];
    assert!(Generate::interpolate(std::slice::from_ref(&f), &[small], 4, 2).unwrap_err().to_string().contains("same resolution"));
    assert!(wm.validate_generate(&Generate::image_to_video(&f, None, Some("red goes left"), 4)).is_ok());
    // A checkpoint without captions or direction says so.
    let plain = WorldModel::load(&crate::world_model::tiny_checkpoint()).unwrap();
    let g = Generate::image_to_video(&vec![0u8; 64 * 64 * 3], None, Some("hello"), 4);
    assert!(plain.generate(&[g], &s).unwrap_err().to_string().contains("without captions"));
    let back = Generate::extend(&[vec![0u8; 64 * 64 * 3]], 4, true, None, None, 4).unwrap();
    assert!(plain.generate(&[back], &s).unwrap_err().to_string().contains("forwards only"));
}

#[test]
fn spread_cross_fade_and_correlation_on_fixed_inputs() {
    let a = [10u8, 10, 10, 0, 0, 0];
    let b = [30u8, 30, 30, 0, 0, 0];
    let s = spread_map(&[&a, &b]);
    assert_eq!(s, vec![10.0, 0.0]);
    let fade = cross_fade(&a, &b, 3);
    assert_eq!(fade.len(), 3);
    assert_eq!(fade[1][0], 20);
    assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
    assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    assert_eq!(pearson(&[1.0, 1.0], &[0.0, 5.0]), 0.0);
}

#[test]
fn blobs_and_path_score_tell_a_moving_body_from_a_cross_fade() {
    use foresight::eval::metrics::{blobs, path_score};
    let colour = [220, 40, 40];
    let path: Vec<Vec<u8>> = (0..5).map(|i| frame(4 * i)).collect();
    assert_eq!(blobs(&path[0], 64, colour).len(), 1);
    let refs: Vec<&[u8]> = path[1..4].iter().map(|f| f.as_slice()).collect();
    let start = [Some([12.5f32, 22.5])];
    assert_eq!(path_score(&refs, 64, &[colour], &start, 8.0), 1.0);
    let fade = cross_fade(&path[0], &path[4], 3);
    let refs: Vec<&[u8]> = fade.iter().map(|f| f.as_slice()).collect();
    assert!(path_score(&refs, 64, &[colour], &start, 8.0) < 0.5);
}

#[test]
fn video_folders_and_images_of_another_size_are_read_only_as_asked() {
    use foresight::media::{read_frame_sized, read_video, write_png, write_video};
    let dir = tmpdir("video-io");
    let frames: Vec<Vec<u8>> = (0..3).map(|i| frame(3 * i)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    write_video(&dir.join("v"), &refs, 64, 64).unwrap();
    let (back, h, w) = read_video(&dir.join("v")).unwrap();
    assert_eq!((back, h, w), (frames.clone(), 64, 64));
    // An image of another size is an error naming both sizes, unless resizing is asked for.
    let small = dir.join("small.png");
    write_png(&small, &vec![200u8; 32 * 32 * 3], 32, 32).unwrap();
    let err = read_frame_sized(&small, [64, 64], false).unwrap_err().to_string();
    assert!(err.contains("32x32") && err.contains("64x64") && err.contains("--resize"), "{err}");
    let resized = read_frame_sized(&small, [64, 64], true).unwrap();
    assert_eq!(resized.len(), 64 * 64 * 3);
    assert!(resized.iter().all(|&v| v == 200));
    // A folder mixing sizes, or with no frames, is refused.
    write_png(&dir.join("v/frame_0003.png"), &vec![0u8; 32 * 32 * 3], 32, 32).unwrap();
    assert!(read_video(&dir.join("v")).unwrap_err().to_string().contains("32x32"));
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    assert!(read_video(&dir.join("empty")).unwrap_err().to_string().contains("no PNG"));
}

#[test]
fn training_on_several_datasets_needs_one_scene() {
    use crate::world_model::synthetic_dataset_dims;
    let base = tmpdir("multi-data");
    let (a, b) = (base.join("a"), base.join("b"));
    synthetic_dataset(&a);
    synthetic_dataset_dims(&b, 7000, 3);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["train", "--data"])
        .arg(&a)
        .arg("--data")
        .arg(&b)
        .arg("--config")
        .arg(root().join("configs/tiny.json"))
        .arg("--out")
        .arg(base.join("run"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3-d actions do not match") && err.contains(&*b.display().to_string()), "{err}");
}
