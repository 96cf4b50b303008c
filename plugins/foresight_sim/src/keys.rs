//! Keyboard to action vector: arrow keys push the agent in image space, key pairs drive joints.

use foresight::camera::PixelCamera;
use foresight::scene::{ActionTarget, Scene};

/// Which direction keys are held.
#[derive(Debug, Clone, Copy, Default)]
pub struct Held {
    /// Right arrow (or D).
    pub right: bool,
    /// Left arrow (or A).
    pub left: bool,
    /// Up arrow (or W).
    pub up: bool,
    /// Down arrow (or S).
    pub down: bool,
    /// Joint keys: `joints[k] = (+, -)` for the k-th joint channel (Q/Z, E/C, R/V, …).
    pub joints: [(bool, bool); 4],
}

/// The action for held keys: force and impulse channels follow the arrows in image space
/// (right is right on screen whatever the world axes); joint channels follow their key pairs.
pub fn action_from_keys(scene: &Scene, held: Held) -> Vec<f32> {
    let cam = PixelCamera::new(&scene.camera);
    let (right, up, _) = cam.basis();
    let sx = held.right as i32 as f32 - held.left as i32 as f32;
    let sy = held.up as i32 as f32 - held.down as i32 as f32;
    let want = [right[0] * sx + up[0] * sy, right[1] * sx + up[1] * sy, right[2] * sx + up[2] * sy];
    let mut joint = 0;
    scene
        .actions
        .iter()
        .map(|ch| {
            let v = match &ch.target {
                ActionTarget::Force { direction: d, .. } | ActionTarget::Impulse { direction: d, .. } => {
                    let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt().max(1e-6);
                    (want[0] * d[0] + want[1] * d[1] + want[2] * d[2]) / n
                }
                ActionTarget::JointVelocity { .. } => {
                    let (p, m) = held.joints.get(joint).copied().unwrap_or_default();
                    joint += 1;
                    p as i32 as f32 - m as i32 as f32
                }
            };
            v.clamp(ch.low, ch.high)
        })
        .collect()
}

/// The held keys of a Bevy keyboard: arrows or WASD, and the joint pairs Q/Z, E/C, R/V, T/B.
pub fn held_keys(keys: &bevy::input::ButtonInput<bevy::input::keyboard::KeyCode>) -> Held {
    use bevy::input::keyboard::KeyCode;
    let any = |k: &[KeyCode]| k.iter().any(|k| keys.pressed(*k));
    Held {
        right: any(&[KeyCode::ArrowRight, KeyCode::KeyD]),
        left: any(&[KeyCode::ArrowLeft, KeyCode::KeyA]),
        up: any(&[KeyCode::ArrowUp, KeyCode::KeyW]),
        down: any(&[KeyCode::ArrowDown, KeyCode::KeyS]),
        joints: [
            (any(&[KeyCode::KeyQ]), any(&[KeyCode::KeyZ])),
            (any(&[KeyCode::KeyE]), any(&[KeyCode::KeyC])),
            (any(&[KeyCode::KeyR]), any(&[KeyCode::KeyV])),
            (any(&[KeyCode::KeyT]), any(&[KeyCode::KeyB])),
        ],
    }
}
