//! Running episodes in lock-step: many environments stepped by their policies and drawn in one
//! render call per step.

use std::sync::Arc;

use foresight::data::events::{caption, episode_events};
use foresight::data::Episode;
use foresight::scene::Scene;

use crate::physics::{SimError, SimWorld};
use crate::policy::Policy;
use crate::render::{RenderError, Renderer};

/// An episode failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Physics or action error.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// Rendering error.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// What drives an environment for one episode.
pub enum Driver {
    /// A policy chooses every action.
    Policy(Policy),
    /// A fixed action sequence.
    Actions(Vec<Vec<f32>>),
}

/// Records episodes of `steps` transitions for a batch of environments (at most the renderer's
/// slots), environment i drawn in slot i. Each world starts from its own seed.
pub fn record_batch(
    renderer: &mut Renderer,
    scene: &Arc<Scene>,
    starts: Vec<SimWorld>,
    seeds: &[u64],
    mut drivers: Vec<Driver>,
    policy_name: &str,
    steps: usize,
) -> Result<Vec<Episode>, RunError> {
    let n = starts.len();
    let (h, w) = scene.resolution();
    let dim = scene.action_dim();
    let mut worlds = starts;
    let mut frames: Vec<Vec<u8>> = vec![Vec::with_capacity((steps + 1) * h * w * 3); n];
    let mut actions: Vec<Vec<f32>> = vec![Vec::with_capacity(steps * dim); n];
    let mut states: Vec<Vec<f32>> = vec![Vec::new(); n];
    let mut touched: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    let mut contact_steps = vec![0usize; n];
    let draw = |renderer: &mut Renderer, worlds: &[SimWorld], frames: &mut [Vec<u8>], states: &mut [Vec<f32>]| -> Result<(), RunError> {
        let refs: Vec<&SimWorld> = worlds.iter().collect();
        for (i, f) in renderer.render(&refs)?.into_iter().enumerate() {
            frames[i].extend_from_slice(&f);
            states[i].extend_from_slice(&worlds[i].state_row());
        }
        Ok(())
    };
    draw(renderer, &worlds, &mut frames, &mut states)?;
    for t in 0..steps {
        for i in 0..n {
            let a = match &mut drivers[i] {
                Driver::Policy(p) => p.act(&worlds[i]),
                Driver::Actions(seq) => seq.get(t).cloned().ok_or_else(|| SimError::Action(format!("the action sequence has {} actions, {steps} needed", seq.len())))?,
            };
            let a = scene.check_action(&a).map_err(SimError::Action)?;
            let pairs = worlds[i].step(&a)?;
            if worlds[i].agent_contact(&pairs) {
                contact_steps[i] += 1;
            }
            for p in pairs {
                if !touched[i].contains(&p) {
                    touched[i].push(p);
                }
            }
            actions[i].extend_from_slice(&a);
        }
        draw(renderer, &worlds, &mut frames, &mut states)?;
    }
    let sd = states.first().map_or(0, |s| s.len() / (steps + 1));
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let first = &states[i][..sd];
        let last = &states[i][steps * sd..];
        let events = episode_events(scene, first, last, &touched[i]);
        out.push(Episode {
            height: h,
            width: w,
            frames: std::mem::take(&mut frames[i]),
            action_dim: dim,
            actions: std::mem::take(&mut actions[i]),
            state_dim: sd,
            states: std::mem::take(&mut states[i]),
            seed: seeds[i],
            policy: policy_name.to_string(),
            caption: caption(scene, &events),
            events,
            contact_steps: contact_steps[i],
        });
    }
    Ok(out)
}
