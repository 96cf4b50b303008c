//! Policy evaluation inside the world model against the true scene: each policy plays the same
//! starts in both worlds (all episodes of a policy in lockstep: one render or one batched model
//! call per step), seeing frames only; the reward and success come from the same frame code
//! ([`foresight::env::frame_reward`]) in both.

use std::sync::Arc;

use foresight::env::{frame_reward, EnvStart, WorldModelEnvs};
use foresight::model::diffusion::SamplerConfig;
use foresight::plan::policies::{FramePolicy, FramePolicyKind};
use foresight::scene::Scene;
use foresight::world_model::WorldModel;

use crate::physics::SimWorld;
use crate::render::Renderer;

/// Success and return of one policy in one world.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Outcome {
    /// Fraction of episodes that reached the goal.
    pub success: f64,
    /// Mean return (sum of rewards until success or the step limit).
    pub ret: f64,
}

/// Per-episode bookkeeping.
struct Track {
    ret: f64,
    done: bool,
}

fn summarise(tracks: &[Track]) -> Outcome {
    let n = tracks.len().max(1) as f64;
    Outcome { success: tracks.iter().filter(|t| t.done).count() as f64 / n, ret: tracks.iter().map(|t| t.ret).sum::<f64>() / n }
}

/// Plays `kind` from each seed in the true scene for `steps` steps. Returns the outcome and the
/// first episode's frames (its start, then one a step until it succeeds or the steps run out).
pub fn in_true_scene(scene: &Arc<Scene>, renderer: &mut Renderer, kind: FramePolicyKind, seeds: &[u64], steps: usize) -> anyhow::Result<(Outcome, Vec<Vec<u8>>)> {
    let mut tracks = Vec::new();
    let mut shown = Vec::new();
    for chunk in seeds.chunks(renderer.slots()) {
        let mut worlds: Vec<SimWorld> = chunk.iter().map(|&s| SimWorld::new(scene.clone(), s)).collect::<Result<_, _>>()?;
        let mut policies: Vec<FramePolicy> = chunk.iter().map(|&s| FramePolicy::new(scene, kind, s)).collect::<Result<_, _>>().map_err(|e| anyhow::anyhow!(e))?;
        let mut t: Vec<Track> = chunk.iter().map(|_| Track { ret: 0.0, done: false }).collect();
        let mut frames = renderer.render(&worlds.iter().collect::<Vec<_>>())?;
        let show = tracks.is_empty();
        if show {
            shown.push(frames[0].clone());
        }
        for _ in 0..steps {
            for i in 0..worlds.len() {
                if !t[i].done {
                    let a = policies[i].act(&frames[i]);
                    worlds[i].step(&a)?;
                }
            }
            frames = renderer.render(&worlds.iter().collect::<Vec<_>>())?;
            if show && !t[0].done {
                shown.push(frames[0].clone());
            }
            for i in 0..worlds.len() {
                if !t[i].done {
                    let (r, done) = frame_reward(scene, &frames[i]);
                    t[i].ret += r as f64;
                    t[i].done = done;
                }
            }
            if t.iter().all(|x| x.done) {
                break;
            }
        }
        tracks.extend(t);
    }
    Ok((summarise(&tracks), shown))
}

/// Plays `kind` from each seed's true first frame inside the world model (one batched call per
/// step for all episodes still running, their windows in latent space: [`WorldModelEnvs`]).
pub fn in_world_model(scene: &Arc<Scene>, model: &WorldModel, sampler: &SamplerConfig, renderer: &mut Renderer, kind: FramePolicyKind, seeds: &[u64], steps: usize) -> anyhow::Result<(Outcome, Vec<Vec<u8>>)> {
    let mut tracks = Vec::new();
    let mut shown = Vec::new();
    for chunk in seeds.chunks(renderer.slots()) {
        let worlds: Vec<SimWorld> = chunk.iter().map(|&s| SimWorld::new(scene.clone(), s)).collect::<Result<_, _>>()?;
        let mut policies: Vec<FramePolicy> = chunk.iter().map(|&s| FramePolicy::new(scene, kind, s)).collect::<Result<_, _>>().map_err(|e| anyhow::anyhow!(e))?;
        let mut t: Vec<Track> = chunk.iter().map(|_| Track { ret: 0.0, done: false }).collect();
        let first = renderer.render(&worlds.iter().collect::<Vec<_>>())?;
        let starts = first.into_iter().zip(chunk).map(|(f, &seed)| EnvStart { frames: vec![f], past_actions: None, seed }).collect();
        let mut envs = WorldModelEnvs::reset(model, (**scene).clone(), starts)?.with_sampler(*sampler);
        let show = tracks.is_empty();
        if show {
            shown.push(envs.frame(0).to_vec());
        }
        for _ in 0..steps {
            let live: Vec<usize> = (0..chunk.len()).filter(|&i| !t[i].done).collect();
            if live.is_empty() {
                break;
            }
            let actions: Vec<Vec<f32>> = live.iter().map(|&i| policies[i].act(envs.frame(i))).collect();
            for (&i, step) in live.iter().zip(envs.step(&live, &actions)?) {
                t[i].ret += step.reward as f64;
                t[i].done = step.done;
                if show && i == 0 {
                    shown.push(step.frame);
                }
            }
        }
        tracks.extend(t);
    }
    Ok((summarise(&tracks), shown))
}
