//! The scene format: a RON file that describes a physics world, its agent, camera, goal and captions.
//!
//! The types here are plain data (no physics, no Bevy), so that the core crate can read a scene's
//! goal, bodies and camera when it evaluates or plans. `foresight_sim` turns a [`Scene`] into a
//! rapier3d world and Bevy entities. Every field is documented in the README ("Scene format").

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// An sRGB colour, one byte a channel.
pub type Colour = [u8; 3];

/// A scene file: static geometry, dynamic bodies, joints, the agent's action mapping, the camera,
/// time step, episode length, randomisation, goal and caption templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    /// Short name, recorded in the dataset manifest (`push`, `bounce`, `arm`).
    pub name: String,
    /// One sentence on what happens in the scene.
    #[serde(default)]
    pub description: String,
    /// Time step, frame skip and gravity.
    pub physics: PhysicsSpec,
    /// Default number of recorded transitions (actions) in an episode.
    pub episode_steps: u32,
    /// The camera that renders the frames.
    pub camera: CameraSpec,
    /// Clear colour of the frame.
    pub background: Colour,
    /// Fixed geometry: floors, walls. Collides, and is drawn when `visible`.
    #[serde(default)]
    pub statics: Vec<StaticSpec>,
    /// Dynamic rigid bodies, each with a unique flat colour. Spawned in this order.
    pub bodies: Vec<BodySpec>,
    /// Revolute joints with velocity motors (the arm), parent before child.
    #[serde(default)]
    pub joints: Vec<JointSpec>,
    /// The action vector, one channel per entry, each mapped to a force, impulse or motor target.
    pub actions: Vec<ActionChannel>,
    /// Named regions of the floor, used by the goal and by captions ("ends in the goal").
    #[serde(default)]
    pub regions: Vec<RegionSpec>,
    /// Optional goal: which body must reach which region, and the reward.
    #[serde(default)]
    pub goal: Option<GoalSpec>,
    /// Caption templates turned into sentences from an episode's events.
    pub captions: CaptionTemplates,
}

/// Physics timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicsSpec {
    /// Physics time step in seconds.
    pub dt: f32,
    /// Physics steps per recorded transition (one action, one new frame).
    pub frame_skip: u32,
    /// Gravity vector in m/s².
    pub gravity: [f32; 3],
}

/// Collision shape, also drawn as the body's mesh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    /// A sphere.
    Ball {
        /// Radius in metres.
        radius: f32,
    },
    /// A box.
    Cuboid {
        /// Half sizes along x, y, z.
        half_extents: [f32; 3],
    },
    /// A cylinder along the local y axis.
    Cylinder {
        /// Half height.
        half_height: f32,
        /// Radius.
        radius: f32,
    },
}

impl Shape {
    /// Radius of a sphere that encloses the shape.
    pub fn bounding_radius(&self) -> f32 {
        match self {
            Shape::Ball { radius } => *radius,
            Shape::Cuboid { half_extents: h } => (h[0] * h[0] + h[1] * h[1] + h[2] * h[2]).sqrt(),
            Shape::Cylinder { half_height, radius } => (half_height * half_height + radius * radius).sqrt(),
        }
    }

    /// A short noun for captions ("ball", "block", "disc").
    pub fn noun(&self) -> &'static str {
        match self {
            Shape::Ball { .. } => "ball",
            Shape::Cuboid { .. } => "block",
            Shape::Cylinder { .. } => "disc",
        }
    }
}

/// Fixed geometry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSpec {
    /// Name, for errors.
    pub name: String,
    /// Shape.
    pub shape: Shape,
    /// Centre in world coordinates.
    pub position: [f32; 3],
    /// Rotation as Euler angles in degrees (x, then y, then z).
    #[serde(default)]
    pub rotation_deg: [f32; 3],
    /// Coulomb friction coefficient.
    #[serde(default = "default_friction")]
    pub friction: f32,
    /// Restitution in [0, 1].
    #[serde(default)]
    pub restitution: f32,
    /// Flat colour.
    pub colour: Colour,
    /// Drawn or not (invisible walls keep bodies in view).
    #[serde(default = "default_true")]
    pub visible: bool,
}

/// Who a body is to the actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Driven by the actions (push: the disc; arm: every link).
    Agent,
    /// Everything else that moves.
    Object,
}

/// Which translation and rotation axes are locked (planar scenes lock the rest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locks {
    /// Lock translation along x, y, z.
    #[serde(default)]
    pub translation: [bool; 3],
    /// Lock rotation about x, y, z.
    #[serde(default)]
    pub rotation: [bool; 3],
}

/// A dynamic rigid body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodySpec {
    /// Unique name, used in captions ("blue block").
    pub name: String,
    /// Shape.
    pub shape: Shape,
    /// Mass in kg (> 0).
    pub mass: f32,
    /// Friction coefficient (>= 0).
    pub friction: f32,
    /// Restitution in [0, 1].
    pub restitution: f32,
    /// Unique flat colour, so the body can be located in a frame by its colour.
    pub colour: Colour,
    /// `agent` or `object`.
    pub role: Role,
    /// Nominal centre in world coordinates.
    pub position: [f32; 3],
    /// Nominal rotation, Euler degrees.
    #[serde(default)]
    pub rotation_deg: [f32; 3],
    /// Randomisation of the initial conditions; `None` keeps the nominal pose.
    #[serde(default)]
    pub spawn: Option<SpawnSpec>,
    /// Linear damping.
    #[serde(default)]
    pub linear_damping: f32,
    /// Angular damping.
    #[serde(default)]
    pub angular_damping: f32,
    /// Locked axes.
    #[serde(default)]
    pub locks: Locks,
}

/// Ranges of initial conditions, drawn uniformly from the episode seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnSpec {
    /// Offsets are relative to this earlier body's spawned position (contact-rich starts), or to
    /// the nominal position when `None`.
    #[serde(default)]
    pub relative_to: Option<String>,
    /// Lower corner of the offset box.
    pub offset_min: [f32; 3],
    /// Upper corner of the offset box.
    pub offset_max: [f32; 3],
    /// Range of a random rotation about the world y axis, degrees.
    #[serde(default)]
    pub yaw_deg: Option<[f32; 2]>,
    /// Lower corner of the initial linear velocity.
    #[serde(default)]
    pub velocity_min: [f32; 3],
    /// Upper corner of the initial linear velocity.
    #[serde(default)]
    pub velocity_max: [f32; 3],
    /// Minimum free gap to every body spawned before this one (rejection sampling).
    #[serde(default)]
    pub min_gap: f32,
    /// World box `[min, max]` the spawned centre must lie in (rejection sampling).
    #[serde(default)]
    pub bounds: Option<[[f32; 3]; 2]>,
}

/// Velocity motor of a joint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotorSpec {
    /// Maximum motor force (torque).
    pub max_force: f32,
    /// How hard the motor tracks the target velocity.
    pub damping: f32,
}

/// A revolute joint with a velocity motor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointSpec {
    /// Unique name, referred to by `JointVelocity` actions.
    pub name: String,
    /// Parent body; `None` fixes the joint to the world.
    #[serde(default)]
    pub parent: Option<String>,
    /// Child body.
    pub child: String,
    /// The joint's pivot in world coordinates, for the nominal pose.
    pub anchor: [f32; 3],
    /// Rotation axis in world coordinates.
    pub axis: [f32; 3],
    /// Velocity motor.
    pub motor: MotorSpec,
    /// Angle limits in degrees.
    #[serde(default)]
    pub limits_deg: Option<[f32; 2]>,
    /// Range of the random initial angle, degrees.
    #[serde(default)]
    pub spawn_angle_deg: Option<[f32; 2]>,
}

/// What one action channel drives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ActionTarget {
    /// A force `value * scale * direction` on `body`, held for every physics step of the transition.
    Force {
        /// Body name.
        body: String,
        /// Direction in world coordinates.
        direction: [f32; 3],
        /// Newtons per action unit.
        scale: f32,
    },
    /// An impulse `value * scale * direction` on `body`, once at the start of the transition.
    Impulse {
        /// Body name.
        body: String,
        /// Direction in world coordinates.
        direction: [f32; 3],
        /// N·s per action unit.
        scale: f32,
    },
    /// A motor velocity target `value * scale` (rad/s) for `joint`.
    JointVelocity {
        /// Joint name.
        joint: String,
        /// rad/s per action unit.
        scale: f32,
    },
}

impl ActionTarget {
    /// The body or joint this channel drives.
    pub fn target_name(&self) -> &str {
        match self {
            ActionTarget::Force { body, .. } | ActionTarget::Impulse { body, .. } => body,
            ActionTarget::JointVelocity { joint, .. } => joint,
        }
    }
}

/// One component of the action vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionChannel {
    /// Name, recorded in the manifest's `action_spec.names`.
    pub name: String,
    /// Lowest accepted value.
    pub low: f32,
    /// Highest accepted value.
    pub high: f32,
    /// What the value drives.
    pub target: ActionTarget,
}

/// How frames are projected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Projection {
    /// Orthographic, with the visible height in metres. Such scenes render many environments
    /// side by side in one view (fast datagen).
    Orthographic {
        /// Visible height in metres.
        height: f32,
    },
    /// Perspective with a vertical field of view.
    Perspective {
        /// Vertical field of view in degrees.
        fov_y_deg: f32,
    },
}

/// The scene camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    /// Eye position.
    pub position: [f32; 3],
    /// Point looked at.
    pub look_at: [f32; 3],
    /// Up direction.
    pub up: [f32; 3],
    /// Projection.
    pub projection: Projection,
    /// Frame size `[height, width]` in pixels (default 64×64).
    #[serde(default = "default_resolution")]
    pub resolution: [u32; 2],
}

/// A named box of the world (the goal, the left half of the table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Name, used by the goal and in captions.
    pub name: String,
    /// Centre.
    pub center: [f32; 3],
    /// Half sizes; a body is inside when its centre is.
    pub half_extents: [f32; 3],
    /// Drawn as a flat marker (no collider) when set.
    #[serde(default)]
    pub colour: Option<Colour>,
}

impl RegionSpec {
    /// Whether a point lies inside the region.
    pub fn contains(&self, p: [f32; 3]) -> bool {
        (0..3).all(|i| (p[i] - self.center[i]).abs() <= self.half_extents[i])
    }
}

/// A goal: a body must reach a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalSpec {
    /// The body that must reach the region.
    pub body: String,
    /// The region's name.
    pub region: String,
    /// Reward per transition: `-distance_weight * distance(body, region centre)`, plus
    /// `success_bonus` while the body is inside the region (success).
    pub reward: RewardSpec,
}

/// Reward shaping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardSpec {
    /// Weight of the distance penalty (per metre).
    pub distance_weight: f32,
    /// Bonus for every transition that ends with the body inside the region.
    pub success_bonus: f32,
}

/// Caption templates. Placeholders: `{body}`, `{direction}`, `{a}`, `{b}`, `{region}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptionTemplates {
    /// A body moved more than 2 px in the image (`{body}`, `{direction}`: left, right, up, down).
    pub moved: String,
    /// A body stayed within 2 px (`{body}`).
    pub still: String,
    /// Two bodies touched (`{a}`, `{b}`).
    pub touched: String,
    /// A body ended inside a region (`{body}`, `{region}`).
    pub ended_in: String,
}

fn default_true() -> bool {
    true
}
fn default_friction() -> f32 {
    0.5
}
fn default_resolution() -> [u32; 2] {
    [64, 64]
}

/// A scene that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// The file could not be read.
    #[error("{path}: cannot read scene file: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The RON text is malformed or has the wrong shape.
    #[error("{path}:{line}:{col}: malformed scene: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What the parser expected.
        message: String,
    },
    /// A value is out of range or a reference is dangling.
    #[error("{path}: invalid scene: field `{field}`: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// The offending field, as a path (`bodies[1].mass`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl Scene {
    /// Reads and validates a scene file.
    pub fn load(path: impl AsRef<Path>) -> Result<Scene, SceneError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SceneError::Io { path: path.to_owned(), source })?;
        Scene::from_ron(&text, path)
    }

    /// Parses and validates RON text; `path` is only used in errors.
    pub fn from_ron(text: &str, path: &Path) -> Result<Scene, SceneError> {
        let scene: Scene = ron::from_str(text).map_err(|e| SceneError::Parse {
            path: path.to_owned(),
            line: e.span.start.line,
            col: e.span.start.col,
            message: e.code.to_string(),
        })?;
        scene.validate().map_err(|(field, message)| SceneError::Invalid { path: path.to_owned(), field, message })?;
        Ok(scene)
    }

    /// A stable hash of the scene's content (not its formatting), hex.
    pub fn content_hash(&self) -> String {
        let canonical = ron::to_string(self).unwrap_or_default();
        format!("{:016x}", crate::rng::fnv1a(canonical.as_bytes()))
    }

    /// Frame height and width.
    pub fn resolution(&self) -> (usize, usize) {
        (self.camera.resolution[0] as usize, self.camera.resolution[1] as usize)
    }

    /// Action dimension.
    pub fn action_dim(&self) -> usize {
        self.actions.len()
    }

    /// Index of a dynamic body by name.
    pub fn body_index(&self, name: &str) -> Option<usize> {
        self.bodies.iter().position(|b| b.name == name)
    }

    /// Index of a region by name.
    pub fn region(&self, name: &str) -> Option<&RegionSpec> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// Index of the first agent body (the body the actions drive; for an arm, the last link is
    /// reported by [`Scene::agent_body`]).
    pub fn agent_body(&self) -> usize {
        // The body the actions act on: the last agent body (the arm's end link, the push disc).
        self.bodies.iter().rposition(|b| b.role == Role::Agent).unwrap_or(0)
    }

    /// Clamps an action to the channels' ranges; refuses a wrong length or a non-finite value.
    pub fn check_action(&self, action: &[f32]) -> Result<Vec<f32>, String> {
        if action.len() != self.actions.len() {
            return Err(format!("action has {} values, scene `{}` expects {}", action.len(), self.name, self.actions.len()));
        }
        action
            .iter()
            .zip(&self.actions)
            .map(|(&v, ch)| {
                if v.is_finite() {
                    Ok(v.clamp(ch.low, ch.high))
                } else {
                    Err(format!("action channel `{}` is {v}, not a finite number", ch.name))
                }
            })
            .collect()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: String, msg: &str| Err((field, msg.to_string()));
        let finite = |field: &str, v: &[f32]| -> Result<(), (String, String)> {
            if v.iter().all(|x| x.is_finite()) { Ok(()) } else { Err((field.to_string(), format!("{v:?} is not finite"))) }
        };
        if self.name.trim().is_empty() {
            return bad("name".into(), "must not be empty");
        }
        let p = &self.physics;
        finite("physics.dt", &[p.dt])?;
        if p.dt <= 0.0 || p.dt > 0.1 {
            return bad("physics.dt".into(), "must be in (0, 0.1] seconds");
        }
        if p.frame_skip == 0 {
            return bad("physics.frame_skip".into(), "must be at least 1");
        }
        finite("physics.gravity", &p.gravity)?;
        if self.episode_steps == 0 {
            return bad("episode_steps".into(), "must be at least 1");
        }
        let c = &self.camera;
        let [h, w] = c.resolution;
        if h == 0 || w == 0 || h > 1024 || w > 1024 {
            return Err(("camera.resolution".into(), format!("{h}x{w}: each side must be in 1..=1024")));
        }
        finite("camera.position", &c.position)?;
        finite("camera.look_at", &c.look_at)?;
        finite("camera.up", &c.up)?;
        let view: Vec<f32> = (0..3).map(|i| c.look_at[i] - c.position[i]).collect();
        if norm(&view) < 1e-6 {
            return bad("camera.look_at".into(), "must differ from camera.position");
        }
        if norm(&cross(&view, &c.up)) < 1e-6 {
            return bad("camera.up".into(), "must not be parallel to the view direction");
        }
        match c.projection {
            Projection::Orthographic { height } if !(height.is_finite() && height > 0.0) => {
                return bad("camera.projection.height".into(), "must be a positive number");
            }
            Projection::Perspective { fov_y_deg } if !(fov_y_deg.is_finite() && fov_y_deg > 0.0 && fov_y_deg < 180.0) => {
                return bad("camera.projection.fov_y_deg".into(), "must be in (0, 180)");
            }
            _ => {}
        }
        let check_shape = |field: String, s: &Shape| -> Result<(), (String, String)> {
            let dims: Vec<f32> = match s {
                Shape::Ball { radius } => vec![*radius],
                Shape::Cuboid { half_extents } => half_extents.to_vec(),
                Shape::Cylinder { half_height, radius } => vec![*half_height, *radius],
            };
            if dims.iter().all(|d| d.is_finite() && *d > 0.0) { Ok(()) } else { Err((field, format!("sizes {dims:?} must be positive"))) }
        };
        for (i, s) in self.statics.iter().enumerate() {
            check_shape(format!("statics[{i}].shape"), &s.shape)?;
            finite(&format!("statics[{i}].position"), &s.position)?;
            finite(&format!("statics[{i}].rotation_deg"), &s.rotation_deg)?;
            if !(s.friction.is_finite() && s.friction >= 0.0) {
                return bad(format!("statics[{i}].friction"), "must be >= 0");
            }
            if !(0.0..=1.0).contains(&s.restitution) {
                return bad(format!("statics[{i}].restitution"), "must be in [0, 1]");
            }
        }
        if self.bodies.is_empty() {
            return bad("bodies".into(), "a scene needs at least one dynamic body");
        }
        let mut names = HashSet::new();
        let mut colours: HashMap<Colour, String> = HashMap::new();
        colours.insert(self.background, "background".into());
        for s in self.statics.iter().filter(|s| s.visible) {
            colours.insert(s.colour, s.name.clone());
        }
        for r in &self.regions {
            if let Some(col) = r.colour {
                colours.insert(col, r.name.clone());
            }
        }
        for (i, b) in self.bodies.iter().enumerate() {
            let f = |name: &str| format!("bodies[{i}].{name}");
            if !names.insert(b.name.clone()) {
                return bad(f("name"), &format!("`{}` is used twice", b.name));
            }
            check_shape(f("shape"), &b.shape)?;
            if !(b.mass.is_finite() && b.mass > 0.0) {
                return Err((f("mass"), format!("{} must be a positive number", b.mass)));
            }
            if !(b.friction.is_finite() && b.friction >= 0.0) {
                return Err((f("friction"), format!("{} must be >= 0", b.friction)));
            }
            if !(b.restitution.is_finite() && (0.0..=1.0).contains(&b.restitution)) {
                return Err((f("restitution"), format!("{} must be in [0, 1]", b.restitution)));
            }
            for (name, v) in [("linear_damping", b.linear_damping), ("angular_damping", b.angular_damping)] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err((f(name), format!("{v} must be >= 0")));
                }
            }
            finite(&f("position"), &b.position)?;
            finite(&f("rotation_deg"), &b.rotation_deg)?;
            if let Some(other) = colours.insert(b.colour, b.name.clone()) {
                return Err((f("colour"), format!("{:?} is already the colour of `{other}`; every body needs its own", b.colour)));
            }
            if let Some(sp) = &b.spawn {
                finite(&f("spawn.offset_min"), &sp.offset_min)?;
                finite(&f("spawn.offset_max"), &sp.offset_max)?;
                finite(&f("spawn.velocity_min"), &sp.velocity_min)?;
                finite(&f("spawn.velocity_max"), &sp.velocity_max)?;
                for k in 0..3 {
                    if sp.offset_min[k] > sp.offset_max[k] || sp.velocity_min[k] > sp.velocity_max[k] {
                        return bad(f("spawn"), "each min must be <= its max");
                    }
                }
                if !(sp.min_gap.is_finite() && sp.min_gap >= 0.0) {
                    return bad(f("spawn.min_gap"), "must be >= 0");
                }
                if let Some(r) = &sp.relative_to {
                    if self.bodies[..i].iter().all(|o| &o.name != r) {
                        return Err((f("spawn.relative_to"), format!("`{r}` is not a body listed before this one")));
                    }
                }
                if let Some(y) = sp.yaw_deg {
                    finite(&f("spawn.yaw_deg"), &y)?;
                }
            }
        }
        if !self.bodies.iter().any(|b| b.role == Role::Agent) {
            return bad("bodies".into(), "one body must have role `agent`");
        }
        let mut joint_names = HashSet::new();
        for (i, j) in self.joints.iter().enumerate() {
            let f = |name: &str| format!("joints[{i}].{name}");
            if !joint_names.insert(j.name.clone()) {
                return bad(f("name"), "is used twice");
            }
            if self.body_index(&j.child).is_none() {
                return Err((f("child"), format!("`{}` is not a body", j.child)));
            }
            if let Some(p) = &j.parent {
                if self.body_index(p).is_none() {
                    return Err((f("parent"), format!("`{p}` is not a body")));
                }
            }
            finite(&f("anchor"), &j.anchor)?;
            finite(&f("axis"), &j.axis)?;
            if norm(&j.axis) < 1e-6 {
                return bad(f("axis"), "must not be zero");
            }
            if !(j.motor.max_force.is_finite() && j.motor.max_force > 0.0 && j.motor.damping.is_finite() && j.motor.damping >= 0.0) {
                return bad(f("motor"), "max_force must be > 0 and damping >= 0");
            }
        }
        if self.actions.is_empty() {
            return bad("actions".into(), "a scene needs at least one action channel");
        }
        for (i, a) in self.actions.iter().enumerate() {
            let f = |name: &str| format!("actions[{i}].{name}");
            if !(a.low.is_finite() && a.high.is_finite() && a.low < a.high) {
                return Err((f("low"), format!("range [{}, {}] must be finite with low < high", a.low, a.high)));
            }
            match &a.target {
                ActionTarget::Force { body, direction, scale } | ActionTarget::Impulse { body, direction, scale } => {
                    if self.body_index(body).is_none() {
                        return Err((f("target.body"), format!("`{body}` is not a body")));
                    }
                    finite(&f("target.direction"), direction)?;
                    finite(&f("target.scale"), &[*scale])?;
                }
                ActionTarget::JointVelocity { joint, scale } => {
                    if !joint_names.contains(joint) {
                        return Err((f("target.joint"), format!("`{joint}` is not a joint")));
                    }
                    finite(&f("target.scale"), &[*scale])?;
                }
            }
        }
        for (i, r) in self.regions.iter().enumerate() {
            finite(&format!("regions[{i}].center"), &r.center)?;
            if !r.half_extents.iter().all(|v| v.is_finite() && *v > 0.0) {
                return bad(format!("regions[{i}].half_extents"), "must be positive");
            }
        }
        if let Some(g) = &self.goal {
            if self.body_index(&g.body).is_none() {
                return Err(("goal.body".into(), format!("`{}` is not a body", g.body)));
            }
            if self.region(&g.region).is_none() {
                return Err(("goal.region".into(), format!("`{}` is not a region", g.region)));
            }
            finite("goal.reward", &[g.reward.distance_weight, g.reward.success_bonus])?;
        }
        Ok(())
    }
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn cross(a: &[f32], b: &[f32]) -> [f32; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
