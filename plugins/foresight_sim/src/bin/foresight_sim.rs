//! `foresight-sim`: ground-truth data and the physics oracle.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use foresight::scene::Scene;
use foresight_sim::datagen::{datagen, DatagenConfig};
use foresight_sim::policy::PolicyKind;
use foresight_sim::{Oracle, SimWorld};
use foresight_sim::control::EpisodeResult;
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
    /// Closed-loop model-predictive control in the true scene, imagining with the world model,
    /// the oracle or nothing (random); success rate with its 95% interval, steps, distance,
    /// planning time; a GIF of the first episode with the imagined frames beside reality.
    Plan(PlanArgs),
    /// Rank policies inside the world model and in the true scene (frames only, same code):
    /// success and return per policy in both worlds, Spearman rank correlation, success error.
    EvaluatePolicies(EvalPoliciesArgs),
    /// Measure the generative modes on held-out episodes: text control (own vs other caption,
    /// trained and held-out phrasings, with and without guidance), image to video, edit
    /// strength and edits under new actions against the oracle, interpolation against a
    /// cross-fade, backward extension, uncertainty calibration. JSON + Markdown.
    EvalGenerate {
        /// Scene file (RON) of the checkpoint (the oracle replays edited actions in it).
        #[arg(long)]
        scene: PathBuf,
        /// World-model checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Held-out dataset (episodes of at least 20 steps, seeds never trained on).
        #[arg(long)]
        data: PathBuf,
        /// At most this many episodes.
        #[arg(long, default_value_t = 32)]
        episodes: usize,
        /// Noise seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Output JSON (a Markdown report is written beside it).
        #[arg(long)]
        json: PathBuf,
    },
}

/// Options of `foresight-sim evaluate-policies`.
#[derive(clap::Args)]
struct EvalPoliciesArgs {
    /// Scene file (RON) with a goal and force or impulse actions.
    #[arg(long)]
    scene: PathBuf,
    /// World-model checkpoint of that scene.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Episodes per policy (the same starts for every policy and both worlds).
    #[arg(long, default_value_t = 32)]
    episodes: usize,
    /// Run seed; starts are derived from (scene, seed, index) and must not be training seeds.
    #[arg(long, default_value_t = 6000)]
    seed: u64,
    /// Steps per episode (the frame-only scripted pusher needs about 100 to finish most starts).
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Output JSON.
    #[arg(long)]
    json: PathBuf,
    /// Only the true scene (to tune or compare the policies themselves; model keys are null).
    #[arg(long)]
    true_only: bool,
    /// Only these policies (comma-separated names as printed: scripted, noisy-scripted-0.15, ...,
    /// random, zero); the statistics then cover only them. Default: all seven.
    #[arg(long, value_delimiter = ',')]
    policies: Vec<String>,

    /// World model: Euler steps per predicted frame (default: the checkpoint's).
    #[arg(long)]
    sampler_steps: Option<usize>,
    /// World model: noise temperature (default: the checkpoint's).
    #[arg(long)]
    temperature: Option<f32>,
    /// World model: re-encode every N-th predicted frame, or `off` (default: the checkpoint's).
    #[arg(long)]
    reencode_every: Option<foresight::model::diffusion::ReencodeEvery>,
}

/// Options of `foresight-sim plan`.
#[derive(clap::Args)]
struct PlanArgs {
    /// Scene file (RON) with a goal.
    #[arg(long)]
    scene: PathBuf,
    /// World-model checkpoint (needed for `--imagination model`).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// What the planner imagines with.
    #[arg(long, value_enum, default_value_t = foresight_sim::control::ImaginationKind::Model)]
    imagination: foresight_sim::control::ImaginationKind,
    /// Episodes (starts).
    #[arg(long, default_value_t = 50)]
    episodes: usize,
    /// Run seed; episode seeds are derived from (scene, seed, index) as in datagen, and must not
    /// be the checkpoint's training seeds.
    #[arg(long, default_value_t = 5000)]
    seed: u64,
    /// Output JSON.
    #[arg(long)]
    json: PathBuf,
    /// Planning horizon.
    #[arg(long, default_value_t = foresight_sim::control::budget::HORIZON)]
    horizon: usize,
    /// Candidates per iteration.
    #[arg(long, default_value_t = foresight_sim::control::budget::CANDIDATES)]
    candidates: usize,
    /// Iterations per plan.
    #[arg(long, default_value_t = foresight_sim::control::budget::ITERATIONS)]
    iterations: usize,
    /// CEM or MPPI.
    #[arg(long, default_value = "cem")]
    method: String,
    /// Actions executed per plan.
    #[arg(long, default_value_t = foresight_sim::control::budget::REPLAN_EVERY)]
    replan_every: usize,
    /// Steps sharing one noise draw in the candidates (1: independent per step).
    #[arg(long, default_value_t = foresight_sim::control::budget::HOLD)]
    hold: usize,
    /// Starting standard deviation of the candidates, as a fraction of each action's range.
    #[arg(long, default_value_t = 0.5)]
    init_std: f32,
    /// A policy whose current action (held over the horizon) seeds `--prior-share` of the
    /// candidates, in every imagination alike (default: none, candidates around the mean only).
    #[arg(long, value_enum)]
    prior: Option<foresight_sim::control::PriorKind>,
    /// Share of the candidates drawn around the prior (candidate 1 is the prior itself).
    #[arg(long, default_value_t = 0.5)]
    prior_share: f32,
    /// Steps before an episode fails.
    #[arg(long, default_value_t = 120)]
    max_steps: usize,
    /// GIF of one episode, real | imagined | difference, with a PNG strip beside it (default:
    /// beside the JSON).
    #[arg(long)]
    gif: Option<PathBuf>,
    /// Which episode (0-based) the GIF shows.
    #[arg(long, default_value_t = 0)]
    gif_episode: usize,
    /// Cost: weight of the agent's distance to its pushing position behind the body.
    #[arg(long, default_value_t = 0.3)]
    approach: f32,
    /// Cost: pixels behind the body (seen from the goal) where a push starts.
    #[arg(long, default_value_t = 5.0)]
    standoff: f32,
    /// Cost: measure the disc's way to its pushing position round the block, keeping this many
    /// pixels from its centre (about the contact distance; 0: the straight line).
    #[arg(long, default_value_t = 0.0)]
    around: f32,
    /// Cost: average it over every state of the horizon instead of taking the last state's
    /// (both imaginations; the model then decodes every imagined frame).
    #[arg(long)]
    running_cost: bool,
    /// Model imagination: scale the block's imagined displacement by this before costing (the
    /// inverse of the push ratio the audit measures on validation starts; 1: as imagined).
    #[arg(long, default_value_t = 1.0)]
    push_gain: f32,
    /// Model imagination: shorten the block's imagined displacement by this many pixels before
    /// costing (a shorter one counts as none): the model's ghost drifts of the block, where it
    /// truly stays put, are not taken for pushes (0: as imagined).
    #[arg(long, default_value_t = 0.0)]
    push_deadzone: f32,
    /// Model imagination: a candidate whose imagined disc never comes within this many pixels
    /// of the block (in any imagined frame) leaves the block where it was: the model's ghost
    /// drifts of a block the disc cannot reach are not taken for progress (0: as imagined; the
    /// model then decodes every imagined frame).
    #[arg(long, default_value_t = 0.0)]
    contact_gate: f32,
    /// Model imagination: scale the agent's imagined displacement by this before costing (the
    /// inverse of the agent's imagined travel ratio; 1: as imagined).
    #[arg(long, default_value_t = 1.0)]
    agent_gain: f32,
    /// Model imagination: sampled futures per candidate (each with its own noise, shared by all
    /// candidates); the candidate's cost is their mean plus `--spread-weight` × their spread.
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Model imagination: weight of the standard deviation of a candidate's sampled costs
    /// (positive: pessimistic where the futures disagree).
    #[arg(long, default_value_t = 0.0)]
    spread_weight: f32,
    /// Model imagination: append one JSON line per plan round here, with each candidate's
    /// per-sample model costs and its oracle cost (to compare cost aggregations offline).
    #[arg(long)]
    audit_dump: Option<PathBuf>,
    /// With `--imagination oracle` and `--checkpoint`: the oracle plans and acts while the model
    /// scores the same candidates, audited as with `--imagination model` (the same states and
    /// candidates for every model or sampler setting: a paired comparison).
    #[arg(long)]
    shadow_model: bool,
    /// With `--audit-dump`: a second checkpoint scores every candidate from the same context too
    /// (`second_model`, `second_last` in each dump line), to compare two checkpoints on the
    /// states the first one plans through.
    #[arg(long)]
    audit_checkpoint: Option<PathBuf>,
    /// Model imagination: decode every imagined frame and audit the block's and the agent's
    /// positions at each horizon step against the oracle (`imagined_*_error_px_by_step`; the
    /// extra decoding counts as planning time).
    #[arg(long)]
    audit_steps: bool,
    /// Model imagination: Euler steps per predicted frame (default: the checkpoint's; 1 halves
    /// the planning time).
    #[arg(long)]
    sampler_steps: Option<usize>,
    /// Model imagination: noise temperature (0 imagines the mean future).
    #[arg(long)]
    temperature: Option<f32>,
    /// Model imagination: re-encode every N-th predicted frame, or `off` (default: the
    /// checkpoint's).
    #[arg(long)]
    reencode_every: Option<foresight::model::diffusion::ReencodeEvery>,
    /// Model imagination: the context-noise level the transformer is told (default: the
    /// checkpoint's).
    #[arg(long)]
    context_noise: Option<f32>,
    /// Continue the run whose partial JSON is at `--json` (written after every episode): its
    /// finished episodes are kept when its scene, checkpoint, imagination, seed and settings
    /// match these.
    #[arg(long)]
    resume: bool,
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

fn read_actions(path: &PathBuf, scene: &Scene) -> anyhow::Result<Vec<Vec<f32>>> {
    let out = foresight::media::read_action_lines(path)?;
    for (i, a) in out.iter().enumerate() {
        scene.check_action(a).map_err(|e| anyhow::anyhow!("{}: action {}: {e}", path.display(), i + 1))?;
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    foresight::alloc::keep_freed_memory();
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
        Cmd::EvalGenerate { scene, checkpoint, data, episodes, seed, json } => {
            let scene = Arc::new(Scene::load(&scene)?);
            let wm = foresight::world_model::WorldModel::load(&checkpoint)?;
            anyhow::ensure!(wm.meta.scene == scene.name, "the checkpoint was trained on scene `{}`, not `{}`", wm.meta.scene, scene.name);
            let mut ds = foresight::data::Dataset::open(&data)?;
            let cfg = foresight_sim::generative::GenEvalConfig { episodes, seed, ..Default::default() };
            let t0 = std::time::Instant::now();
            let r = foresight_sim::generative::evaluate_generative(&wm, &scene, &mut ds, &cfg, checkpoint.display().to_string())?;
            foresight::train::checkpoint::save_json(&json, &r)?;
            let md = foresight_sim::generative::markdown(&r);
            foresight::data::write_atomic(&json.with_extension("md"), md.as_bytes())?;
            println!("{md}\nwrote {} (+ .md) in {:.0} s", json.display(), t0.elapsed().as_secs_f64());
        }
        Cmd::Plan(a) => plan(a, command)?,
        Cmd::EvaluatePolicies(a) => evaluate_policies(a, command)?,
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

fn plan(a: PlanArgs, command: String) -> anyhow::Result<()> {
    use foresight::plan::{Method, PlannerConfig};
    use foresight_sim::control::{run_episode, ControlConfig, CostShape, Filmstrip, ImaginationKind};
    use std::io::IsTerminal;
    let scene = Arc::new(Scene::load(&a.scene)?);
    let model = match &a.checkpoint {
        Some(p) => Some(foresight::world_model::WorldModel::load(p)?),
        None => None,
    };
    let second = match &a.audit_checkpoint {
        Some(p) => {
            anyhow::ensure!(a.audit_dump.is_some() && model.is_some(), "--audit-checkpoint needs --audit-dump and --checkpoint");
            let m = foresight::world_model::WorldModel::load(p)?;
            anyhow::ensure!(m.meta.scene == scene.name, "{} is a model of `{}`, not `{}`", p.display(), m.meta.scene, scene.name);
            Some(m)
        }
        None => None,
    };
    if a.imagination == ImaginationKind::Model || a.shadow_model {
        let m = model.as_ref().ok_or_else(|| anyhow::anyhow!("--imagination model and --shadow-model need --checkpoint"))?;
        anyhow::ensure!(m.meta.scene == scene.name, "the checkpoint is a model of `{}`, not `{}`", m.meta.scene, scene.name);
    }
    let method = match a.method.as_str() {
        "cem" => Method::Cem,
        "mppi" => Method::Mppi,
        other => anyhow::bail!("--method {other}: use cem or mppi"),
    };
    let seeds: Vec<u64> = (0..a.episodes as u64).map(|i| foresight::rng::episode_seed(&scene.name, a.seed, i)).collect();
    if let Some(m) = &model {
        let trained: std::collections::HashSet<u64> = m.meta.train_seeds.iter().copied().collect();
        let overlap = seeds.iter().filter(|s| trained.contains(s)).count();
        anyhow::ensure!(overlap == 0, "{overlap} of the {} starts were training episodes of the checkpoint; choose another --seed", seeds.len());
    }
    let cfg = ControlConfig {
        planner: PlannerConfig { horizon: a.horizon, candidates: a.candidates, iterations: a.iterations, elites: foresight_sim::control::budget::elites(a.candidates), method, hold: a.hold, init_std: a.init_std, prior_share: if a.prior.is_some() { a.prior_share } else { 0.0 }, ..PlannerConfig::default() },
        replan_every: a.replan_every,
        max_steps: a.max_steps,
        shape: CostShape { approach: a.approach, standoff: a.standoff, around: a.around, running: a.running_cost, model_push_gain: a.push_gain, model_push_deadzone: a.push_deadzone, model_contact_gate: a.contact_gate, model_agent_gain: a.agent_gain },
        audit_steps: a.audit_steps,
        sampler: match &model {
            Some(m) if a.sampler_steps.is_some() || a.temperature.is_some() || a.reencode_every.is_some() || a.context_noise.is_some() => {
                let mut s = m.meta.sampler.overridden(a.sampler_steps, a.temperature, a.reencode_every).map_err(|e| anyhow::anyhow!("sampler options: {e}"))?;
                s.context_noise = a.context_noise.unwrap_or(s.context_noise);
                s.validate().map_err(|e| anyhow::anyhow!("sampler options: {e}"))?;
                Some(s)
            }
            _ => None,
        },
        prior: a.prior,
        model_samples: a.samples,
        model_spread_weight: a.spread_weight,
        audit_dump: a.audit_dump.clone(),
        shadow_model: a.shadow_model,
    };
    anyhow::ensure!(!a.shadow_model || (a.imagination == ImaginationKind::Oracle && model.is_some()), "--shadow-model needs --imagination oracle and --checkpoint");
    anyhow::ensure!(a.samples >= 1, "--samples must be at least 1");
    anyhow::ensure!(a.spread_weight.is_finite(), "--spread-weight {} must be finite", a.spread_weight);
    cfg.planner.validate().map_err(|e| anyhow::anyhow!(e))?;
    anyhow::ensure!(a.push_gain.is_finite() && a.push_gain > 0.0, "--push-gain {} must be positive", a.push_gain);
    anyhow::ensure!(a.push_deadzone.is_finite() && a.push_deadzone >= 0.0, "--push-deadzone {} must be a length in pixels, at least 0", a.push_deadzone);
    anyhow::ensure!(a.contact_gate.is_finite() && a.contact_gate >= 0.0, "--contact-gate {} must be a length in pixels, at least 0", a.contact_gate);
    anyhow::ensure!(a.around.is_finite() && a.around >= 0.0, "--around {} must be a radius in pixels, at least 0", a.around);
    anyhow::ensure!(a.agent_gain.is_finite() && a.agent_gain > 0.0, "--agent-gain {} must be positive", a.agent_gain);
    let mut oracle = Oracle::new(scene.clone(), 1)?;
    let (h, w) = scene.resolution();
    let gif_path = a.gif.clone().unwrap_or_else(|| a.json.with_extension("gif"));
    if let Some(dir) = a.json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let identity = serde_json::json!({
        "scene": scene.name,
        "imagination": a.imagination,
        "checkpoint": a.checkpoint,
        "seed": a.seed,
        "config": cfg,
    });
    let mut results: Vec<EpisodeResult> = if a.resume && a.json.exists() { resumed_results(&a.json, &identity, &seeds)? } else { Vec::new() };
    // The JSON is rewritten after every episode, so a stopped run keeps what it measured.
    let write_report = |results: &[EpisodeResult]| -> anyhow::Result<PlanSummary> {
        let sum = PlanSummary::of(results);
        let mut report = identity.clone();
        let extra = serde_json::json!({
            "episodes": results.len(),
            "episodes_requested": seeds.len(),
            "complete": results.len() == seeds.len(),
            "success_rate": sum.rate,
            "success_ci95": sum.ci,
            "starts_at_goal": sum.at_goal,
            "success_rate_moved": sum.rate_moved,
            "success_ci95_moved": sum.ci_moved,
            "mean_steps_to_success": if sum.mean_steps.is_finite() { serde_json::json!(sum.mean_steps) } else { serde_json::Value::Null },
            "final_distance": sum.final_distance,
            "final_distance_unit": "px",
            "seconds_per_action": sum.seconds_per_action,
            "cost_spearman_vs_oracle": sum.spearman,
            "regret_px": sum.regret,
            "imagined_body_lost": sum.body_lost,
            "imagined_body_error_px": sum.body_error,
            "imagined_agent_error_px": sum.agent_error,
            "imagined_push_ratio": sum.push_ratio,
            "imagined_agent_motion_ratio": sum.agent_motion,
            "imagined_body_error_px_by_step": sum.body_error_by_step,
            "imagined_agent_error_px_by_step": sum.agent_error_by_step,
            "results": results,
            "command": command,
        });
        if let (Some(r), serde_json::Value::Object(e)) = (report.as_object_mut(), extra) {
            r.extend(e);
        }
        foresight::data::write_atomic(&a.json, serde_json::to_string_pretty(&report)?.as_bytes())?;
        Ok(sum)
    };
    let tty = std::io::stderr().is_terminal();
    let bar = if tty { ProgressBar::new(seeds.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} episodes {msg} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_position(results.len() as u64);
    if !results.is_empty() {
        eprintln!("resuming {}: {} of {} episodes done", a.json.display(), results.len(), seeds.len());
    }
    for (i, &seed) in seeds.iter().enumerate().skip(results.len()) {
        let mut film = Filmstrip { real: Vec::new(), imagined: Vec::new() };
        let r = run_episode(&scene, seed, a.imagination, model.as_ref(), second.as_ref(), &mut oracle, &cfg, (i == a.gif_episode).then_some(&mut film))?;
        if i == a.gif_episode {
            // The episode's real frames beside what was imagined for them (black where nothing was).
            let blank = vec![0u8; h * w * 3];
            let real: Vec<&[u8]> = film.real.iter().map(|f| f.as_slice()).collect();
            let imagined: Vec<Vec<u8>> = film.imagined.iter().map(|im| im.clone().unwrap_or_else(|| blank.clone())).collect();
            foresight::media::write_comparison(&gif_path, &real, &[imagined], h, w)?;
        }
        let outcome = if r.success { "success" } else { "failure" };
        let audit = match (r.cost_spearman_vs_oracle, r.imagined_body_lost) {
            (Some(rho), Some(lost)) => {
                let err = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1}"));
                format!(", cost Spearman vs oracle {rho:.2}, block lost in {:.0}% of imagined futures, imagined block/agent off by {}/{} px, agent moved {} and pushes {} of their true length", 100.0 * lost, err(r.imagined_body_error_px), err(r.imagined_agent_error_px), r.imagined_agent_motion_ratio.map_or("-".to_string(), |v| format!("{v:.2}")), r.imagined_push_ratio.map_or("-".to_string(), |v| format!("{v:.2}")))
            }
            _ => String::new(),
        };
        let line = format!("episode {}/{}: {outcome} after {} steps, final distance {:.1} px, {:.3} s planning per action{audit}", i + 1, seeds.len(), r.steps, r.final_distance_px, r.seconds_per_action);
        results.push(r);
        let sum = write_report(&results)?;
        let ok = results.iter().filter(|r| r.success).count();
        if tty {
            bar.set_message(format!("{ok}/{} succeeded", results.len()));
            bar.inc(1);
        } else {
            eprintln!("{line}; {ok}/{} succeeded so far ({:.2})", results.len(), sum.rate);
        }
    }
    bar.finish_and_clear();
    let sum = write_report(&results)?;
    println!(
        "plan ({:?} imagination, {} starts of `{}`): success {:.2} [95% CI {:.2}, {:.2}], mean steps to success {:.1}, final distance {:.1} px, {:.3} s planning per action",
        a.imagination,
        results.len(),
        scene.name,
        sum.rate,
        sum.ci[0],
        sum.ci[1],
        sum.mean_steps,
        sum.final_distance,
        sum.seconds_per_action
    );
    if let (Some(rho), Some(regret)) = (sum.spearman, sum.regret) {
        println!("the model's candidate costs against the oracle's on the same candidates: Spearman {rho:.3}, regret {regret:.2} px per plan");
        let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
        println!(
            "imagined last frames against the truth: block off by {} px, agent by {} px; the agent moved {} and pushes {} of their true length",
            f(sum.body_error),
            f(sum.agent_error),
            f(sum.agent_motion),
            f(sum.push_ratio)
        );
    }
    if let (Some(agent), Some(body)) = (&sum.agent_error_by_step, &sum.body_error_by_step) {
        let row = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" / ");
        println!("imagined positions off by horizon step 1..{}: agent {} px; block {} px", agent.len(), row(agent), row(body));
    }
    if sum.at_goal > 0 {
        println!("{} starts had the block in the goal already; over the other {}: success {:.2} [95% CI {:.2}, {:.2}]", sum.at_goal, results.len() - sum.at_goal, sum.rate_moved, sum.ci_moved[0], sum.ci_moved[1]);
    }
    println!("wrote {} and {} (episode {}: real | imagined | difference)", a.json.display(), gif_path.display(), a.gif_episode);
    Ok(())
}

/// The figures of a closed-loop run over the episodes done so far.
struct PlanSummary {
    rate: f64,
    ci: [f64; 2],
    /// Starts whose block already lay in the goal (success after 0 steps).
    at_goal: usize,
    /// Success over the other starts, where something had to be pushed.
    rate_moved: f64,
    ci_moved: [f64; 2],
    mean_steps: f64,
    final_distance: f64,
    seconds_per_action: f64,
    /// Model imagination: the episodes' mean agreement with the oracle on candidate costs.
    spearman: Option<f64>,
    regret: Option<f64>,
    /// Model imagination: the audit's position figures (see `EpisodeResult`), over episodes.
    body_lost: Option<f64>,
    body_error: Option<f64>,
    agent_error: Option<f64>,
    push_ratio: Option<f64>,
    agent_motion: Option<f64>,
    body_error_by_step: Option<Vec<f64>>,
    agent_error_by_step: Option<Vec<f64>>,
}

impl PlanSummary {
    fn of(results: &[EpisodeResult]) -> Self {
        use foresight_sim::control::wilson95;
        let n = results.len().max(1) as f64;
        let ok: Vec<_> = results.iter().filter(|r| r.success).collect();
        let at_goal = results.iter().filter(|r| r.success && r.steps == 0).count();
        let moved = results.len() - at_goal;
        PlanSummary {
            rate: ok.len() as f64 / n,
            ci: wilson95(ok.len(), results.len()),
            at_goal,
            rate_moved: (ok.len() - at_goal) as f64 / moved.max(1) as f64,
            ci_moved: wilson95(ok.len() - at_goal, moved),
            mean_steps: if ok.is_empty() { f64::NAN } else { ok.iter().map(|r| r.steps as f64).sum::<f64>() / ok.len() as f64 },
            final_distance: results.iter().map(|r| r.final_distance_px as f64).sum::<f64>() / n,
            seconds_per_action: results.iter().map(|r| r.seconds_per_action).sum::<f64>() / n,
            spearman: mean(results.iter().filter_map(|r| r.cost_spearman_vs_oracle)),
            regret: mean(results.iter().filter_map(|r| r.regret_px)),
            body_lost: mean(results.iter().filter_map(|r| r.imagined_body_lost)),
            body_error: mean(results.iter().filter_map(|r| r.imagined_body_error_px)),
            agent_error: mean(results.iter().filter_map(|r| r.imagined_agent_error_px)),
            push_ratio: push_ratio(results),
            agent_motion: mean(results.iter().filter_map(|r| r.imagined_agent_motion_ratio)),
            body_error_by_step: mean_by_step(results.iter().filter_map(|r| r.imagined_body_error_px_by_step.as_deref())),
            agent_error_by_step: mean_by_step(results.iter().filter_map(|r| r.imagined_agent_error_px_by_step.as_deref())),
        }
    }
}

/// The episodes' push ratios weighted by their pushing candidates (an episode with many pushes
/// counts more than one with a single one).
fn push_ratio(results: &[EpisodeResult]) -> Option<f64> {
    let (mut num, mut den) = (0.0, 0usize);
    for r in results {
        if let (Some(x), Some(n)) = (r.imagined_push_ratio, r.pushing_candidates) {
            num += x * n as f64;
            den += n;
        }
    }
    (den > 0).then(|| num / den as f64)
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = v.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Per-step means over episodes of per-step figures (steps past an episode's horizon, or NaN
/// ones, are left out).
fn mean_by_step<'a>(v: impl Iterator<Item = &'a [f64]>) -> Option<Vec<f64>> {
    let mut sums: Vec<(f64, usize)> = Vec::new();
    for row in v {
        if sums.len() < row.len() {
            sums.resize(row.len(), (0.0, 0));
        }
        for (s, x) in sums.iter_mut().zip(row).filter(|(_, x)| x.is_finite()) {
            s.0 += x;
            s.1 += 1;
        }
    }
    (!sums.is_empty()).then(|| sums.iter().map(|&(x, n)| if n > 0 { x / n as f64 } else { f64::NAN }).collect())
}

/// The finished episodes of the partial run at `path`, refused when it was another run.
fn resumed_results(path: &std::path::Path, identity: &serde_json::Value, seeds: &[u64]) -> anyhow::Result<Vec<EpisodeResult>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {} to resume", path.display()))?;
    let old: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not a plan report", path.display()))?;
    for (key, want) in identity.as_object().into_iter().flatten() {
        // Compared as text, so that floats written and read back match.
        let have = old.get(key).map(|v| v.to_string());
        anyhow::ensure!(have.as_deref() == Some(want.to_string().as_str()), "{}: `{key}` differs from this run's ({} vs {want}); not resuming", path.display(), have.unwrap_or_else(|| "missing".into()));
    }
    let results: Vec<EpisodeResult> = serde_json::from_value(old.get("results").cloned().unwrap_or_default()).with_context(|| format!("{}: unreadable `results`", path.display()))?;
    anyhow::ensure!(results.len() <= seeds.len(), "{}: {} episodes done, more than the {} asked for", path.display(), results.len(), seeds.len());
    for (r, s) in results.iter().zip(seeds) {
        anyhow::ensure!(r.seed == *s, "{}: episode seed {} is not this run's {s}", path.display(), r.seed);
    }
    Ok(results)
}

fn evaluate_policies(a: EvalPoliciesArgs, command: String) -> anyhow::Result<()> {
    use foresight::plan::policies::{mean_abs_error, spearman, FramePolicyKind};
    use foresight_sim::evaluate::{in_true_scene, in_world_model};
    let scene = Arc::new(Scene::load(&a.scene)?);
    let model = foresight::world_model::WorldModel::load(&a.checkpoint)?;
    anyhow::ensure!(model.meta.scene == scene.name, "the checkpoint is a model of `{}`, not `{}`", model.meta.scene, scene.name);
    let seeds: Vec<u64> = (0..a.episodes as u64).map(|i| foresight::rng::episode_seed(&scene.name, a.seed, i)).collect();
    let trained: std::collections::HashSet<u64> = model.meta.train_seeds.iter().copied().collect();
    anyhow::ensure!(seeds.iter().all(|s| !trained.contains(s)), "some starts were training episodes of the checkpoint; choose another --seed");
    let all = [
        FramePolicyKind::Scripted { noise: 0.0 },
        FramePolicyKind::Scripted { noise: 0.15 },
        FramePolicyKind::Scripted { noise: 0.3 },
        FramePolicyKind::Scripted { noise: 0.6 },
        FramePolicyKind::Scripted { noise: 1.2 },
        FramePolicyKind::Random,
        FramePolicyKind::Zero,
    ];
    let named = all.iter().map(|&k| Ok((k, foresight::plan::policies::FramePolicy::new(&scene, k, 0).map_err(|e| anyhow::anyhow!(e))?.name()))).collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(unknown) = a.policies.iter().find(|p| !named.iter().any(|(_, n)| n == *p)) {
        anyhow::bail!("--policies: no policy named `{unknown}` ({})", named.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", "));
    }
    let kinds: Vec<(FramePolicyKind, String)> = named.into_iter().filter(|(_, n)| a.policies.is_empty() || a.policies.contains(n)).collect();
    if let Some(dir) = a.json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut renderer = foresight_sim::Renderer::new(scene.clone(), a.episodes.min(64))?;
    let sampler = model.meta.sampler.overridden(a.sampler_steps, a.temperature, a.reencode_every).map_err(|e| anyhow::anyhow!("sampler options: {e}"))?;
    let mut rows = Vec::new();
    for (kind, name) in kinds {
        let t0 = std::time::Instant::now();
        let (truth, true_frames) = in_true_scene(&scene, &mut renderer, kind, &seeds, a.steps)?;
        if a.true_only {
            println!("{name:>22}: success true {:.2}, return true {:.1} ({:.0} s)", truth.success, truth.ret, t0.elapsed().as_secs_f64());
            rows.push((name, foresight_sim::evaluate::Outcome { success: f64::NAN, ret: f64::NAN }, truth));
            continue;
        }
        let (imagined, model_frames) = in_world_model(&scene, &model, &sampler, &mut renderer, kind, &seeds, a.steps)?;
        if rows.is_empty() {
            // The first policy's first episode in both worlds (truth | model | difference),
            // the shorter one held on its last frame.
            let n = true_frames.len().max(model_frames.len());
            let pad = |f: &[Vec<u8>]| -> Vec<Vec<u8>> { (0..n).map(|t| f[t.min(f.len() - 1)].clone()).collect() };
            let (truth_f, model_f) = (pad(&true_frames), pad(&model_frames));
            let (h, w) = scene.resolution();
            let gif = a.json.with_file_name(format!("{}_{name}.gif", a.json.file_stem().and_then(|s| s.to_str()).unwrap_or("policies")));
            let png = foresight::media::write_comparison(&gif, &truth_f.iter().map(|f| f.as_slice()).collect::<Vec<_>>(), &[model_f], h, w)?;
            println!("{name:>22}: first episode, true scene | world model | difference: {} and {}", gif.display(), png.display());
        }
        println!("{name:>22}: success model {:.2} / true {:.2}, return model {:.1} / true {:.1} ({:.0} s)", imagined.success, truth.success, imagined.ret, truth.ret, t0.elapsed().as_secs_f64());
        rows.push((name, imagined, truth));
    }
    let model_scores: Vec<(f64, f64)> = rows.iter().map(|r| (r.1.success, r.1.ret)).collect();
    let true_scores: Vec<(f64, f64)> = rows.iter().map(|r| (r.2.success, r.2.ret)).collect();
    let rho = spearman(&model_scores, &true_scores);
    let mae = mean_abs_error(&rows.iter().map(|r| r.1.success).collect::<Vec<_>>(), &rows.iter().map(|r| r.2.success).collect::<Vec<_>>());
    let close_pairs: Vec<[String; 2]> = (0..rows.len()).flat_map(|i| (i + 1..rows.len()).map(move |j| (i, j))).filter(|&(i, j)| (rows[i].2.success - rows[j].2.success).abs() < 0.15).map(|(i, j)| [rows[i].0.clone(), rows[j].0.clone()]).collect();
    let report = serde_json::json!({
        "scene": scene.name,
        "checkpoint": a.checkpoint,
        "episodes": a.episodes,
        "steps": a.steps,
        "seed": a.seed,
        "policies": rows.iter().map(|(name, m, t)| serde_json::json!({"name": name, "success_model": m.success, "success_true": t.success, "return_model": m.ret, "return_true": t.ret})).collect::<Vec<_>>(),
        "spearman": rho,
        "success_mae": mae,
        "close_pairs": close_pairs,
        "sampler": sampler,
        "command": command,
    });
    foresight::data::write_atomic(&a.json, serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!("spearman {rho:.3}, success MAE {mae:.3}; {} pairs of policies with true success rates within 0.15; wrote {}", close_pairs.len(), a.json.display());
    Ok(())
}
