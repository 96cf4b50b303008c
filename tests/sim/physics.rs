use std::sync::Arc;

use foresight::scene::Scene;
use foresight_sim::SimWorld;

use crate::root;

fn scene(name: &str) -> Arc<Scene> {
    Arc::new(Scene::load(root().join(format!("scenes/{name}.ron"))).unwrap())
}

#[test]
fn same_seed_same_world_and_clone_replays_exactly() {
    for name in ["push", "bounce", "arm"] {
        let s = scene(name);
        let mut a = SimWorld::new(s.clone(), 42).unwrap();
        let b = SimWorld::new(s.clone(), 42).unwrap();
        assert_eq!(a.state_row(), b.state_row(), "{name}");
        assert_ne!(a.state_row(), SimWorld::new(s.clone(), 43).unwrap().state_row(), "{name}: seeds differ");
        let dim = s.action_dim();
        let acts: Vec<Vec<f32>> = (0..20).map(|t| (0..dim).map(|k| ((t * 7 + k * 3) as f32 * 0.37).sin()).collect()).collect();
        for act in &acts[..5] {
            a.step(act).unwrap();
        }
        let mut fork = a.clone();
        let mut rows_a = Vec::new();
        let mut rows_f = Vec::new();
        for act in &acts[5..] {
            a.step(act).unwrap();
            fork.step(act).unwrap();
            rows_a.push(a.state_row());
            rows_f.push(fork.state_row());
        }
        assert_eq!(rows_a, rows_f, "{name}: a clone must replay bit for bit");
    }
}

#[test]
fn bad_actions_are_errors() {
    let s = scene("push");
    let mut w = SimWorld::new(s, 1).unwrap();
    assert!(w.step(&[f32::NAN, 0.0]).unwrap_err().to_string().contains("force_x"));
    assert!(w.step(&[0.0, 0.0, 0.0]).is_err());
    assert!(w.step(&[0.5, f32::INFINITY]).is_err());
}

#[test]
fn arm_motors_move_the_hand() {
    let s = scene("arm");
    let mut w = SimWorld::new(s.clone(), 3).unwrap();
    let hand = w.agent_body();
    let p0 = w.body_states()[hand].position;
    for _ in 0..5 {
        w.step(&[1.0, 0.0, 0.0]).unwrap();
    }
    let p1 = w.body_states()[hand].position;
    let d = ((p1[0] - p0[0]).powi(2) + (p1[2] - p0[2]).powi(2)).sqrt();
    assert!(d > 0.3, "shoulder motor moved the hand only {d} m");
    // The links stay on their joints: the upper arm's inner end stays at the shoulder.
    let anchor = w.joint_anchor(0).unwrap();
    assert!((anchor[0] + 1.2).abs() < 0.05 && anchor[2].abs() < 0.05, "shoulder drifted to {anchor:?}");
}

#[test]
fn push_agent_is_driven_by_force() {
    let s = scene("push");
    let mut w = SimWorld::new(s, 5).unwrap();
    let agent = w.agent_body();
    let x0 = w.body_states()[agent].position[0];
    for _ in 0..4 {
        w.step(&[1.0, 0.0]).unwrap();
    }
    let x1 = w.body_states()[agent].position[0];
    assert!(x1 > x0 + 0.1 || x0 > 1.4, "disc moved from {x0} to {x1}");
}



