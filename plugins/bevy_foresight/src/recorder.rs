//! `RecorderPlugin`: records any Bevy app's camera frames and the actions it takes into the
//! dataset format, so a game team can train (or fine-tune with `foresight train --init`) a world
//! model on their own game.
//!
//! The app steps its game in `FixedUpdate` and writes the action it applied into
//! [`RecordedAction`]. After every fixed step the recorder asks the [`RecorderCamera`]'s
//! [`ForesightCamera`] for the frame and pauses virtual time until it arrives, so frame `t+1` is
//! exactly the state after action `t`, however slow the renderer. The stream is cut into
//! episodes of `episode_steps` transitions (each starting on the previous one's last frame); a
//! game that resets sends [`CutEpisode`] so no episode spans the jump. Episodes are flushed a
//! shard at a time with an atomically rewritten manifest: a crash keeps what was written.

use std::path::PathBuf;

use bevy::prelude::*;
use foresight::data::{ActionSpec, BodyInfo, DatasetWriter, Episode, Events, Manifest, FORMAT_VERSION};

use crate::observe::ForesightCamera;

/// Marks the camera (with a [`ForesightCamera`] in `on_request` mode) whose frames are recorded.
#[derive(Component, Debug, Default, Clone, Copy)]
pub struct RecorderCamera;

/// The action the app applied in this fixed step (its length is the action dimension).
#[derive(Resource, Debug, Default, Clone)]
pub struct RecordedAction(pub Vec<f32>);

/// The game jumped (reset, new level): the partial episode is dropped and a new one starts from
/// the next frame.
#[derive(Message, Debug, Default, Clone, Copy)]
pub struct CutEpisode;

/// What to record and where.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Output dataset directory (must not hold a dataset yet).
    pub out: PathBuf,
    /// Name of the game (the manifest's `scene`).
    pub name: String,
    /// The action vector (names, ranges, `discrete` for one-hot keys).
    pub action_spec: ActionSpec,
    /// Bodies with their flat colours, for colour-based evaluation (may be empty).
    pub bodies: Vec<BodyInfo>,
    /// Seconds per fixed step.
    pub dt: f32,
    /// Transitions per episode.
    pub episode_steps: usize,
    /// Episodes to record; then the dataset is finished (and the app exits if `exit_when_done`).
    pub episodes: usize,
    /// Episodes per shard file.
    pub episodes_per_shard: usize,
    /// Send `AppExit` when done.
    pub exit_when_done: bool,
    /// Seed recorded for the first episode (then +1 per episode), e.g. the game's own seed.
    pub first_seed: u64,
}

/// Progress and errors, for the app to show.
#[derive(Resource, Debug, Default, Clone)]
pub struct RecorderStatus {
    /// Episodes written.
    pub episodes: usize,
    /// Transitions recorded in the current episode.
    pub steps: usize,
    /// Whether all episodes are written.
    pub done: bool,
    /// The last error (a bad action, a failed write), if any.
    pub error: Option<String>,
}

/// Records frames and actions into a dataset. See the module docs.
pub struct RecorderPlugin {
    config: RecorderConfig,
}

impl RecorderPlugin {
    /// Records with `config`.
    pub fn new(config: RecorderConfig) -> Self {
        RecorderPlugin { config }
    }
}

#[derive(Resource)]
struct Recording {
    config: RecorderConfig,
    writer: Option<DatasetWriter>,
    frames: Vec<Vec<u8>>,
    actions: Vec<f32>,
    /// Waiting for a capture: the camera's capture count it must exceed.
    waiting: Option<u64>,
    resolution: [usize; 2],
}

impl Plugin for RecorderPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<CutEpisode>()
            .init_resource::<RecordedAction>()
            .init_resource::<RecorderStatus>()
            .insert_resource(Recording { config: self.config.clone(), writer: None, frames: Vec::new(), actions: Vec::new(), waiting: None, resolution: [0, 0] })
            .add_systems(FixedPostUpdate, after_step)
            .add_systems(PreUpdate, (crate::observe::start_capture, start, collect).chain());
    }
}

fn fail(status: &mut RecorderStatus, message: String) {
    error!("foresight recorder: {message}");
    status.error = Some(message);
}

/// Opens the dataset and asks for the first frame once the camera exists.
fn start(
    mut rec: ResMut<Recording>,
    mut status: ResMut<RecorderStatus>,
    mut cameras: Query<&mut ForesightCamera, With<RecorderCamera>>,
    mut time: ResMut<Time<Virtual>>,
    fixed: Res<Time<Fixed>>,
) {
    if rec.writer.is_some() || status.done || status.error.is_some() {
        return;
    }
    let Ok(mut cam) = cameras.single_mut() else { return };
    let c = &rec.config;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        scene: c.name.clone(),
        scene_hash: String::new(),
        resolution: cam.resolution,
        dt: c.dt,
        frame_skip: 1,
        action_spec: c.action_spec.clone(),
        state_spec: None,
        bodies: c.bodies.clone(),
        contact_fraction: None,
        episodes: Vec::new(),
        run_seed: Some(c.first_seed),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    match DatasetWriter::create(&c.out, manifest, c.episodes_per_shard) {
        Ok(w) => {
            rec.resolution = cam.resolution;
            rec.writer = Some(w);
            cam.request_capture();
            rec.waiting = Some(cam.captured);
            time.pause();
            // At most one fixed step per frame, so each step's frame can be captured.
            time.set_max_delta(fixed.timestep());
        }
        Err(e) => fail(&mut status, e.to_string()),
    }
}

/// After each fixed step: take the action, ask for the frame, hold the game until it arrives.
fn after_step(
    mut rec: ResMut<Recording>,
    mut status: ResMut<RecorderStatus>,
    action: Res<RecordedAction>,
    mut cuts: MessageReader<CutEpisode>,
    mut cameras: Query<&mut ForesightCamera, With<RecorderCamera>>,
    mut time: ResMut<Time<Virtual>>,
) {
    if rec.writer.is_none() || status.done {
        return;
    }
    if rec.waiting.is_some() {
        // A second fixed step ran before the frame arrived (a long frame): this stretch cannot be
        // aligned, so the episode in progress is dropped and restarts from the next frame.
        if !rec.frames.is_empty() {
            warn!("foresight recorder: two fixed steps in one frame; the episode in progress is dropped");
        }
        rec.frames.clear();
        rec.actions.clear();
        return;
    }
    let Ok(mut cam) = cameras.single_mut() else { return };
    let cut = cuts.read().count() > 0;
    if cut {
        // The game jumped: start over from the next frame.
        rec.frames.clear();
        rec.actions.clear();
    } else {
        let dim = rec.config.action_spec.dim;
        let a = &action.0;
        if a.len() != dim || a.iter().any(|v| !v.is_finite()) {
            fail(&mut status, format!("RecordedAction {a:?} is not {dim} finite values; the episode in progress is dropped"));
            rec.frames.clear();
            rec.actions.clear();
        } else if !rec.frames.is_empty() {
            rec.actions.extend_from_slice(a);
        }
    }
    cam.request_capture();
    rec.waiting = Some(cam.captured);
    time.pause();
}

/// When the requested frame has arrived: append it, write finished episodes, let the game go on.
fn collect(
    mut rec: ResMut<Recording>,
    mut status: ResMut<RecorderStatus>,
    mut cameras: Query<&mut ForesightCamera, With<RecorderCamera>>,
    mut time: ResMut<Time<Virtual>>,
    mut exit: MessageWriter<AppExit>,
) {
    let Some(before) = rec.waiting else { return };
    let Ok(mut cam) = cameras.single_mut() else { return };
    if cam.captured <= before || cam.capture_pending() {
        return;
    }
    let Some(frame) = cam.latest().map(|f| f.to_vec()) else { return };
    if status.episodes == 0 && rec.frames.is_empty() && frame.chunks(3).all(|p| p == &frame[..3]) {
        // The renderer is still starting (a blank capture): ask again before the game moves.
        cam.request_capture();
        rec.waiting = Some(cam.captured);
        return;
    }
    rec.waiting = None;
    time.unpause();
    let dim = rec.config.action_spec.dim;
    // A frame without its action (after a bad action or a cut) starts an episode afresh.
    if !rec.frames.is_empty() && rec.actions.len() != rec.frames.len() * dim {
        rec.frames.clear();
        rec.actions.clear();
    }
    rec.frames.push(frame);
    status.steps = rec.frames.len() - 1;
    if status.steps < rec.config.episode_steps {
        return;
    }
    let [h, w] = rec.resolution;
    let seed = rec.config.first_seed + status.episodes as u64;
    let last = rec.frames.last().cloned().unwrap_or_default();
    let frames = std::mem::take(&mut rec.frames).concat();
    let actions = std::mem::take(&mut rec.actions);
    let ep = Episode {
        height: h,
        width: w,
        frames,
        action_dim: dim,
        actions,
        state_dim: 0,
        states: Vec::new(),
        seed,
        policy: "recorded".into(),
        caption: String::new(),
        events: Events::default(),
        contact_steps: 0,
    };
    let Some(writer) = rec.writer.as_mut() else { return };
    if let Err(e) = writer.push(ep) {
        fail(&mut status, e.to_string());
        return;
    }
    status.episodes += 1;
    // The next episode continues from this frame.
    rec.frames.push(last);
    status.steps = 0;
    if status.episodes >= rec.config.episodes {
        if let Some(writer) = rec.writer.take() {
            match writer.finish() {
                Ok(m) => info!("foresight recorder: {} episodes written to {}", m.episodes.len(), rec.config.out.display()),
                Err(e) => fail(&mut status, e.to_string()),
            }
        }
        status.done = true;
        if rec.config.exit_when_done {
            exit.write(AppExit::Success);
        }
    }
}
