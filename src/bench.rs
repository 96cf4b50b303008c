//! `foresight bench`: speed figures measured in one run, with the machine's matmul peak measured
//! first so that the model's GFLOP/s can be read as a fraction of it.

use std::time::Instant;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::dit::DitInput;
use crate::world_model::{Query, WorldModel};

/// The figures (`--json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    /// f32 matmul (1024³) GFLOP/s, best of several.
    pub matmul_peak_gflops: f64,
    /// Predicted, decoded frames per second for one stream (one query, horizon 32).
    pub frames_per_s_single: f64,
    /// Predicted latent frames per second for 64 queries at once (horizon 8, no decoding).
    pub frames_per_s_batched_latent: f64,
    /// Autoencoder round trips (decode a latent to an 8-bit frame, encode it again) per second at
    /// batch 64: what re-encoding and the task cost's decoding spend per imagined frame.
    #[serde(default)]
    pub ae_roundtrips_per_s: f64,
    /// One stream's frame, in parts (milliseconds, best of several, batch 1): a transformer
    /// call (the sampler makes `sampler_steps` of them a frame, more with guidance), decoding a
    /// latent to an 8-bit frame (every output frame), encoding a frame (every `reencode_every`-th
    /// frame when the sampler re-encodes; that frame's decode is its output's, decoded once).
    #[serde(default)]
    pub single_dit_call_ms: f64,
    /// See `single_dit_call_ms`.
    #[serde(default)]
    pub single_decode_ms: f64,
    /// See `single_dit_call_ms`.
    #[serde(default)]
    pub single_encode_ms: f64,
    /// The frame rate those parts add up to with the checkpoint's sampler (what one stream
    /// would reach with nothing else in the way), beside `frames_per_s_single` measured.
    #[serde(default)]
    pub single_parts_frames_per_s: f64,
    /// Dynamics training steps per second at batch 32 (forward, backward, AdamW).
    pub train_steps_per_s: f64,
    /// Achieved GFLOP/s of the transformer's forward pass at batch 64.
    pub dit_forward_gflops: f64,
    /// That as a fraction of the matmul peak.
    pub dit_fraction_of_peak: f64,
    /// Planning seconds per action at horizon 8 with 64 candidates, one CEM round, replanning
    /// every action (the aim: under 1 s).
    pub plan_seconds_per_action_h8_c64: f64,
    /// Planning seconds per action at `foresight-sim plan`'s defaults (horizon 8, 16 candidates,
    /// one round, 4 actions per plan).
    pub plan_seconds_per_action_default: f64,
    /// Sampler steps used.
    pub sampler_steps: usize,
    /// Threads available.
    pub threads: usize,
}

fn best_of<F: FnMut() -> anyhow::Result<()>>(n: usize, mut f: F) -> anyhow::Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Runs every measurement.
pub fn run(wm: &WorldModel) -> anyhow::Result<BenchReport> {
    let dev = wm.device().clone();
    let a = Tensor::randn(0f32, 1.0, (1024, 1024), &dev)?;
    let b = Tensor::randn(0f32, 1.0, (1024, 1024), &dev)?;
    let t = best_of(5, || {
        a.matmul(&b)?;
        Ok(())
    })?;
    let peak = 2.0 * 1024f64.powi(3) / t / 1e9;
    let [h, w] = wm.meta.resolution;
    let frame = vec![64u8; h * w * 3];
    let k = wm.meta.context;
    let dim = wm.meta.action_spec.dim;
    let q = |horizon: usize, seed: u64| Query { context: vec![frame.clone(); k], past_actions: None, actions: vec![vec![0.0; dim]; horizon], samples: 1, seed };
    let s = wm.meta.sampler;
    let single = best_of(2, || {
        wm.predict(&q(32, 1), &s)?;
        Ok(())
    })?;
    let qs: Vec<Query> = (0..64).map(|i| q(8, i)).collect();
    let starts: Vec<Tensor> = qs.iter().map(|q| wm.encode(&q.context.iter().map(|f| f.as_slice()).collect::<Vec<_>>())).collect::<Result<_, _>>()?;
    let batched = best_of(2, || {
        wm.rollout_latent(&qs, &starts, &s)?;
        Ok(())
    })?;
    let z64 = Tensor::cat(&starts.iter().map(|z| z.narrow(0, 0, 1)).collect::<candle_core::Result<Vec<_>>>()?, 0)?;
    let roundtrip = best_of(2, || {
        let frames = wm.decode(&z64)?;
        wm.encode(&frames.iter().map(|f| f.as_slice()).collect::<Vec<_>>())?;
        Ok(())
    })?;
    let [lc, lh, lw] = wm.meta.dit.latent;
    let slots = wm.meta.dit.action_slots();
    let inputs = |bsz: usize| -> candle_core::Result<Vec<Tensor>> {
        Ok(vec![
            Tensor::randn(0f32, 1.0, (bsz, wm.meta.dit.chunk * lc, lh, lw), &dev)?,
            Tensor::randn(0f32, 1.0, (bsz, k, lc, lh, lw), &dev)?,
            Tensor::ones((bsz, k), DType::F32, &dev)?,
            Tensor::full(0.5f32, bsz, &dev)?,
            Tensor::zeros(bsz, DType::F32, &dev)?,
            Tensor::randn(0f32, 1.0, (bsz, slots, dim), &dev)?,
            Tensor::ones((bsz, slots), DType::F32, &dev)?,
        ])
    };
    let fwd = |x: &[Tensor]| {
        wm.dit.forward(&DitInput { noisy: &x[0], context: &x[1], context_mask: &x[2], tau: &x[3], context_noise: &x[4], actions: &x[5], action_mask: &x[6], drop_actions: &x[4], extras: None })
    };
    let x1 = inputs(1)?;
    let dit1 = best_of(10, || {
        fwd(&x1)?;
        Ok(())
    })?;
    let z1 = starts[0].narrow(0, 0, 1)?;
    let decode1 = best_of(10, || {
        wm.decode(&z1)?;
        Ok(())
    })?;
    let frame1 = wm.decode(&z1)?.remove(0);
    let encode1 = best_of(10, || {
        wm.encode(&[frame1.as_slice()])?;
        Ok(())
    })?;
    let calls = s.steps as f64 * if (s.guidance - 1.0).abs() > 1e-6 { 2.0 } else { 1.0 } / wm.meta.dit.chunk as f64;
    // A re-encoded frame's decode is its output's (the rollout keeps it), so it adds an encode.
    let per_reencode = if s.reencode { encode1 / s.reencode_every.max(1) as f64 } else { 0.0 };
    let parts = calls * dit1 + decode1 + per_reencode;
    let x64 = inputs(64)?;
    let t_fwd = best_of(3, || {
        fwd(&x64)?;
        Ok(())
    })?;
    let gflops = wm.dit.flops_per_sample() * 64.0 / t_fwd / 1e9;
    let train_steps_per_s = crate::train::dynamics::measure_train_speed(&wm.meta, 32, 3)?;
    // Planning in imagination: candidates rolled forward in latent space and scored against a
    // goal latent (the task cost adds one decode of each candidate's last frame).
    let plan_seconds = |candidates: usize| -> anyhow::Result<f64> {
        use crate::plan::model::{ModelCost, ModelImagination};
        use crate::plan::{Planner, PlannerConfig};
        let goal = wm.encode(&[frame.as_slice()])?.flatten_all()?.to_vec1::<f32>()?;
        let spec = &wm.meta.action_spec;
        let cfg = PlannerConfig { horizon: 8, candidates, iterations: 1, elites: (candidates / 8).max(1), ..PlannerConfig::default() };
        let mut planner = Planner::new(cfg, spec.low.clone(), spec.high.clone()).map_err(|e| anyhow::anyhow!(e))?;
        let past = Some(vec![vec![0.0; dim]; k - 1]);
        best_of(1, || {
            let mut imag = ModelImagination::new(wm, vec![frame.clone(); k], past.clone(), s, ModelCost::GoalLatent(goal.clone()), 7)?;
            planner.plan(&mut imag)?;
            Ok(())
        })
    };
    let plan_c64 = plan_seconds(64)?;
    let plan_default = plan_seconds(16)? / 4.0;
    Ok(BenchReport {
        matmul_peak_gflops: peak,
        frames_per_s_single: 32.0 / single,
        frames_per_s_batched_latent: 64.0 * 8.0 / batched,
        ae_roundtrips_per_s: 64.0 / roundtrip,
        single_dit_call_ms: dit1 * 1e3,
        single_decode_ms: decode1 * 1e3,
        single_encode_ms: encode1 * 1e3,
        single_parts_frames_per_s: 1.0 / parts,
        train_steps_per_s,
        dit_forward_gflops: gflops,
        dit_fraction_of_peak: gflops / peak,
        plan_seconds_per_action_h8_c64: plan_c64,
        plan_seconds_per_action_default: plan_default,
        sampler_steps: s.steps,
        threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    })
}

