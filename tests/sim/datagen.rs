use std::sync::Arc;

use foresight::data::{Dataset, STATE_FIELDS, STATE_PX};
use foresight::scene::Scene;
use foresight_sim::datagen::{datagen, DatagenConfig};
use foresight_sim::policy::PolicyKind;
use foresight_sim::{Oracle, SimWorld};

use crate::{render_lock, root, tmpdir};

fn config(scene: &str, out: std::path::PathBuf, policy: PolicyKind, episodes: usize, steps: usize) -> DatagenConfig {
    DatagenConfig {
        scene: root().join(format!("scenes/{scene}.ron")),
        episodes,
        steps: Some(steps),
        seed: 11,
        policy,
        out,
        envs: 4,
        shard_episodes: 3,
        command: "test".into(),
    }
}

#[test]
fn datagen_is_byte_identical_run_after_run() {
    let _g = render_lock();
    let base = tmpdir("determinism");
    let a = datagen(&config("push", base.join("a"), PolicyKind::Scripted, 5, 6), |_| {}).unwrap();
    let b = datagen(&config("push", base.join("b"), PolicyKind::Scripted, 5, 6), |_| {}).unwrap();
    assert_eq!(a.manifest.episodes, b.manifest.episodes);
    for shard in ["shard_00000.safetensors", "shard_00001.safetensors", "manifest.json"] {
        let x = std::fs::read(base.join("a").join(shard)).unwrap();
        let y = std::fs::read(base.join("b").join(shard)).unwrap();
        assert!(x == y, "{shard} differs between two identical runs");
    }
    // A different policy gives different data.
    let c = datagen(&config("push", base.join("c"), PolicyKind::Random, 5, 6), |_| {}).unwrap();
    assert_ne!(a.manifest.episodes[0].seed, 0);
    let x = std::fs::read(base.join("a/shard_00000.safetensors")).unwrap();
    let z = std::fs::read(base.join("c/shard_00000.safetensors")).unwrap();
    assert_ne!(x, z);
    assert_eq!(c.manifest.episodes[0].seed, a.manifest.episodes[0].seed, "seeds depend on scene, run seed and index only");
}

/// Colour distance (max over channels).
fn cdist(a: &[u8], b: [u8; 3]) -> i32 {
    (0..3).map(|k| (a[k] as i32 - b[k] as i32).abs()).max().unwrap()
}

#[test]
fn recorded_episodes_replay_through_the_oracle_and_states_land_on_their_colours() {
    let _g = render_lock();
    for name in ["push", "bounce", "arm"] {
        let dir = tmpdir(&format!("oracle-{name}")).join("ds");
        let rep = datagen(&config(name, dir.clone(), PolicyKind::Scripted, 6, 10), |_| {}).unwrap();
        assert_eq!(rep.frames, 6 * 11);
        let mut ds = Dataset::open(&dir).unwrap();
        let scene = Arc::new(Scene::load(root().join(format!("scenes/{name}.ron"))).unwrap());
        let (h, w) = scene.resolution();
        let mut oracle = Oracle::new(scene.clone(), 1).unwrap();
        let mut hits = 0;
        let mut total = 0;
        for i in 0..ds.len() {
            let ep = ds.episode(i).unwrap();
            // Frames are not blank: more than one colour.
            assert!(ep.frame(0).chunks(3).any(|p| p != &ep.frame(0)[..3]), "{name}: blank frame");
            let start = SimWorld::new(scene.clone(), ep.seed).unwrap();
            let actions: Vec<Vec<f32>> = (0..ep.steps()).map(|t| ep.action(t).to_vec()).collect();
            let replay = oracle.replay(&start, &actions).unwrap();
            assert_eq!(replay.states, ep.states, "{name} episode {i}: states differ on replay");
            let same = replay.frames.iter().zip(&ep.frames).filter(|(a, b)| a == b).count();
            assert_eq!(same, ep.frames.len(), "{name} episode {i}: {} of {} bytes differ on replay", ep.frames.len() - same, ep.frames.len());
            // Each body's projected position lands on its colour.
            let n = STATE_FIELDS.len();
            for t in 0..ep.num_frames() {
                let f = ep.frame(t);
                for (b, body) in scene.bodies.iter().enumerate() {
                    let s = &ep.state(t)[b * n..];
                    let (x, y) = (s[STATE_PX].round() as isize, s[STATE_PX + 1].round() as isize);
                    if x < 0 || y < 0 || x >= w as isize || y >= h as isize {
                        continue;
                    }
                    total += 1;
                    // Allow a neighbouring pixel: the centre of a body can sit on a pixel edge.
                    let near = (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| (dx, dy))).any(|(dx, dy)| {
                        let (xx, yy) = ((x + dx).clamp(0, w as isize - 1) as usize, (y + dy).clamp(0, h as isize - 1) as usize);
                        cdist(&f[(yy * w + xx) * 3..], body.colour) <= 6
                    });
                    hits += near as usize;
                }
            }
        }
        let frac = hits as f64 / total as f64;
        // Bodies can hide one another (the arm over the cube), so a few misses are expected.
        assert!(frac > 0.95, "{name}: only {hits}/{total} projected positions land on their body's colour");
    }
}

#[test]
fn scripted_push_makes_contacts_and_captions() {
    let _g = render_lock();
    let dir = tmpdir("contacts").join("ds");
    let rep = datagen(&config("push", dir, PolicyKind::Scripted, 8, 32), |_| {}).unwrap();
    let cf = rep.manifest.contact_fraction.unwrap();
    assert!(cf > 0.15, "contact fraction {cf}");
    let moved = rep.manifest.episodes.iter().filter(|e| e.events.moved.iter().any(|m| m.body == "blue block")).count();
    assert!(moved >= 4, "the block moved in only {moved}/8 scripted episodes");
    let ep = &rep.manifest.episodes[0];
    assert!(!ep.caption.is_empty());
    for m in &ep.events.moved {
        assert!(ep.caption.contains(&format!("the {} slides {}", m.body, m.direction)), "{}", ep.caption);
    }
}

#[test]
fn frame_reward_agrees_with_physics_and_the_sim_env_steps() {
    use foresight::env::{frame_reward, Env};
    let _g = render_lock();
    let dir = tmpdir("reward").join("ds");
    let rep = datagen(&config("push", dir.clone(), PolicyKind::Scripted, 16, 32), |_| {}).unwrap();
    let scene = Arc::new(Scene::load(root().join("scenes/push.ron")).unwrap());
    let mut ds = Dataset::open(&dir).unwrap();
    let mut agree = 0;
    for i in 0..ds.len() {
        let ep = ds.episode(i).unwrap();
        let last = ep.num_frames() - 1;
        let in_goal = rep.manifest.episodes[i].events.ended_in.iter().any(|e| e.region == "goal" && e.body == "blue block");
        let (reward, success) = frame_reward(&scene, ep.frame(last));
        assert!(reward.is_finite());
        agree += (success == in_goal) as usize;
    }
    // The frame sees the block's centre within a pixel of the physics; borderline cases may differ.
    assert!(agree >= ds.len() - 1, "frame-based success agreed with physics in {agree}/{} episodes", ds.len());
    let mut env = foresight_sim::env::SimEnv::new(scene.clone(), 3).unwrap();
    let f0 = env.frame().to_vec();
    let s = env.step(&[1.0, 0.0]).unwrap();
    assert_eq!(s.frame.len(), 64 * 64 * 3);
    assert_ne!(s.frame, f0);
    assert!(env.step(&[f32::NAN, 0.0]).is_err());
}

#[test]
fn the_held_policy_holds_planner_like_actions_for_four_steps() {
    let scene = Arc::new(Scene::load(root().join("scenes/push.ron")).unwrap());
    let world = SimWorld::new(scene.clone(), 3).unwrap();
    let play = |seed| {
        let mut p = foresight_sim::policy::Policy::new(PolicyKind::Held, seed, scene.action_dim());
        (0..256).map(|_| p.act(&world)).collect::<Vec<_>>()
    };
    let acts = play(5);
    assert_eq!(acts, play(5), "same seed, same actions");
    assert_ne!(acts, play(6));
    for block in acts.chunks(4) {
        assert!(block.iter().all(|a| a == &block[0]), "one action per 4 steps: {block:?}");
    }
    assert!(acts.chunks(4).zip(acts.chunks(4).skip(1)).all(|(a, b)| a[0] != b[0]), "each block draws anew");
    let values: Vec<f32> = acts.iter().step_by(4).flatten().copied().collect();
    assert!(values.iter().all(|v| (-1.0..=1.0).contains(v)));
    // Half the range as standard deviation: about a third of the values saturate.
    let saturated = values.iter().filter(|v| v.abs() == 1.0).count() as f32 / values.len() as f32;
    assert!((0.2..0.45).contains(&saturated), "{saturated}");
}

#[test]
fn the_planner_policy_pushes_the_block_towards_the_goal_and_explores() {
    let scene = Arc::new(Scene::load(root().join("scenes/push.ron")).unwrap());
    let geometry = foresight::plan::cost::GoalGeometry::new(&scene).unwrap();
    let cam = foresight::camera::PixelCamera::new(&scene.camera);
    let dist = |w: &SimWorld| geometry.distance_px(cam.project(w.body_states()[geometry.body].position));
    // Per start: the block's distance to the goal before and after 80 steps, and the actions.
    let play = |seed: u64| {
        let mut world = SimWorld::new(scene.clone(), seed).unwrap();
        let before = dist(&world);
        let mut p = foresight_sim::policy::Policy::new(PolicyKind::Planner, seed, scene.action_dim());
        let mut acts = Vec::new();
        for _ in 0..80 {
            let a = p.act(&world);
            world.step(&a).unwrap();
            acts.push(a);
        }
        (before, dist(&world), acts)
    };
    let runs: Vec<_> = (0..6).map(play).collect();
    assert_eq!(runs[0].2, play(0).2, "same seed, same actions");
    assert!(runs.iter().flat_map(|r| r.2.iter().flatten()).all(|v| (-1.0..=1.0).contains(v)));
    // Plans are held for 4 steps per candidate draw; the first action of each plan changes.
    assert!(runs[0].2.chunks(4).zip(runs[0].2.chunks(4).skip(1)).any(|(a, b)| a[0] != b[0]));
    let (before, after): (f32, f32) = runs.iter().fold((0.0, 0.0), |(b, a), r| (b + r.0, a + r.1));
    // Half of the plans execute a random candidate, yet the oracle still makes progress.
    eprintln!("planner policy: mean block distance {:.1} -> {:.1} px", before / 6.0, after / 6.0);
    assert!(after < 0.6 * before, "mean block distance {:.1} -> {:.1} px", before / 6.0, after / 6.0);
    // Without a goal there is nothing to plan for: datagen says so, naming the file.
    let dir = tmpdir("planner-nogoal");
    let text = std::fs::read_to_string(root().join("scenes/push.ron")).unwrap();
    let stripped: String = text.lines().filter(|l| !l.trim_start().starts_with("goal:")).map(|l| format!("{l}\n")).collect();
    let file = dir.join("nogoal.ron");
    std::fs::write(&file, stripped).unwrap();
    let cfg = DatagenConfig { scene: file, ..config("push", dir.join("ds"), PolicyKind::Planner, 2, 4) };
    let err = datagen(&cfg, |_| {}).unwrap_err().to_string();
    assert!(err.contains("goal") && err.contains("nogoal.ron"), "{err}");
}

#[test]
fn the_anywhere_policy_pushes_the_block_away_from_the_goal_as_often_as_towards_it() {
    let scene = Arc::new(Scene::load(root().join("scenes/push.ron")).unwrap());
    let geometry = foresight::plan::cost::GoalGeometry::new(&scene).unwrap();
    let cam = foresight::camera::PixelCamera::new(&scene.camera);
    let at = |w: &SimWorld| cam.project(w.body_states()[geometry.body].position);
    // Per policy: over 16 starts × 64 steps, the 8-step stretches that move the block at least
    // 2 px, split by whether they bring it closer to the goal or take it farther away.
    let pushes = |kind: PolicyKind| {
        let (mut towards, mut away) = (0, 0);
        for seed in 0..16u64 {
            let mut world = SimWorld::new(scene.clone(), seed).unwrap();
            let mut p = foresight_sim::policy::Policy::new(kind, seed, scene.action_dim());
            for _ in 0..8 {
                let before = at(&world);
                for _ in 0..8 {
                    let a = p.act(&world);
                    assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)), "{a:?}");
                    world.step(&a).unwrap();
                }
                let after = at(&world);
                let moved = before.zip(after).map_or(0.0, |(b, a)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt());
                if moved >= 2.0 {
                    if geometry.distance_px(after) < geometry.distance_px(before) { towards += 1 } else { away += 1 }
                }
            }
        }
        (towards, away)
    };
    let (st, sa) = pushes(PolicyKind::Scripted);
    let (at_, aa) = pushes(PolicyKind::Anywhere);
    eprintln!("pushes towards / away from the goal: scripted {st} / {sa}, anywhere {at_} / {aa}");
    assert!(sa * 5 < st, "the scripted pusher pushes towards the goal: {st} / {sa}");
    assert!(at_ + aa >= 16, "the anywhere pusher makes contact: {at_} / {aa}");
    assert!(aa * 3 >= at_ + aa, "a third or more of its pushes go away from the goal: {at_} / {aa}");
    let mut a = foresight_sim::policy::Policy::new(PolicyKind::Anywhere, 3, scene.action_dim());
    let mut b = a.clone();
    let world = SimWorld::new(scene.clone(), 3).unwrap();
    assert_eq!(a.act(&world), b.act(&world), "same seed, same actions");
}

#[test]
fn the_glancing_policy_turns_the_block_more_often_than_the_anywhere_policy() {
    let scene = Arc::new(Scene::load(root().join("scenes/push.ron")).unwrap());
    let geometry = foresight::plan::cost::GoalGeometry::new(&scene).unwrap();
    let agent = scene.bodies.iter().position(|b| b.role == foresight::scene::Role::Agent).unwrap();
    let yaw = |q: [f32; 4]| 2.0 * q[1].atan2(q[3]);
    // Per policy: over 16 starts × 64 steps, the 8-step stretches that turn the block by 4° or
    // more, and those in which the disc goes 0.4 m or more while staying within 0.9 m of the
    // block's centre and the block moves less than 0.1 m (the disc slides past it).
    let stretches = |kind: PolicyKind| {
        let (mut turned, mut past) = (0, 0);
        for seed in 0..16u64 {
            let mut world = SimWorld::new(scene.clone(), seed).unwrap();
            let mut p = foresight_sim::policy::Policy::new(kind, seed, scene.action_dim());
            for _ in 0..8 {
                let before = world.body_states();
                let mut near = true;
                for _ in 0..8 {
                    let a = p.act(&world);
                    assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)), "{a:?}");
                    world.step(&a).unwrap();
                    let s = world.body_states();
                    let d = [s[agent].position[0] - s[geometry.body].position[0], s[agent].position[2] - s[geometry.body].position[2]];
                    near &= d[0].hypot(d[1]) < 0.9;
                }
                let after = world.body_states();
                let mut turn = (yaw(after[geometry.body].rotation) - yaw(before[geometry.body].rotation)).abs() % std::f32::consts::FRAC_PI_2;
                turn = turn.min(std::f32::consts::FRAC_PI_2 - turn);
                if turn >= 4f32.to_radians() {
                    turned += 1;
                }
                let moved = |i: usize| (after[i].position[0] - before[i].position[0]).hypot(after[i].position[2] - before[i].position[2]);
                if near && moved(agent) >= 0.4 && moved(geometry.body) < 0.1 {
                    past += 1;
                }
            }
        }
        (turned, past)
    };
    let (at, ap) = stretches(PolicyKind::Anywhere);
    let (gt, gp) = stretches(PolicyKind::Glancing);
    eprintln!("stretches that turn the block / slide past it: anywhere {at} / {ap}, glancing {gt} / {gp}");
    assert!(gt * 2 >= at * 3, "the glancing pusher turns the block more often: {gt} vs {at}");
    assert!(gp > ap, "the glancing pusher slides past the block more often: {gp} vs {ap}");
    let mut a = foresight_sim::policy::Policy::new(PolicyKind::Glancing, 3, scene.action_dim());
    let mut b = a.clone();
    let world = SimWorld::new(scene.clone(), 3).unwrap();
    assert_eq!(a.act(&world), b.act(&world), "same seed, same actions");
}
