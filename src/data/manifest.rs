//! `manifest.json`: what a dataset holds and where each episode lies (DESIGN.md, dataset format).

use serde::{Deserialize, Serialize};

use crate::scene::{Colour, Role, Scene};

/// Version of the dataset format written by this crate.
pub const FORMAT_VERSION: u32 = 1;

/// Per-body fields of a state row, in order; a state row is these for every dynamic body.
/// `px`, `py` are the body centre projected into the frame: column and row, with the centre of
/// the top-left pixel at (0, 0).
pub const STATE_FIELDS: [&str; 15] = ["x", "y", "z", "qx", "qy", "qz", "qw", "vx", "vy", "vz", "wx", "wy", "wz", "px", "py"];

/// Offset of `px` inside a body's block of [`STATE_FIELDS`].
pub const STATE_PX: usize = 13;

/// The action vector's meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSpec {
    /// Number of values per action.
    pub dim: usize,
    /// A name per value.
    pub names: Vec<String>,
    /// Lowest value of each channel.
    pub low: Vec<f32>,
    /// Highest value of each channel.
    pub high: Vec<f32>,
    /// Whether actions are one-hot vectors of a discrete choice.
    pub discrete: bool,
}

impl ActionSpec {
    /// The action spec of a scene.
    pub fn from_scene(scene: &Scene) -> Self {
        ActionSpec {
            dim: scene.actions.len(),
            names: scene.actions.iter().map(|a| a.name.clone()).collect(),
            low: scene.actions.iter().map(|a| a.low).collect(),
            high: scene.actions.iter().map(|a| a.high).collect(),
            discrete: false,
        }
    }
}

/// Names of the state columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateSpec {
    /// `body.field` for every column.
    pub names: Vec<String>,
}

impl StateSpec {
    /// The state columns of a scene: [`STATE_FIELDS`] for each dynamic body.
    pub fn from_scene(scene: &Scene) -> Self {
        let names = scene.bodies.iter().flat_map(|b| STATE_FIELDS.iter().map(move |f| format!("{}.{f}", b.name))).collect();
        StateSpec { names }
    }
}

/// A dynamic body as the dataset sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BodyInfo {
    /// Name.
    pub name: String,
    /// Flat colour.
    pub colour: Colour,
    /// `agent` or `object`.
    pub role: Role,
}

/// A body that moved, in image space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    /// Body name.
    pub body: String,
    /// `left`, `right`, `up` or `down` (the dominant image direction).
    pub direction: String,
    /// Displacement from the first to the last frame, pixels.
    pub distance_px: f32,
}

/// A body that ended inside a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndedIn {
    /// Body name.
    pub body: String,
    /// Region name.
    pub region: String,
}

/// The caption in checkable form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Events {
    /// Bodies that moved more than 2 px.
    pub moved: Vec<Moved>,
    /// Bodies that stayed within 2 px.
    pub still: Vec<String>,
    /// Pairs of bodies that touched at some point: an agent body first, else by name.
    pub touched: Vec<[String; 2]>,
    /// Where bodies ended.
    pub ended_in: Vec<EndedIn>,
}

/// Where one episode lies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeInfo {
    /// Shard file name (relative to the dataset directory).
    pub shard: String,
    /// First frame of the episode inside the shard's `frames` (and `states`).
    pub frame_offset: usize,
    /// First action inside the shard's `actions`.
    pub action_offset: usize,
    /// Number of transitions: the episode has `steps + 1` frames.
    pub steps: usize,
    /// The episode's seed (derived from scene, run seed and index).
    pub seed: u64,
    /// The data-collection policy.
    pub policy: String,
    /// One or more sentences on what happens.
    pub caption: String,
    /// The caption in checkable form.
    pub events: Events,
    /// Transitions in which the agent touched another dynamic body.
    #[serde(default)]
    pub contact_steps: usize,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Scene name (`imported` for imported data).
    pub scene: String,
    /// Hash of the scene's content.
    pub scene_hash: String,
    /// Frame size `[height, width]`.
    pub resolution: [usize; 2],
    /// Physics step in seconds.
    pub dt: f32,
    /// Physics steps per transition.
    pub frame_skip: u32,
    /// The action vector.
    pub action_spec: ActionSpec,
    /// The state columns, absent when there are no states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_spec: Option<StateSpec>,
    /// The dynamic bodies.
    pub bodies: Vec<BodyInfo>,
    /// Fraction of transitions in which the agent touches another body (null when unknown).
    pub contact_fraction: Option<f64>,
    /// Episodes, in order.
    pub episodes: Vec<EpisodeInfo>,
    /// The run seed the episode seeds were derived from.
    #[serde(default)]
    pub run_seed: Option<u64>,
    /// The command that wrote the dataset.
    #[serde(default)]
    pub command: String,
}

impl Manifest {
    /// An empty manifest for a scene's episodes.
    pub fn for_scene(scene: &Scene, run_seed: u64, command: String) -> Self {
        let (h, w) = scene.resolution();
        Manifest {
            format_version: FORMAT_VERSION,
            scene: scene.name.clone(),
            scene_hash: scene.content_hash(),
            resolution: [h, w],
            dt: scene.physics.dt,
            frame_skip: scene.physics.frame_skip,
            action_spec: ActionSpec::from_scene(scene),
            state_spec: Some(StateSpec::from_scene(scene)),
            bodies: scene.bodies.iter().map(|b| BodyInfo { name: b.name.clone(), colour: b.colour, role: b.role }).collect(),
            contact_fraction: None,
            episodes: Vec::new(),
            run_seed: Some(run_seed),
            command,
        }
    }

    /// Values per frame row of `states`, if any.
    pub fn state_dim(&self) -> usize {
        self.state_spec.as_ref().map_or(0, |s| s.names.len())
    }

    /// Index of the body the actions drive (the last `agent` body).
    pub fn agent_body(&self) -> Option<usize> {
        self.bodies.iter().rposition(|b| b.role == Role::Agent)
    }
}
