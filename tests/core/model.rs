use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use foresight::model::frames::{frames_to_tensor, psnr, tensor_to_frames};
use foresight::model::autoencoder::AeKind;
use foresight::model::{Autoencoder, AutoencoderConfig};
use foresight::train::{AdamW, AdamWConfig};

#[test]
fn every_autoencoder_tensor_gets_a_gradient() {
    // The patch transformer with its linear head and with the pixel head (per-pixel MLP), and
    // the convolutional autoencoder without and with the full-resolution refinement, and with a
    // third downsampling step (`patch` 8).
    for config in [AutoencoderConfig::tiny(), AutoencoderConfig::tiny().with_pixel_head(4, 8), AutoencoderConfig::tiny_conv(), AutoencoderConfig::tiny_conv().with_refinement(4, 1), AutoencoderConfig { patch: 8, ..AutoencoderConfig::tiny_conv() }] {
        gradients_reach_every_tensor(config);
    }
}

fn gradients_reach_every_tensor(config: AutoencoderConfig) {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let pixel_head = config.pixel_features > 0;
    let patch = config.kind == AeKind::Patch;
    let refine = config.refine_width > 0;
    let (lc, lh, lw) = config.latent_shape();
    let ae = Autoencoder::new(config, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    let x = Tensor::rand(-1f32, 1f32, (2, 3, 16, 16), &dev).unwrap();
    let z = ae.encode(&x).unwrap();
    assert_eq!(z.dims(), &[2, lc, lh, lw]);
    let y = ae.decode(&z).unwrap();
    assert_eq!(y.dims(), x.dims());
    let loss_of = || ae.decode(&ae.encode(&x).unwrap()).unwrap().sub(&x).unwrap().sqr().unwrap().mean_all().unwrap();
    let vars = vm.data().lock().unwrap().clone();
    // After one optimiser step: the refinement's output layer starts at zero (a decoder
    // trained without it starts unchanged), so the blocks before it are silent at step 0.
    let mut opt = AdamW::new(vars.clone(), AdamWConfig { lr: 1e-2, ..Default::default() }).unwrap();
    opt.step(&loss_of().backward().unwrap()).unwrap();
    let grads = loss_of().backward().unwrap();
    assert!(vars.len() > 20);
    if patch {
        assert_eq!(vars.contains_key("decoder.pixel_fc1.weight"), pixel_head);
        assert_eq!(vars.contains_key("decoder.out.weight"), !pixel_head);
    }
    assert_eq!(vars.contains_key("decoder.refine.out.weight"), refine);
    for (name, var) in vars {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name} received no gradient"));
        let n = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(n > 0.0, "{name} has an all-zero gradient");
    }
}

#[test]
fn adamw_state_round_trips_and_training_lowers_the_loss() {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let ae = Autoencoder::new(AutoencoderConfig::tiny(), VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    let x = Tensor::rand(-1f32, 1f32, (4, 3, 16, 16), &dev).unwrap();
    let vars = vm.data().lock().unwrap().clone();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig { lr: 3e-3, ..Default::default() }).unwrap();
    let loss_of = || ae.decode(&ae.encode(&x).unwrap()).unwrap().sub(&x).unwrap().sqr().unwrap().mean_all().unwrap();
    let first = loss_of().to_scalar::<f32>().unwrap();
    for _ in 0..30 {
        let g = loss_of().backward().unwrap();
        opt.step(&g).unwrap();
    }
    let last = loss_of().to_scalar::<f32>().unwrap();
    assert!(last < first * 0.8, "loss {first} -> {last}");
    // A second optimiser restored from the state takes the identical next step.
    let state = opt.state();
    let snapshot: Vec<(String, Tensor)> = vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().copy().unwrap())).collect();
    let g = loss_of().backward().unwrap();
    opt.step(&g).unwrap();
    let after_a: Vec<Vec<f32>> = snapshot.iter().map(|(k, _)| vars[k].as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect();
    for (k, t) in &snapshot {
        vars[k].set(t).unwrap();
    }
    let mut opt2 = AdamW::new(vars.clone(), AdamWConfig { lr: 3e-3, ..Default::default() }).unwrap();
    opt2.load_state(&state, 30).unwrap();
    let g = loss_of().backward().unwrap();
    opt2.step(&g).unwrap();
    let after_b: Vec<Vec<f32>> = snapshot.iter().map(|(k, _)| vars[k].as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect();
    assert_eq!(after_a, after_b);
}

#[test]
fn frame_tensor_round_trip_and_psnr() {
    let f: Vec<u8> = (0..8 * 8 * 3).map(|i| (i * 7 % 256) as u8).collect();
    let t = frames_to_tensor(&[&f, &f], 8, 8, &Device::Cpu).unwrap();
    assert_eq!(t.dims(), &[2, 3, 8, 8]);
    let back = tensor_to_frames(&t).unwrap();
    assert_eq!(back[1], f);
    assert_eq!(psnr(&f, &f), 100.0);
    let mut g = f.clone();
    g[0] = g[0].wrapping_add(10);
    assert!(psnr(&f, &g) > 40.0);
    assert!(frames_to_tensor(&[&f[..10]], 8, 8, &Device::Cpu).is_err());
}

#[test]
fn pixel_shuffle_inverts_unshuffle() {
    use foresight::model::autoencoder::{pixel_shuffle, pixel_unshuffle};
    let x = Tensor::arange(0f32, 2.0 * 3.0 * 8.0 * 8.0, &Device::Cpu).unwrap().reshape((2, 3, 8, 8)).unwrap();
    let y = pixel_unshuffle(&x, 2).unwrap();
    assert_eq!(y.dims(), &[2, 12, 4, 4]);
    // Channel 0 of the unshuffled map is the top-left pixel of each 2×2 cell of channel 0.
    let v: Vec<f32> = y.get(0).unwrap().get(0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(&v[..2], &[0.0, 2.0]);
    let z = pixel_shuffle(&y, 2).unwrap();
    assert_eq!(z.flatten_all().unwrap().to_vec1::<f32>().unwrap(), x.flatten_all().unwrap().to_vec1::<f32>().unwrap());
}

#[test]
#[ignore = "timing probe: cargo test -p foresight --test core -- --ignored --nocapture"]
fn autoencoder_step_time() {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let ae = Autoencoder::new(AutoencoderConfig::small(), VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    let x = Tensor::rand(-1f32, 1f32, (16, 3, 64, 64), &dev).unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let loss = ae.decode(&ae.encode(&x).unwrap()).unwrap().sub(&x).unwrap().sqr().unwrap().mean_all().unwrap();
        let t1 = t.elapsed();
        let _g = loss.backward().unwrap();
        println!("batch 16: forward {:?}, forward+backward {:?}", t1, t.elapsed());
    }
}
