//! `foresight`: the core command line (import; the model commands arrive with issue 3).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "foresight", version, about = "Foresight: a learned world simulator (core tools)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags shared by the generation commands.
#[derive(clap::Args)]
struct GenArgs {
    /// The checkpoint's .safetensors file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Output folder: frame_NNNN.png (the video), NAME.gif, strip.png.
    #[arg(long)]
    out: PathBuf,
    /// A caption of what should happen (the checkpoint must have been trained with text).
    #[arg(long)]
    text: Option<String>,
    /// Actions, one JSON line `{"action": [..]}` per generated frame.
    #[arg(long)]
    actions: Option<PathBuf>,
    /// Different futures to draw (several also give a per-pixel spread map).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Noise seed: the same seed, the same video.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Classifier-free guidance scale on the caption (1: none).
    #[arg(long, default_value_t = 3.0)]
    text_guidance: f32,
    /// Sampler steps (default: the checkpoint's).
    #[arg(long)]
    steps: Option<usize>,
}

impl GenArgs {
    fn load(&self) -> anyhow::Result<(foresight::world_model::WorldModel, foresight::model::diffusion::SamplerConfig, Option<Vec<Vec<f32>>>)> {
        let wm = foresight::world_model::WorldModel::load(&self.checkpoint)?;
        let mut sampler = wm.meta.sampler;
        sampler.text_guidance = self.text_guidance;
        if let Some(s) = self.steps {
            sampler.steps = s;
        }
        if let Some(t) = &self.text {
            wm.tokenize(t).map_err(|e| anyhow::anyhow!("--text: {e}"))?;
        }
        let actions = match &self.actions {
            Some(p) => Some(foresight::media::read_action_lines(p)?),
            None => None,
        };
        Ok((wm, sampler, actions))
    }
}

fn read_video_for(wm: &foresight::world_model::WorldModel, dir: &std::path::Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let (frames, h, w) = foresight::media::read_video(dir)?;
    let [mh, mw] = wm.meta.resolution;
    anyhow::ensure!((h, w) == (mh, mw), "{}: frames are {h}x{w}; the model takes {mh}x{mw}", dir.display());
    Ok(frames)
}

fn finish_generation(wm: &foresight::world_model::WorldModel, a: &GenArgs, name: &str, out: &foresight::generate::VideoOutputs, g: &foresight::generate::Generated, secs: f64) -> anyhow::Result<()> {
    let [h, w] = wm.meta.resolution;
    let (gif, strip) = foresight::generate::write_outputs(&a.out, name, out, &g.frames, h, w)?;
    let n: usize = g.frames.iter().map(|s| s.len()).sum();
    println!("{n} frames generated in {secs:.2} s ({:.1} frames/s); wrote {}, {} and {}/frame_*.png", n as f64 / secs.max(1e-9), gif.display(), strip.display(), a.out.display());
    if g.frames.len() > 1 {
        let last = g.frames[0].len() - 1;
        let spread = foresight::generate::spread_map(&g.frames.iter().map(|s| s[last].as_slice()).collect::<Vec<_>>());
        println!("mean per-pixel spread over {} samples at the last frame: {:.2} (0-255)", g.frames.len(), spread.iter().sum::<f32>() / spread.len().max(1) as f32);
    }
    Ok(())
}

#[derive(Subcommand)]
enum Cmd {
    /// Turn a folder of episodes (PNG frames + actions.jsonl) into a dataset.
    Import {
        /// Folder with one sub-folder per episode.
        #[arg(long)]
        from: PathBuf,
        /// Output dataset directory (must not hold a dataset already).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write episodes of a dataset as a PNG grid (one row per episode) and a GIF of the first.
    Show {
        /// Dataset directory.
        #[arg(long)]
        data: PathBuf,
        /// First episode.
        #[arg(long, default_value_t = 0)]
        episode: usize,
        /// Number of episodes (rows).
        #[arg(long, default_value_t = 4)]
        count: usize,
        /// Frames per row (evenly spaced).
        #[arg(long, default_value_t = 12)]
        frames: usize,
        /// Output PNG (a GIF of the first episode is written beside it).
        #[arg(long)]
        out: PathBuf,
        /// Instead: write frame T of `--episode` alone, at its own resolution (for
        /// `foresight generate --from-image` and the examples).
        #[arg(long)]
        single: Option<usize>,
    },
    /// A video from one image, steered by actions and/or a caption.
    Generate {
        #[command(flatten)]
        common: GenArgs,
        /// The start image (PNG or any format `image` reads).
        #[arg(long)]
        from_image: PathBuf,
        /// Resize an image of another size to the model's resolution (otherwise an error).
        #[arg(long)]
        resize: bool,
        /// Frames to generate (default: the number of actions, else 16).
        #[arg(long)]
        frames: Option<usize>,
    },
    /// Video to video (SDEdit): noise a video to a strength and regenerate it under new actions
    /// and/or a new caption. The first frame is kept as the starting point.
    Edit {
        #[command(flatten)]
        common: GenArgs,
        /// The input video: a folder of PNG frames (`frame_*.png`, or every `.png` in name order).
        #[arg(long)]
        video: PathBuf,
        /// 0 returns the input; 1 ignores it.
        #[arg(long)]
        strength: f32,
    },
    /// A transition that starts as video A ends and ends where video B starts.
    Interpolate {
        #[command(flatten)]
        common: GenArgs,
        /// First video (a folder of PNG frames).
        #[arg(long)]
        a: PathBuf,
        /// Second video.
        #[arg(long)]
        b: PathBuf,
        /// Frames of the transition.
        #[arg(long, default_value_t = 8)]
        frames: usize,
    },
    /// Extend a video forwards or backwards in time.
    Extend {
        #[command(flatten)]
        common: GenArgs,
        /// The video (a folder of PNG frames).
        #[arg(long)]
        video: PathBuf,
        /// Frames to add.
        #[arg(long, default_value_t = 16)]
        frames: usize,
        /// Add them before the first frame instead of after the last.
        #[arg(long)]
        backward: bool,
    },
    /// Train the world model: stage 1 the autoencoder (then frozen), stage 2 the dynamics.
    Train {
        /// Dataset directory; repeat the flag to train on several datasets of one scene.
        #[arg(long, required = true)]
        data: Vec<PathBuf>,
        /// Training recipe (JSON; see configs/).
        #[arg(long)]
        config: PathBuf,
        /// Output directory for checkpoints, state and curves.
        #[arg(long)]
        out: PathBuf,
        /// Continue exactly where a killed run stopped (weights, optimiser moments, step).
        #[arg(long)]
        resume: bool,
        /// Stop (with a checkpoint) after this many optimiser steps in this invocation; continue
        /// later with --resume. For time-boxed sessions.
        #[arg(long)]
        stop_after: Option<u64>,
        /// Keep the frozen autoencoder's latents of every training episode in this folder (one
        /// file per episode, keyed by the encoder's weights, the latent scale and the episode's frames), so a
        /// later run on the same data and autoencoder skips encoding (~10 min for 72k frames).
        #[arg(long)]
        latent_cache: Option<PathBuf>,
        /// Fine-tune a trained world model on this data: its frozen autoencoder is kept (stage 1
        /// is skipped) and its transformer is the starting point of stage 2.
        #[arg(long)]
        init: Option<PathBuf>,
        /// Train a fresh transformer on the frozen autoencoder of this world-model checkpoint
        /// (stage 1 is skipped; the config's transformer sizes are used). For comparing
        /// transformers, or latent spaces, at an equal budget.
        #[arg(long, conflicts_with = "init")]
        autoencoder: Option<PathBuf>,
    },
    /// Measure a checkpoint on held-out episodes against the truth and the baselines.
    Eval {
        /// The checkpoint's .safetensors file.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Held-out dataset (seeds never trained on).
        #[arg(long)]
        data: PathBuf,
        /// Context frames.
        #[arg(long, default_value_t = 4)]
        context: usize,
        /// Horizon.
        #[arg(long, default_value_t = 16)]
        horizon: usize,
        /// First frame of each window (the context starts there; 0 is the protocol's).
        #[arg(long, default_value_t = 0)]
        start: usize,
        /// Second, long rollout (0 skips it).
        #[arg(long, default_value_t = 64)]
        long_horizon: usize,
        /// At most this many episodes.
        #[arg(long, default_value_t = 32)]
        episodes: usize,
        /// Sampler steps (default: the checkpoint's).
        #[arg(long)]
        steps: Option<usize>,
        /// Sampler starting-noise scale (default: the checkpoint's; 0 draws the mean future).
        #[arg(long)]
        temperature: Option<f32>,
        /// Re-encode each predicted chunk as images before it becomes context: on, off (default:
        /// the checkpoint's).
        #[arg(long)]
        reencode: Option<OnOff>,
        /// With re-encoding, re-encode every N-th chunk only (default: the checkpoint's, 1).
        #[arg(long)]
        reencode_every: Option<usize>,
        /// Classifier-free guidance weight on the actions (default: the checkpoint's; 1 is off).
        #[arg(long)]
        guidance: Option<f32>,
        /// Context noise level the transformer is told its context carries (training draws it
        /// up to `max_context_noise`; default: the checkpoint's).
        #[arg(long)]
        context_noise: Option<f32>,
        /// Noise seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Report (JSON); the Markdown report and PNG plots are written beside it.
        #[arg(long)]
        json: PathBuf,
    },
    /// Predict from a dataset episode and write truth | prediction | difference as GIF + PNG.
    Rollout {
        /// The checkpoint's .safetensors file.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Dataset.
        #[arg(long)]
        data: PathBuf,
        /// Episode index.
        #[arg(long, default_value_t = 0)]
        episode: usize,
        /// Context frames.
        #[arg(long, default_value_t = 4)]
        context: usize,
        /// Horizon.
        #[arg(long, default_value_t = 16)]
        horizon: usize,
        /// Futures to draw (one row each).
        #[arg(long, default_value_t = 1)]
        samples: usize,
        /// Noise seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output GIF; the PNG strip is written beside it.
        #[arg(long)]
        out: PathBuf,
        /// Also show the autoencoder's round trip of the true frames (encode, decode) as the
        /// last sample row: the sharpest a prediction can be drawn.
        #[arg(long)]
        reconstruct: bool,
    },
    /// Speed: predicted frames/s (one stream, batched in latent space), training steps/s, and
    /// the transformer's GFLOP/s against the matmul peak measured first.
    Bench {
        /// The checkpoint's .safetensors file.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Write the figures here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Copy a trained world model for shipping: weights in f16 (half the size), JSON beside them.
    Export {
        /// The trained checkpoint's .safetensors file.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Output .safetensors file (the .json is written beside it).
        #[arg(long)]
        out: PathBuf,
        /// Keep f32 weights.
        #[arg(long)]
        f32: bool,
        /// Default sampler temperature written into the JSON (choose it on a validation set, not
        /// on the evaluation episodes); default: the checkpoint's.
        #[arg(long)]
        temperature: Option<f32>,
        /// Default sampler re-encoding written into the JSON: off, or every N-th chunk (1: each
        /// one); default: the checkpoint's. Choose it on a validation set too.
        #[arg(long)]
        reencode_every: Option<foresight::model::diffusion::ReencodeEvery>,
        /// Default sampler Euler steps per predicted frame written into the JSON (1 to 8);
        /// default: the checkpoint's. Choose it on a validation set too.
        #[arg(long)]
        steps: Option<usize>,
        /// Default sampler context noise level written into the JSON; default: the checkpoint's.
        /// Choose it on a validation set too.
        #[arg(long)]
        context_noise: Option<f32>,
        /// Take the autoencoder's decoder from this world-model (or bare `autoencoder.safetensors`)
        /// checkpoint, whose encoder must be the same, weight for weight (a decoder fine-tuned
        /// with `"freeze_encoder": true`, possibly with another head or a full-resolution
        /// refinement): the latent space the transformer knows is unchanged, the frames are
        /// drawn by the new decoder.
        #[arg(long)]
        decoder_from: Option<PathBuf>,
        /// Average the transformer's weights with these checkpoints' (repeatable; checkpoints of
        /// one training trajectory, on the same autoencoder): a post-hoc weight average, as an
        /// exponential moving average does during training.
        #[arg(long)]
        average: Vec<PathBuf>,
        /// Add every episode seed of this dataset to the checkpoint's training seeds (repeatable),
        /// so that `eval` refuses it: for checkpoints fine-tuned before `--init` passed its
        /// checkpoint's seeds on.
        #[arg(long)]
        train_seeds_from: Vec<PathBuf>,
    },
    /// Print a dataset's summary: episodes, frames, contact fraction, a few captions.
    Inspect {
        /// Dataset directory.
        #[arg(long)]
        data: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    foresight::alloc::keep_freed_memory();
    let cli = Cli::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.cmd {
        Cmd::Import { from, out } => {
            let m = foresight::data::import::import_dir(&from, &out, command).with_context(|| format!("importing {}", from.display()))?;
            let frames: usize = m.episodes.iter().map(|e| e.steps + 1).sum();
            println!(
                "imported {} episodes, {frames} frames of {}x{}, {}-d actions{} into {}",
                m.episodes.len(),
                m.resolution[0],
                m.resolution[1],
                m.action_spec.dim,
                if m.action_spec.discrete { " (one-hot)" } else { "" },
                out.display()
            );
        }
        Cmd::Show { data, episode, single: Some(t), out, .. } => {
            let mut ds = foresight::data::Dataset::open(&data)?;
            let [h, w] = ds.manifest.resolution;
            anyhow::ensure!(episode < ds.len(), "no episode {episode} in {}", data.display());
            let e = ds.episode(episode)?;
            anyhow::ensure!(t < e.num_frames(), "episode {episode} has {} frames, no frame {t}", e.num_frames());
            foresight::media::write_png(&out, e.frame(t), h, w)?;
            println!("wrote frame {t} of episode {episode} (seed {}) to {}", e.seed, out.display());
        }
        Cmd::Show { data, episode, count, frames, out, single: None } => {
            let mut ds = foresight::data::Dataset::open(&data)?;
            let [h, w] = ds.manifest.resolution;
            let eps: Vec<_> = (episode..(episode + count).min(ds.len())).map(|i| ds.episode(i)).collect::<Result<_, _>>()?;
            anyhow::ensure!(!eps.is_empty(), "no episode {episode} in {}", data.display());
            let rows: Vec<Vec<&[u8]>> = eps
                .iter()
                .map(|e| {
                    let n = e.num_frames();
                    let k = frames.clamp(1, n);
                    (0..k).map(|j| e.frame(j * (n - 1) / (k - 1).max(1))).collect()
                })
                .collect();
            foresight::media::write_png_grid(&out, &rows, h, w, 2)?;
            let gif = out.with_extension("gif");
            let all: Vec<&[u8]> = (0..eps[0].num_frames()).map(|t| eps[0].frame(t)).collect();
            foresight::media::write_gif(&gif, &all, h, w, 4, 100)?;
            for e in &eps {
                println!("seed {} [{}]: {}", e.seed, e.policy, e.caption);
            }
            println!("wrote {} and {}", out.display(), gif.display());
        }
        Cmd::Train { data, config, out, resume, stop_after, latent_cache, init, autoencoder } => train(&data, &config, &out, resume, stop_after, latent_cache.as_deref(), init.as_deref(), autoencoder.as_deref(), command.clone())?,
        Cmd::Eval { checkpoint, data, context, horizon, start, long_horizon, episodes, steps, temperature, reencode, reencode_every, guidance, context_noise, seed, json } => {
            let wm = foresight::world_model::WorldModel::load(&checkpoint)?;
            let mut ds = foresight::data::Dataset::open(&data)?;
            let mut sampler = wm.meta.sampler;
            if let Some(s) = steps {
                sampler.steps = s;
            }
            if let Some(t) = temperature {
                sampler.temperature = t;
            }
            if let Some(r) = reencode {
                sampler.reencode = r == OnOff::On;
            }
            if let Some(n) = reencode_every {
                sampler.reencode_every = n;
            }
            if let Some(g) = guidance {
                sampler.guidance = g;
            }
            if let Some(c) = context_noise {
                sampler.context_noise = c;
            }
            sampler.validate().map_err(|e| anyhow::anyhow!("sampler overrides: {e}"))?;
            let cfg = foresight::eval::EvalConfig { context, horizon, start, long_horizon, max_episodes: episodes, sampler, seed };
            let report = foresight::eval::evaluate(&wm, &mut ds, &cfg)?;
            foresight::train::checkpoint::save_json(&json, &report)?;
            let md = foresight::eval::markdown(&report, &format!("{} on {}", checkpoint.display(), data.display()));
            foresight::data::write_atomic(&json.with_extension("md"), md.as_bytes())?;
            let plot = |name: &str, series: &[(&[f64], [u8; 3])], lo: f64, hi: f64| foresight::eval::plot::line_plot(&json.with_file_name(format!("{}_{name}.png", json.file_stem().and_then(|s| s.to_str()).unwrap_or("eval"))), series, lo, hi);
            let (red, grey, blue) = ([200, 40, 40], [120, 120, 120], [40, 90, 230]);
            plot("psnr", &[(&report.model.psnr, red), (&report.copy_last.psnr, grey)], 10.0, 50.0)?;
            let max_err = report.copy_last.position_error_px.iter().chain(&report.model.position_error_px).cloned().filter(|v| v.is_finite()).fold(1.0, f64::max);
            plot("position", &[(&report.model.position_error_px, red), (&report.copy_last.position_error_px, grey), (&report.constant_velocity.position_error_px, blue)], 0.0, max_err)?;
            println!("{md}");
            println!("wrote {} (+ .md, _psnr.png: model red, copy-last grey; _position.png: + constant velocity blue)", json.display());
        }
        Cmd::Rollout { checkpoint, data, episode, context, horizon, samples, seed, out, reconstruct } => {
            let wm = foresight::world_model::WorldModel::load(&checkpoint)?;
            let mut ds = foresight::data::Dataset::open(&data)?;
            let ep = ds.episode(episode)?;
            anyhow::ensure!(context >= 1 && ep.steps() + 1 >= context + horizon, "episode {episode} has {} frames; context {context} + horizon {horizon} needs more", ep.num_frames());
            let q = foresight::world_model::Query {
                context: (0..context).map(|t| ep.frame(t).to_vec()).collect(),
                past_actions: Some((0..context - 1).map(|t| ep.action(t).to_vec()).collect()),
                actions: (context - 1..context - 1 + horizon).map(|t| ep.action(t).to_vec()).collect(),
                samples,
                seed,
            };
            let t0 = std::time::Instant::now();
            let pred = wm.predict(&q, &wm.meta.sampler)?;
            let secs = t0.elapsed().as_secs_f64();
            let [h, w] = wm.meta.resolution;
            let truth: Vec<&[u8]> = (context..context + horizon).map(|t| ep.frame(t)).collect();
            let mut rows = pred.frames;
            if reconstruct {
                let rec = wm.decode(&wm.encode(&truth)?)?;
                let psnrs: Vec<String> = rec.iter().zip(&truth).map(|(r, t)| format!("{:.1}", foresight::eval::metrics::psnr(r, t))).collect();
                println!("autoencoder round trip PSNR per frame: {}", psnrs.join(" "));
                rows.push(rec);
            }
            let png = foresight::media::write_comparison(&out, &truth, &rows, h, w)?;
            let psnrs: Vec<String> = (0..horizon).map(|t| format!("{:.1}", foresight::eval::metrics::psnr(&rows[0][t], truth[t]))).collect();
            println!("{} predicted frames in {:.3} s; PSNR per step: {}", horizon * samples, secs, psnrs.join(" "));
            println!("wrote {} (truth | prediction | difference) and {} (rows: truth, {samples} sample(s), difference)", out.display(), png.display());
        }
        Cmd::Bench { checkpoint, json } => {
            let wm = foresight::world_model::WorldModel::load(&checkpoint)?;
            let r = foresight::bench::run(&wm)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            if let Some(j) = json {
                foresight::train::checkpoint::save_json(&j, &r)?;
            }
        }
        Cmd::Export { checkpoint, out, f32, temperature, reencode_every, steps, context_noise, decoder_from, average, train_seeds_from } => {
            use foresight::train::checkpoint::{json_path, load_tensors, save_json, save_tensors};
            let wm = foresight::world_model::WorldModel::load(&checkpoint)?;
            let mut meta = wm.meta.clone();
            meta.sampler.context_noise = context_noise.unwrap_or(meta.sampler.context_noise);
            meta.sampler = meta.sampler.overridden(steps, temperature, reencode_every).map_err(|e| anyhow::anyhow!("sampler options: {e}"))?;
            let dtype = if f32 { candle_core::DType::F32 } else { candle_core::DType::F16 };
            let mut tensors = load_tensors(&checkpoint, &candle_core::Device::Cpu)?;
            if !average.is_empty() {
                let mut others = Vec::with_capacity(average.len());
                for p in &average {
                    // Loading it checks its JSON against its weights first.
                    let other = foresight::world_model::WorldModel::load(p)?;
                    meta.inherit_train_seeds(&other.meta);
                    others.push(load_tensors(p, &candle_core::Device::Cpu)?);
                }
                let n = foresight::train::checkpoint::average_weights(&mut tensors, &others).map_err(|e| anyhow::anyhow!("--average: {e}"))?;
                meta.command = format!("{}; foresight export --checkpoint {} --average {}", meta.command, checkpoint.display(), average.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" --average "));
                println!("averaged {n} transformer tensors over {} checkpoints", others.len() + 1);
            }
            for dir in &train_seeds_from {
                let ds = foresight::data::Dataset::open(dir).map_err(|e| anyhow::anyhow!("--train-seeds-from {}: {e}", dir.display()))?;
                anyhow::ensure!(ds.manifest.scene == meta.scene, "--train-seeds-from {}: a {} dataset, the checkpoint is {}", dir.display(), ds.manifest.scene, meta.scene);
                let n = meta.add_train_seeds(ds.manifest.episodes.iter().map(|e| e.seed));
                println!("training seeds: {n} more from {}", dir.display());
            }
            if let Some(src) = &decoder_from {
                // A world model, or a bare autoencoder (`autoencoder.safetensors` of a run, for
                // checkpoints taken while its decoder is still training).
                let cpu = candle_core::Device::Cpu;
                // Only the JSON is read to tell the two apart; the weights are read once, below.
                let (theirs, config, psnr) = match foresight::train::checkpoint::load_json::<foresight::world_model::WorldModelMeta>(&json_path(src)) {
                    Ok(m) => (load_tensors(src, &cpu)?, m.autoencoder, m.autoencoder_psnr),
                    Err(e) => {
                        let ae = foresight::train::autoencoder::load_autoencoder(src, &cpu).map_err(|e2| anyhow::anyhow!("--decoder-from {}: neither a world model ({e}) nor an autoencoder ({e2})", src.display()))?;
                        (load_tensors(src, &cpu)?.into_iter().map(|(k, v)| (format!("ae.{k}"), v)).collect(), ae.meta.config, ae.meta.val_psnr)
                    }
                };
                anyhow::ensure!(wm.meta.autoencoder.same_encoder(&config), "--decoder-from {}: its encoder or latent is configured differently from {}'s", src.display(), checkpoint.display());
                let n = foresight::train::autoencoder::swap_decoder(&mut tensors, &theirs).map_err(|e| anyhow::anyhow!("--decoder-from {}: {e}", src.display()))?;
                println!("decoder: {n} tensors from {} (reconstruction PSNR {psnr:.2} dB, was {:.2})", src.display(), wm.meta.autoencoder_psnr);
                meta.autoencoder_psnr = psnr;
                meta.autoencoder = config;
            }
            let tensors = tensors
                .into_iter()
                .map(|(k, v)| Ok((k, v.to_dtype(dtype)?)))
                .collect::<candle_core::Result<std::collections::HashMap<_, _>>>()?;
            save_tensors(&out, &tensors)?;
            save_json(&json_path(&out), &meta)?;
            // Check that the copy loads and what the rounding costs.
            let copy = foresight::world_model::WorldModel::load(&out)?;
            let [h, w] = wm.meta.resolution;
            let frame: Vec<u8> = (0..h * w * 3).map(|i| (i * 37 % 251) as u8).collect();
            let (a, b) = (wm.encode(&[&frame])?, copy.encode(&[&frame])?);
            let err = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            let every = match (meta.sampler.reencode, meta.sampler.reencode_every) {
                (false, _) => "off".to_string(),
                (true, 1) => "each chunk".to_string(),
                (true, n) => format!("every {n} chunks"),
            };
            println!("wrote {} ({:.1} MB, {:?}, sampler: {} Euler steps, temperature {}, re-encoding {every}); largest latent change from rounding {err:.2e}", out.display(), size as f64 / 1e6, dtype, meta.sampler.steps, meta.sampler.temperature);
        }
        Cmd::Generate { common: a, from_image, resize, frames } => {
            let (wm, sampler, actions) = a.load()?;
            let img = foresight::media::read_frame_sized(&from_image, wm.meta.resolution, resize)?;
            let horizon = frames.or(actions.as_ref().map(|x| x.len())).unwrap_or(16);
            let t0 = std::time::Instant::now();
            let g = wm.image_to_video(&img, actions, a.text.as_deref(), horizon, a.samples, a.seed, &sampler)?;
            let out = foresight::generate::VideoOutputs { before: vec![&img], after: vec![], reference: vec![] };
            finish_generation(&wm, &a, "generate", &out, &g, t0.elapsed().as_secs_f64())?;
        }
        Cmd::Edit { common: a, video, strength } => {
            let (wm, sampler, actions) = a.load()?;
            let frames = read_video_for(&wm, &video)?;
            let t0 = std::time::Instant::now();
            let g = wm.edit_video(&frames, strength, actions, a.text.as_deref(), a.samples, a.seed, &sampler)?;
            let reference: Vec<&[u8]> = frames[1..].iter().map(|f| f.as_slice()).collect();
            let out = foresight::generate::VideoOutputs { before: vec![&frames[0]], after: vec![], reference };
            finish_generation(&wm, &a, "edit", &out, &g, t0.elapsed().as_secs_f64())?;
            let d: Vec<f64> = g.frames.iter().map(|s| s.iter().zip(&frames[1..]).map(|(x, y)| foresight::eval::metrics::mean_abs_diff(x, y)).sum::<f64>() / s.len() as f64).collect();
            println!("mean absolute difference from the input (0-255): {}", d.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(" "));
        }
        Cmd::Interpolate { common: a, a: va, b: vb, frames } => {
            let (wm, sampler, _) = a.load()?;
            let (fa, fb) = (read_video_for(&wm, &va)?, read_video_for(&wm, &vb)?);
            let t0 = std::time::Instant::now();
            let g = wm.interpolate(&fa, &fb, frames, a.samples, a.seed, &sampler)?;
            let out = foresight::generate::VideoOutputs { before: fa.iter().map(|f| f.as_slice()).collect(), after: fb.iter().map(|f| f.as_slice()).collect(), reference: vec![] };
            finish_generation(&wm, &a, "interpolate", &out, &g, t0.elapsed().as_secs_f64())?;
        }
        Cmd::Extend { common: a, video, frames, backward } => {
            let (wm, sampler, actions) = a.load()?;
            let v = read_video_for(&wm, &video)?;
            let t0 = std::time::Instant::now();
            let g = wm.extend(&v, frames, backward, actions, a.text.as_deref(), a.samples, a.seed, &sampler)?;
            let refs: Vec<&[u8]> = v.iter().map(|f| f.as_slice()).collect();
            let out = if backward { foresight::generate::VideoOutputs { before: vec![], after: refs, reference: vec![] } } else { foresight::generate::VideoOutputs { before: refs, after: vec![], reference: vec![] } };
            finish_generation(&wm, &a, "extend", &out, &g, t0.elapsed().as_secs_f64())?;
        }
        Cmd::Inspect { data } => {
            let mut ds = foresight::data::Dataset::open(&data)?;
            let m = ds.manifest.clone();
            let frames: usize = m.episodes.iter().map(|e| e.steps + 1).sum();
            println!("{}: scene {} ({}), {} episodes, {frames} frames {}x{}, action dim {}, contact fraction {}", data.display(), m.scene, m.scene_hash, m.episodes.len(), m.resolution[0], m.resolution[1], m.action_spec.dim, m.contact_fraction.map_or("n/a".into(), |c| format!("{c:.3}")));
            for i in 0..ds.len() {
                ds.episode(i).with_context(|| format!("episode {i}"))?;
            }
            for e in m.episodes.iter().take(3) {
                println!("  seed {:016x} [{}] {}", e.seed, e.policy, e.caption);
            }
            println!("all {} episodes read and validated", ds.len());
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn train(data: &[PathBuf], config: &std::path::Path, out: &std::path::Path, resume: bool, stop_after: Option<u64>, latent_cache: Option<&std::path::Path>, init: Option<&std::path::Path>, autoencoder: Option<&std::path::Path>, command: String) -> anyhow::Result<()> {
    use foresight::train::autoencoder::{train_autoencoder, StageState};
    use foresight::train::dynamics::{train_dynamics, DynamicsJob, StageEnd};
    use foresight::train::{checkpoint, data::FramePool, TrainConfig};
    use indicatif::{ProgressBar, ProgressStyle};
    use std::io::IsTerminal;
    let cfg = TrainConfig::load(config)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ae_state = out.join("autoencoder.state.json");
    if !resume && (ae_state.exists() || out.join("dynamics.state.json").exists()) {
        anyhow::bail!("{} already holds a training run; pass --resume to continue it or choose another --out", out.display());
    }
    checkpoint::save_json(&out.join("config.json"), &cfg)?;
    let mut sets = data.iter().map(foresight::data::Dataset::open).collect::<Result<Vec<_>, _>>()?;
    let pool = FramePool::load_many(&mut sets, cfg.val_fraction)?;
    let names: Vec<String> = data.iter().map(|d| d.display().to_string()).collect();
    println!("{}: {} training episodes ({} frames), {} held out", names.join(" + "), pool.train.len(), pool.train_len(), pool.val.len());
    let ds = &sets[0];
    let tty = std::io::stderr().is_terminal();
    // A progress bar on a terminal; a line per validation in logs.
    let make_bar = |name: &str, steps: u64| {
        let bar = if tty { ProgressBar::new(steps) } else { ProgressBar::hidden() };
        bar.set_style(ProgressStyle::with_template(&format!("{name} {{bar:30}} {{pos}}/{{len}} {{msg}} eta {{eta}}")).unwrap_or_else(|_| ProgressStyle::default_bar()));
        bar
    };
    let report = |bar: &ProgressBar, name: &str, metric: &str, step: u64, loss: f64, rate: f64, val: Option<f64>, last_val: &mut f64| {
        if let Some(v) = val {
            *last_val = v;
            if !tty {
                eprintln!("{name} step {step}: loss {loss:.4}, {metric} {v:.3}, {rate:.2} steps/s");
            }
        }
        bar.set_position(step);
        bar.set_message(format!("loss {loss:.4} {metric} {last_val:.3} {rate:.2} steps/s"));
    };
    let device = candle_core::Device::Cpu;
    let mut budget = stop_after.unwrap_or(u64::MAX);
    // `--init`: the checkpoint's autoencoder is kept frozen (autoencoder_stage.steps 0) or
    // fine-tuned for autoencoder_stage.steps; its transformer is the dynamics' starting point.
    let mut ae_cfg = cfg.autoencoder.clone();
    let mut ae_init = None;
    if let Some(ckpt) = init {
        let wm = foresight::world_model::WorldModel::load(ckpt)?;
        // The config may give the checkpoint's autoencoder a new output head (same encoder and
        // latent, so its transformer still fits); anything else comes from the checkpoint.
        let new_head = cfg.autoencoder_stage.steps > 0 && cfg.autoencoder != wm.meta.autoencoder && cfg.autoencoder.same_encoder(&wm.meta.autoencoder);
        if !new_head {
            ae_cfg = wm.meta.autoencoder.clone();
        }
        if !ae_state.exists() {
            if cfg.autoencoder_stage.steps == 0 {
                foresight::train::autoencoder::install_from_world_model(ckpt, out, 0)?;
                println!("fine-tuning {}: its autoencoder is kept, its transformer is the starting point", ckpt.display());
            } else {
                ae_init = Some(foresight::train::autoencoder::world_model_autoencoder(ckpt)?);
                println!("fine-tuning {}: autoencoder for {} steps, then the transformer", ckpt.display(), cfg.autoencoder_stage.steps);
            }
        }
    }
    if let Some(ckpt) = autoencoder.filter(|_| !ae_state.exists()) {
        foresight::train::autoencoder::install_from_world_model(ckpt, out, cfg.autoencoder_stage.steps)?;
        println!("the autoencoder of {} is kept frozen; a fresh transformer is trained on it", ckpt.display());
    }
    let done = ae_state.exists() && checkpoint::load_json::<StageState>(&ae_state)?.step >= cfg.autoencoder_stage.steps;
    if !done {
        let bar = make_bar("autoencoder", cfg.autoencoder_stage.steps);
        let mut val = f64::NAN;
        let meta = train_autoencoder(&pool, &ae_cfg, &cfg.autoencoder_stage, cfg.seed, out, resume, ae_init.as_ref(), &mut budget, &device, |step, loss, rate, v| {
            report(&bar, "autoencoder", "held-out PSNR dB", step, loss, rate, v, &mut val)
        })?;
        bar.finish();
        if meta.steps < cfg.autoencoder_stage.steps {
            println!("stopped at autoencoder step {} of {}; continue with --resume", meta.steps, cfg.autoencoder_stage.steps);
            return Ok(());
        }
        println!("autoencoder: {} steps, held-out reconstruction PSNR {:.2} dB, latent {:?} (scale {:.3})", meta.steps, meta.val_psnr, meta.config.latent_shape(), meta.latent_scale);
    }
    if budget == 0 {
        // `--stop-after` spent on the autoencoder: stop before the transformer's data are encoded.
        println!("stopped after the autoencoder stage; continue with --resume");
        return Ok(());
    }
    let bar = make_bar("dynamics", cfg.dynamics_stage.steps);
    let mut val = f64::NAN;
    let job = DynamicsJob {
        pool: &pool,
        manifest: &ds.manifest,
        config: &cfg.dynamics,
        stage: &cfg.dynamics_stage,
        sampler: cfg.sampler,
        seed: cfg.seed,
        out,
        resume: resume || done,
        command,
        init,
        latent_cache,
    };
    let meta = match train_dynamics(&job, &mut budget, |step, loss, rate, v| report(&bar, "dynamics", "held-out loss", step, loss, rate, v, &mut val))? {
        StageEnd::Finished(m) => m,
        StageEnd::Paused(step) => {
            println!("stopped at dynamics step {step} of {}; continue with --resume", cfg.dynamics_stage.steps);
            return Ok(());
        }
    };
    bar.finish();
    let wm = foresight::world_model::WorldModel::load(&out.join("world_model.safetensors"))?;
    println!(
        "world model: {} dynamics steps; {:.2} M transformer parameters, {:.3} GFLOP a forward pass -> {}",
        meta.steps,
        wm.dit_parameters() as f64 / 1e6,
        wm.dit.flops_per_sample() / 1e9,
        out.join("world_model.safetensors").display()
    );
    Ok(())
}

/// A switch given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

