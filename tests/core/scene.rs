use std::path::Path;

use foresight::scene::{Scene, SceneError};

use crate::root;

#[test]
fn shipped_scenes_load() {
    for name in ["push", "bounce", "arm"] {
        let s = Scene::load(root().join(format!("scenes/{name}.ron"))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.name, name);
        assert_eq!(s.resolution(), (64, 64));
        assert!(s.goal.is_some(), "{name} has a goal");
        assert_eq!(s.content_hash(), Scene::load(root().join(format!("scenes/{name}.ron"))).unwrap().content_hash());
    }
}

fn push_text() -> String {
    std::fs::read_to_string(root().join("scenes/push.ron")).unwrap()
}

#[test]
fn malformed_scene_names_file_line_and_column() {
    let text = push_text().replacen("episode_steps: 32,", "episode_steps: 32 oops,", 1);
    let err = Scene::from_ron(&text, Path::new("scenes/bad.ron")).unwrap_err();
    match &err {
        SceneError::Parse { line, col, .. } => {
            let want = text.lines().position(|l| l.contains("oops")).unwrap() + 1;
            assert_eq!(*line, want);
            assert!(*col > 1);
        }
        other => panic!("expected a parse error, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.starts_with("scenes/bad.ron:"), "{msg}");
}

#[test]
fn unknown_field_is_refused() {
    let text = push_text().replacen("episode_steps: 32,", "episode_steps: 32, episode_stepz: 3,", 1);
    let msg = Scene::from_ron(&text, Path::new("x.ron")).unwrap_err().to_string();
    assert!(msg.contains("episode_stepz"), "{msg}");
}

fn invalid_field(text: &str) -> String {
    match Scene::from_ron(text, Path::new("x.ron")) {
        Err(SceneError::Invalid { field, .. }) => field,
        Err(e) => panic!("expected an invalid-field error, got {e}"),
        Ok(_) => panic!("accepted an invalid scene"),
    }
}

#[test]
fn out_of_range_values_are_refused_with_their_field() {
    let t = push_text();
    assert_eq!(invalid_field(&t.replacen("mass: 2.0", "mass: -2.0", 1)), "bodies[0].mass");
    assert_eq!(invalid_field(&t.replacen("resolution: (64, 64)", "resolution: (0, 64)", 1)), "camera.resolution");
    assert_eq!(invalid_field(&t.replacen("friction: 0.4, restitution: 0.1", "friction: NaN, restitution: 0.1", 1)), "bodies[0].friction");
    assert_eq!(invalid_field(&t.replacen("restitution: 0.1", "restitution: 1.5", 1)), "bodies[0].restitution");
    assert_eq!(invalid_field(&t.replacen("dt: 0.016666668", "dt: 0.0", 1)), "physics.dt");
    assert_eq!(invalid_field(&t.replacen("colour: (220, 40, 40)", "colour: (40, 90, 230)", 1)), "bodies[1].colour");
    assert_eq!(invalid_field(&t.replacen("body: \"red disc\", direction: (1.0", "body: \"green disc\", direction: (1.0", 1)), "actions[0].target.body");
}

#[test]
fn actions_are_checked() {
    let s = Scene::load(root().join("scenes/push.ron")).unwrap();
    assert_eq!(s.check_action(&[2.0, -0.5]).unwrap(), vec![1.0, -0.5]);
    assert!(s.check_action(&[f32::NAN, 0.0]).unwrap_err().contains("force_x"));
    assert!(s.check_action(&[0.0]).unwrap_err().contains("expects 2"));
}

#[test]
fn camera_projects_the_look_at_point_to_the_centre() {
    let s = Scene::load(root().join("scenes/push.ron")).unwrap();
    let cam = foresight::camera::PixelCamera::new(&s.camera);
    let c = cam.project([0.0, 0.0, 0.0]).unwrap();
    assert!((c[0] - 31.5).abs() < 1e-4 && (c[1] - 31.5).abs() < 1e-4, "{c:?}");
    // Image up is world -z: a point at -z is higher in the frame (smaller row), +x is right.
    let p = cam.project([1.1, 0.0, -1.1]).unwrap();
    assert!((p[0] - (31.5 + 16.0)).abs() < 1e-3 && (p[1] - (31.5 - 16.0)).abs() < 1e-3, "{p:?}");
}

#[test]
fn nearby_run_seeds_never_share_episode_seeds() {
    use foresight::rng::episode_seed;
    let mut seen = std::collections::HashSet::new();
    for run in 0..20u64 {
        for i in 0..200u64 {
            assert!(seen.insert(episode_seed("push", run, i)), "collision at run {run} episode {i}");
        }
    }
    assert_ne!(episode_seed("push", 0, 0), episode_seed("arm", 0, 0));
}
