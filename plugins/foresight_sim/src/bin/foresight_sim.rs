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
