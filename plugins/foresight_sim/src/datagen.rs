//! `foresight-sim datagen`: record episodes of a scene into a dataset directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use foresight::data::{DatasetWriter, Manifest};
use foresight::rng::episode_seed;
use foresight::scene::Scene;

use crate::episode::{record_batch, Driver};
use crate::physics::SimWorld;
use crate::policy::{Policy, PolicyKind};
use crate::render::Renderer;

/// What to record.
#[derive(Debug, Clone)]
pub struct DatagenConfig {
    /// Scene file.
    pub scene: PathBuf,
    /// Number of episodes.
    pub episodes: usize,
    /// Transitions per episode (`None`: the scene's `episode_steps`).
    pub steps: Option<usize>,
    /// Run seed.
    pub seed: u64,
    /// Policy.
    pub policy: PolicyKind,
    /// Output directory.
    pub out: PathBuf,
    /// Environments drawn per render call.
    pub envs: usize,
    /// Episodes per shard.
    pub shard_episodes: usize,
    /// The command line, stored in the manifest.
    pub command: String,
}

/// Figures of a finished run.
#[derive(Debug, Clone)]
pub struct DatagenReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// Frames rendered and recorded.
    pub frames: usize,
    /// Wall time in seconds (world building, physics, rendering, writing).
    pub seconds: f64,
}

/// Records the dataset; `progress` is called with the number of episodes done.
pub fn datagen(cfg: &DatagenConfig, mut progress: impl FnMut(usize)) -> anyhow::Result<DatagenReport> {
    let scene = Arc::new(Scene::load(&cfg.scene)?);
    let steps = cfg.steps.unwrap_or(scene.episode_steps as usize);
    anyhow::ensure!(steps > 0 && steps <= 100_000, "--steps must be in 1..=100000");
    anyhow::ensure!(cfg.episodes > 0, "--episodes must be at least 1");
    anyhow::ensure!(
        cfg.policy != PolicyKind::Planner || scene.goal.is_some(),
        "--policy planner needs a scene with a goal; {} has none",
        cfg.scene.display()
    );
    let manifest = Manifest::for_scene(&scene, cfg.seed, cfg.command.clone());
    let mut writer = DatasetWriter::create(&cfg.out, manifest, cfg.shard_episodes)?;
    let mut renderer = Renderer::new(scene.clone(), cfg.envs.min(cfg.episodes))?;
    let start = Instant::now();
    let mut frames = 0;
    let mut done = 0;
    while done < cfg.episodes {
        let n = renderer.slots().min(cfg.episodes - done);
        let seeds: Vec<u64> = (done..done + n).map(|i| episode_seed(&scene.name, cfg.seed, i as u64)).collect();
        let worlds = seeds.iter().map(|&s| SimWorld::new(scene.clone(), s)).collect::<Result<Vec<_>, _>>()?;
        let drivers = seeds.iter().map(|&s| Driver::Policy(Policy::new(cfg.policy, s, scene.action_dim()))).collect();
        for ep in record_batch(&mut renderer, &scene, worlds, &seeds, drivers, cfg.policy.name(), steps)? {
            frames += ep.num_frames();
            writer.push(ep)?;
        }
        done += n;
        progress(done);
    }
    let manifest = writer.finish()?;
    Ok(DatagenReport { manifest, frames, seconds: start.elapsed().as_secs_f64() })
}
