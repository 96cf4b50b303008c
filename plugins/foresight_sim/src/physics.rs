//! A scene's rapier3d world: built from a [`Scene`] and a seed, stepped a transition at a time,
//! cloned whole for the oracle.
//!
//! Joints are multibody (reduced-coordinate) joints, so an arm never comes apart on impact.
//! Replay is exact because every piece of state is cloned (bodies, colliders, joints, islands,
//! broad and narrow phase with their warm-start data, CCD solver, integration parameters) and
//! rapier's `parallel` feature is off. The pipeline holds only scratch space and is made anew.

use std::collections::HashMap;
use std::sync::Arc;

use foresight::camera::PixelCamera;
use foresight::data::STATE_FIELDS;
use foresight::rng::Rng;
use foresight::scene::{ActionTarget, Scene, Shape};
use rapier3d::glamx::glam::EulerRot;
use rapier3d::glamx::{Quat, Vec3};
use rapier3d::prelude::*;

/// An error building or driving a world.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The action was malformed.
    #[error("bad action: {0}")]
    Action(String),
    /// The scene's spawn ranges could not be satisfied.
    #[error("scene `{scene}`: {message}")]
    Spawn {
        /// Scene name.
        scene: String,
        /// What failed.
        message: String,
    },
}

/// The pose and velocity of one dynamic body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BodyState {
    /// Centre.
    pub position: [f32; 3],
    /// Orientation quaternion (x, y, z, w).
    pub rotation: [f32; 4],
    /// Linear velocity.
    pub linvel: [f32; 3],
    /// Angular velocity.
    pub angvel: [f32; 3],
}

/// One environment: its own rapier world, never shared.
pub struct SimWorld {
    scene: Arc<Scene>,
    gravity: Vector,
    params: IntegrationParameters,
    pipeline: PhysicsPipeline,
    islands: IslandManager,
    broad_phase: DefaultBroadPhase,
    narrow_phase: NarrowPhase,
    bodies: RigidBodySet,
    colliders: ColliderSet,
    impulse_joints: ImpulseJointSet,
    multibody_joints: MultibodyJointSet,
    soft_bodies: SoftBodySet,
    ccd: CCDSolver,
    handles: Vec<RigidBodyHandle>,
    joints: Vec<(MultibodyJointHandle, RigidBodyHandle)>,
    owner: HashMap<ColliderHandle, usize>,
    camera: PixelCamera,
    steps: u64,
}

impl Clone for SimWorld {
    fn clone(&self) -> Self {
        SimWorld {
            scene: self.scene.clone(),
            gravity: self.gravity,
            params: self.params,
            pipeline: PhysicsPipeline::new(),
            islands: self.islands.clone(),
            broad_phase: self.broad_phase.clone(),
            narrow_phase: self.narrow_phase.clone(),
            bodies: self.bodies.clone(),
            colliders: self.colliders.clone(),
            impulse_joints: self.impulse_joints.clone(),
            multibody_joints: self.multibody_joints.clone(),
            soft_bodies: SoftBodySet::new(),
            ccd: self.ccd.clone(),
            handles: self.handles.clone(),
            joints: self.joints.clone(),
            owner: self.owner.clone(),
            camera: self.camera.clone(),
            steps: self.steps,
        }
    }
}

fn v3(a: [f32; 3]) -> Vec3 {
    Vec3::new(a[0], a[1], a[2])
}

fn euler(deg: [f32; 3]) -> Quat {
    Quat::from_euler(EulerRot::XYZ, deg[0].to_radians(), deg[1].to_radians(), deg[2].to_radians())
}

fn collider(shape: &Shape) -> ColliderBuilder {
    match shape {
        Shape::Ball { radius } => ColliderBuilder::ball(*radius),
        Shape::Cuboid { half_extents: h } => ColliderBuilder::cuboid(h[0], h[1], h[2]),
        Shape::Cylinder { half_height, radius } => ColliderBuilder::cylinder(*half_height, *radius),
    }
}

/// Volume of a shape, to turn a mass into a density.
fn volume(shape: &Shape) -> f32 {
    match shape {
        Shape::Ball { radius } => 4.0 / 3.0 * std::f32::consts::PI * radius.powi(3),
        Shape::Cuboid { half_extents: h } => 8.0 * h[0] * h[1] * h[2],
        Shape::Cylinder { half_height, radius } => std::f32::consts::PI * radius * radius * 2.0 * half_height,
    }
}

impl SimWorld {
    /// Builds the scene's world, drawing the initial conditions from `seed`.
    pub fn new(scene: Arc<Scene>, seed: u64) -> Result<Self, SimError> {
        let mut rng = Rng::new(seed);
        // Draw again (from the same stream, so still deterministic) while bodies that are not
        // jointed together overlap, e.g. a cube spawned under a randomly posed arm.
        for _ in 0..100 {
            let w = Self::build(scene.clone(), &mut rng)?;
            if !w.overlapping() {
                return Ok(w);
            }
        }
        Err(SimError::Spawn { scene: scene.name.clone(), message: "bodies overlap in 100 draws of the spawn ranges; widen them".into() })
    }

    /// Whether two dynamic bodies that are not jointed together intersect.
    fn overlapping(&self) -> bool {
        let scene = &self.scene;
        let jointed = |a: &str, b: &str| scene.joints.iter().any(|j| (j.parent.as_deref() == Some(a) && j.child == b) || (j.parent.as_deref() == Some(b) && j.child == a));
        let shape = |i: usize| self.bodies[self.handles[i]].colliders().first().map(|c| (self.colliders[*c].shape(), *self.bodies[self.handles[i]].position()));
        for i in 0..self.handles.len() {
            for j in i + 1..self.handles.len() {
                if jointed(&scene.bodies[i].name, &scene.bodies[j].name) {
                    continue;
                }
                if let (Some((s1, p1)), Some((s2, p2))) = (shape(i), shape(j)) {
                    if rapier3d::parry::query::intersection_test(&p1, s1, &p2, s2).is_ok_and(|r| r.intersecting) {
                        return true;
                    }
                }
            }
        }
        false
    }

    fn build(scene: Arc<Scene>, rng: &mut Rng) -> Result<Self, SimError> {
        let n = scene.bodies.len();
        // Initial poses: nominal, then spawn ranges in order, then random joint angles.
        let mut pos: Vec<Vec3> = scene.bodies.iter().map(|b| v3(b.position)).collect();
        let mut rot: Vec<Quat> = scene.bodies.iter().map(|b| euler(b.rotation_deg)).collect();
        let nominal_pos = pos.clone();
        let nominal_rot = rot.clone();
        let mut vel = vec![Vec3::ZERO; n];
        for (i, b) in scene.bodies.iter().enumerate() {
            let Some(sp) = &b.spawn else { continue };
            let base = match &sp.relative_to {
                Some(r) => pos[scene.body_index(r).unwrap_or(i)],
                None => nominal_pos[i],
            };
            let mut placed = false;
            for _ in 0..1000 {
                let off = Vec3::new(
                    rng.range(sp.offset_min[0], sp.offset_max[0]),
                    rng.range(sp.offset_min[1], sp.offset_max[1]),
                    rng.range(sp.offset_min[2], sp.offset_max[2]),
                );
                let p = base + off;
                let r = b.shape.bounding_radius();
                let inside = sp.bounds.is_none_or(|[lo, hi]| (0..3).all(|k| p[k] >= lo[k] && p[k] <= hi[k]));
                let clear = inside && (0..i).all(|j| p.distance(pos[j]) >= r + scene.bodies[j].shape.bounding_radius() + sp.min_gap);
                if clear {
                    pos[i] = p;
                    placed = true;
                    break;
                }
            }
            if !placed {
                return Err(SimError::Spawn { scene: scene.name.clone(), message: format!("no free place for `{}` after 1000 draws; widen its spawn range or lower min_gap", b.name) });
            }
            if let Some([lo, hi]) = sp.yaw_deg {
                rot[i] = Quat::from_rotation_y(rng.range(lo, hi).to_radians()) * rot[i];
            }
            vel[i] = Vec3::new(
                rng.range(sp.velocity_min[0], sp.velocity_max[0]),
                rng.range(sp.velocity_min[1], sp.velocity_max[1]),
                rng.range(sp.velocity_min[2], sp.velocity_max[2]),
            );
        }
        // Random initial joint angles, applied to the multibody's coordinates below.
        let angles: Vec<f32> = scene.joints.iter().map(|j| j.spawn_angle_deg.map_or(0.0, |[lo, hi]| rng.range(lo, hi).to_radians())).collect();

        let mut bodies = RigidBodySet::new();
        let mut colliders = ColliderSet::new();
        let mut multibody_joints = MultibodyJointSet::new();
        let mut owner = HashMap::new();
        for s in &scene.statics {
            let h = bodies.insert(RigidBodyBuilder::fixed().pose(Pose::from_parts(v3(s.position), euler(s.rotation_deg))));
            colliders.insert_with_parent(collider(&s.shape).friction(s.friction).restitution(s.restitution), h, &mut bodies);
        }
        let mut handles = Vec::with_capacity(n);
        for (i, b) in scene.bodies.iter().enumerate() {
            let mut locked = LockedAxes::empty();
            let flags = [
                (b.locks.translation[0], LockedAxes::TRANSLATION_LOCKED_X),
                (b.locks.translation[1], LockedAxes::TRANSLATION_LOCKED_Y),
                (b.locks.translation[2], LockedAxes::TRANSLATION_LOCKED_Z),
                (b.locks.rotation[0], LockedAxes::ROTATION_LOCKED_X),
                (b.locks.rotation[1], LockedAxes::ROTATION_LOCKED_Y),
                (b.locks.rotation[2], LockedAxes::ROTATION_LOCKED_Z),
            ];
            for (on, f) in flags {
                if on {
                    locked |= f;
                }
            }
            let rb = RigidBodyBuilder::dynamic()
                .pose(Pose::from_parts(pos[i], rot[i]))
                .linvel(vel[i])
                .linear_damping(b.linear_damping)
                .angular_damping(b.angular_damping)
                .locked_axes(locked)
                .can_sleep(false)
                .ccd_enabled(true);
            let h = bodies.insert(rb);
            let c = colliders.insert_with_parent(
                collider(&b.shape).density(b.mass / volume(&b.shape)).friction(b.friction).restitution(b.restitution),
                h,
                &mut bodies,
            );
            owner.insert(c, i);
            handles.push(h);
        }
        let ground = bodies.insert(RigidBodyBuilder::fixed());
        let mut joints = Vec::new();
        for j in &scene.joints {
            // Joint frames come from the nominal pose, so angle 0 is the pose written in the scene.
            let ci = scene.body_index(&j.child).unwrap_or(0);
            let anchor = v3(j.anchor);
            let axis = v3(j.axis).normalize();
            let (p_handle, p_pos, p_rot) = match j.parent.as_ref().and_then(|p| scene.body_index(p)) {
                Some(pi) => (handles[pi], nominal_pos[pi], nominal_rot[pi]),
                None => (ground, Vec3::ZERO, Quat::IDENTITY),
            };
            let mut data = RevoluteJointBuilder::new(axis)
                .contacts_enabled(false)
                .motor_velocity(0.0, j.motor.damping)
                .motor_max_force(j.motor.max_force);
            if let Some([lo, hi]) = j.limits_deg {
                data = data.limits([lo.to_radians(), hi.to_radians()]);
            }
            let mut joint: GenericJoint = data.build().into();
            joint.set_local_anchor1(p_rot.inverse() * (anchor - p_pos));
            joint.set_local_anchor2(nominal_rot[ci].inverse() * (anchor - nominal_pos[ci]));
            joint.set_local_axis1(p_rot.inverse() * axis);
            joint.set_local_axis2(nominal_rot[ci].inverse() * axis);
            let h = multibody_joints.insert(p_handle, handles[ci], joint, true).ok_or_else(|| SimError::Spawn {
                scene: scene.name.clone(),
                message: format!("joint `{}` would close a kinematic loop; joints must form a tree", j.name),
            })?;
            joints.push((h, handles[ci]));
        }
        for (&(h, _), &angle) in joints.iter().zip(&angles) {
            if angle == 0.0 {
                continue;
            }
            if let Some((mb, id)) = multibody_joints.get_mut(h) {
                if let Some(link) = mb.link_mut(id) {
                    link.joint.apply_displacement(&[angle]);
                }
                mb.forward_kinematics(&bodies, false);
                mb.update_rigid_bodies(&mut bodies, false);
            }
        }
        let params = IntegrationParameters { dt: scene.physics.dt, ..IntegrationParameters::default() };
        let camera = PixelCamera::new(&scene.camera);
        Ok(SimWorld {
            gravity: v3(scene.physics.gravity),
            scene,
            params,
            pipeline: PhysicsPipeline::new(),
            islands: IslandManager::new(),
            broad_phase: DefaultBroadPhase::default(),
            narrow_phase: NarrowPhase::new(),
            bodies,
            colliders,
            impulse_joints: ImpulseJointSet::new(),
            multibody_joints,
            soft_bodies: SoftBodySet::new(),
            ccd: CCDSolver::new(),
            handles,
            joints,
            owner,
            camera,
            steps: 0,
        })
    }

    /// The scene.
    pub fn scene(&self) -> &Arc<Scene> {
        &self.scene
    }

    /// Transitions stepped so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn physics_step(&mut self) {
        self.pipeline.step(
            self.gravity,
            &self.params,
            &mut self.islands,
            &mut self.broad_phase,
            &mut self.narrow_phase,
            &mut self.bodies,
            &mut self.colliders,
            &mut self.impulse_joints,
            &mut self.multibody_joints,
            &mut self.soft_bodies,
            &mut self.ccd,
            &(),
            &(),
        );
    }

    /// Applies one action for one transition (`frame_skip` physics steps). Returns the pairs of
    /// dynamic bodies (indices) in contact during the transition.
    pub fn step(&mut self, action: &[f32]) -> Result<Vec<(usize, usize)>, SimError> {
        let action = self.scene.check_action(action).map_err(SimError::Action)?;
        let scene = self.scene.clone();
        for h in &self.handles {
            if let Some(b) = self.bodies.get_mut(*h) {
                b.reset_forces(false);
            }
        }
        for (ch, &v) in scene.actions.iter().zip(&action) {
            match &ch.target {
                ActionTarget::Force { body, direction, scale } => {
                    let h = self.handles[scene.body_index(body).unwrap_or(0)];
                    if let Some(b) = self.bodies.get_mut(h) {
                        b.add_force(v3(*direction) * (v * scale), true);
                    }
                }
                ActionTarget::Impulse { body, direction, scale } => {
                    let h = self.handles[scene.body_index(body).unwrap_or(0)];
                    if let Some(b) = self.bodies.get_mut(h) {
                        b.apply_impulse(v3(*direction) * (v * scale), true);
                    }
                }
                ActionTarget::JointVelocity { joint, scale } => {
                    let ji = scene.joints.iter().position(|j| &j.name == joint).unwrap_or(0);
                    let damping = scene.joints[ji].motor.damping;
                    if let Some(link) = self.multibody_joints.get_mut(self.joints[ji].0).and_then(|(mb, id)| mb.link_mut(id)) {
                        link.joint.data.set_motor_velocity(JointAxis::AngX, v * scale, damping);
                    }
                }
            }
        }
        let mut touched = Vec::new();
        for _ in 0..scene.physics.frame_skip {
            self.physics_step();
            for pair in self.narrow_phase.contact_pairs() {
                if !pair.has_any_active_contact() {
                    continue;
                }
                if let (Some(&a), Some(&b)) = (self.owner.get(&pair.collider1), self.owner.get(&pair.collider2)) {
                    let p = (a.min(b), a.max(b));
                    if !touched.contains(&p) {
                        touched.push(p);
                    }
                }
            }
        }
        touched.sort();
        self.steps += 1;
        Ok(touched)
    }

    /// Whether a contact list has the agent touching a body that is not part of the agent.
    pub fn agent_contact(&self, touched: &[(usize, usize)]) -> bool {
        let role = |i: usize| self.scene.bodies[i].role;
        touched.iter().any(|&(a, b)| role(a) != role(b))
    }

    /// Every dynamic body's pose and velocity, in scene order.
    pub fn body_states(&self) -> Vec<BodyState> {
        self.handles
            .iter()
            .map(|h| {
                let b = &self.bodies[*h];
                let t = b.translation();
                let r = b.rotation();
                let lv = b.linvel();
                let av = b.angvel();
                BodyState { position: [t.x, t.y, t.z], rotation: [r.x, r.y, r.z, r.w], linvel: [lv.x, lv.y, lv.z], angvel: [av.x, av.y, av.z] }
            })
            .collect()
    }

    /// The state row recorded with a frame: [`STATE_FIELDS`] for every body, pixel position last.
    pub fn state_row(&self) -> Vec<f32> {
        let mut row = Vec::with_capacity(self.handles.len() * STATE_FIELDS.len());
        for s in self.body_states() {
            let px = self.camera.project(s.position).unwrap_or([f32::NAN, f32::NAN]);
            row.extend_from_slice(&s.position);
            row.extend_from_slice(&s.rotation);
            row.extend_from_slice(&s.linvel);
            row.extend_from_slice(&s.angvel);
            row.extend_from_slice(&px);
        }
        row
    }

    /// The world position of a joint's pivot (for the scripted arm policy).
    pub fn joint_anchor(&self, ji: usize) -> Option<[f32; 3]> {
        let (h, child) = *self.joints.get(ji)?;
        let (mb, id) = self.multibody_joints.get(h)?;
        let p = self.bodies.get(child)?.position().transform_point(mb.link(id)?.joint.data.local_anchor2());
        Some([p.x, p.y, p.z])
    }

    /// A joint's current axis in world coordinates.
    pub fn joint_axis(&self, ji: usize) -> Option<[f32; 3]> {
        let (h, child) = *self.joints.get(ji)?;
        let (mb, id) = self.multibody_joints.get(h)?;
        let a = *self.bodies.get(child)?.rotation() * mb.link(id)?.joint.data.local_axis2();
        Some([a.x, a.y, a.z])
    }

    /// Index of the body the actions drive (for the arm: the last link).
    pub fn agent_body(&self) -> usize {
        self.scene.agent_body()
    }
}
