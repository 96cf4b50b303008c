//! `foresight-sim`: ground-truth data and the physics oracle.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use foresight::scene::Scene;
use foresight_sim::datagen::{datagen, DatagenConfig};
use foresight_sim::policy::PolicyKind;
use foresight_sim::{Oracle, SimWorld};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(name = "foresight-sim", version, about = "Foresight ground truth: rapier3d scenes rendered by Bevy")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record episodes of a scene into a dataset directory (manifest.json + safetensors shards).
    Datagen {
        /// Scene file (RON).
        #[arg(long)]
        scene: PathBuf,
        /// Number of episodes.
        #[arg(long, default_value_t = 64)]
        episodes: usize,
        /// Transitions (actions) per episode; default: the scene's episode_steps.
        #[arg(long)]
        steps: Option<usize>,
        /// Run seed; episode seeds are derived from (scene, seed, index).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Data-collection policy.
        #[arg(long, value_enum, default_value_t = PolicyKind::Scripted)]
        policy: PolicyKind,
        /// Output dataset directory (must not hold a dataset).
        #[arg(long)]
        out: PathBuf,
        /// Environments drawn together in one view (orthographic scenes).
        #[arg(long, default_value_t = 64)]
        envs: usize,
        /// Episodes per shard file.
        #[arg(long, default_value_t = 64)]
        shard_episodes: usize,
    },
    /// Render a given action sequence from the start state of a seed, as a GIF.
    Oracle {
        /// Scene file (RON).
        #[arg(long)]
        scene: PathBuf,
        /// World seed (a dataset episode's `seed` reproduces that episode's start).
        #[arg(long)]
        seed: u64,
        /// JSON lines, one {"action": [..]} per transition.
        #[arg(long)]
        actions: PathBuf,
        /// Output GIF.
        #[arg(long)]
        out: PathBuf,
        /// Also write the frames and states as a one-episode dataset here.
        #[arg(long)]
        dataset: Option<PathBuf>,
    },
    /// Play actions in the true scene and in the world model from the same K frames; write
    /// truth | prediction | difference.
    Rollout(RolloutArgs),
}

/// Options of `foresight-sim rollout`.
#[derive(clap::Args)]
struct RolloutArgs {
    /// Scene file (RON).
    #[arg(long)]
    scene: PathBuf,
    /// The checkpoint's .safetensors file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// World seed of the start state.
    #[arg(long, default_value_t = 12345)]
    seed: u64,
    /// Actions (JSON lines); default: the scripted policy's.
    #[arg(long)]
    actions: Option<PathBuf>,
    /// Context frames.
    #[arg(long, default_value_t = 4)]
    context: usize,
    /// Horizon.
    #[arg(long, default_value_t = 16)]
    horizon: usize,
    /// Futures to draw.
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Output GIF (truth | prediction | difference); a PNG strip is written beside it.
    #[arg(long)]
    out: PathBuf,
}

#[derive(serde::Deserialize)]
struct ActionLine {
    action: Vec<f32>,
}

fn read_actions(path: &PathBuf, scene: &Scene) -> anyhow::Result<Vec<Vec<f32>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let a: ActionLine = serde_json::from_str(line).with_context(|| format!("{}:{}: expected {{\"action\": [..]}}", path.display(), i + 1))?;
        scene.check_action(&a.action).map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        out.push(a.action);
    }
    anyhow::ensure!(!out.is_empty(), "{}: no actions", path.display());
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.cmd {
        Cmd::Datagen { scene, episodes, steps, seed, policy, out, envs, shard_episodes } => {
            let cfg = DatagenConfig { scene, episodes, steps, seed, policy, out: out.clone(), envs, shard_episodes, command };
            let bar = ProgressBar::new(episodes as u64);
            bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} episodes {elapsed_precise} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()));
            let rep = datagen(&cfg, |d| bar.set_position(d as u64))?;
            bar.finish_and_clear();
            let m = &rep.manifest;
            println!(
                "wrote {} episodes ({} frames {}x{}) of `{}` with policy {} to {}; contact fraction {:.3}",
                m.episodes.len(),
                rep.frames,
                m.resolution[0],
                m.resolution[1],
                m.scene,
                policy.name(),
                out.display(),
                m.contact_fraction.unwrap_or(0.0)
            );
            println!("datagen: {:.0} frames/s ({} frames in {:.2} s, {} environments per view)", rep.frames as f64 / rep.seconds, rep.frames, rep.seconds, envs.min(episodes));
        }
        Cmd::Rollout(a) => rollout(a)?,
        Cmd::Oracle { scene, seed, actions, out, dataset } => {
            let scene = Arc::new(Scene::load(&scene)?);
            let actions = read_actions(&actions, &scene)?;
            let world = SimWorld::new(scene.clone(), seed)?;
            let mut oracle = Oracle::new(scene.clone(), 1)?;
            let mut ep = oracle.replay(&world, &actions)?;
            ep.seed = seed;
            ep.policy = "given".into();
            let (h, w) = scene.resolution();
            let frames: Vec<&[u8]> = (0..ep.num_frames()).map(|t| ep.frame(t)).collect();
            foresight::media::write_gif(&out, &frames, h, w, 4, 100)?;
            println!("{} frames rendered to {}; {}", frames.len(), out.display(), ep.caption);
            if let Some(dir) = dataset {
                let m = foresight::data::Manifest::for_scene(&scene, seed, command);
                let mut wr = foresight::data::DatasetWriter::create(&dir, m, 1)?;
                wr.push(ep)?;
                wr.finish()?;
                println!("episode written to {}", dir.display());
            }
        }
    }
    Ok(())
}

fn rollout(a: RolloutArgs) -> anyhow::Result<()> {
    use foresight_sim::episode::{record_batch, Driver};
    use foresight_sim::policy::{Policy, PolicyKind};
    let scene = Arc::new(Scene::load(&a.scene)?);
    let wm = foresight::world_model::WorldModel::load(&a.checkpoint)?;
    anyhow::ensure!(wm.meta.scene_hash == scene.content_hash() || wm.meta.scene == scene.name, "the checkpoint was trained on scene `{}`, not `{}`", wm.meta.scene, scene.name);
    anyhow::ensure!(a.context >= 1 && a.context <= wm.meta.context, "--context must be in 1..={}", wm.meta.context);
    let steps = a.context - 1 + a.horizon;
    let driver = match &a.actions {
        Some(p) => {
            let acts = read_actions(p, &scene)?;
            anyhow::ensure!(acts.len() >= steps, "{}: {} actions; context {} + horizon {} needs {steps}", p.display(), acts.len(), a.context, a.horizon);
            Driver::Actions(acts)
        }
        None => Driver::Policy(Policy::new(PolicyKind::Scripted, a.seed, scene.action_dim())),
    };
    let mut renderer = foresight_sim::Renderer::new(scene.clone(), 1)?;
    let world = SimWorld::new(scene.clone(), a.seed)?;
    let ep = record_batch(&mut renderer, &scene, vec![world], &[a.seed], vec![driver], "rollout", steps)?.remove(0);
    let q = foresight::world_model::Query {
        context: (0..a.context).map(|t| ep.frame(t).to_vec()).collect(),
        past_actions: Some((0..a.context - 1).map(|t| ep.action(t).to_vec()).collect()),
        actions: (a.context - 1..steps).map(|t| ep.action(t).to_vec()).collect(),
        samples: a.samples,
        seed: a.seed,
    };
    let t0 = std::time::Instant::now();
    let pred = wm.predict(&q, &wm.meta.sampler)?;
    let secs = t0.elapsed().as_secs_f64();
    let (h, w) = scene.resolution();
    let truth: Vec<&[u8]> = (a.context..=steps).map(|t| ep.frame(t)).collect();
    let png = foresight::media::write_comparison(&a.out, &truth, &pred.frames, h, w)?;
    let psnrs: Vec<String> = truth.iter().zip(&pred.frames[0]).map(|(t, p)| format!("{:.1}", foresight::eval::metrics::psnr(p, t))).collect();
    println!("{} frames predicted in {:.3} s; PSNR per step vs the oracle: {}", a.horizon * a.samples, secs, psnrs.join(" "));
    println!("wrote {} (truth | prediction | difference) and {}", a.out.display(), png.display());
    Ok(())
}
