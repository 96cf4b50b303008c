use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_foresight::{ForesightDiagnostics, FuturesPredicted, PredictFutures, PredictionFailed, WorldModelPlugin};

use crate::model;

#[derive(Resource, Default)]
struct Seen {
    done: Vec<FuturesPredicted>,
    failed: Vec<PredictionFailed>,
}

fn collect(mut seen: ResMut<Seen>, mut done: MessageReader<FuturesPredicted>, mut failed: MessageReader<PredictionFailed>) {
    seen.done.extend(done.read().cloned());
    seen.failed.extend(failed.read().cloned());
}

fn app(plugin: WorldModelPlugin) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins).add_plugins(plugin).init_resource::<Seen>().add_systems(Update, collect.after(bevy_foresight::ForesightSystems::Receive));
    app
}

fn ask(app: &mut App, id: u64, requester: Entity, frame_bytes: usize, action_dim: usize) {
    app.world_mut().write_message(PredictFutures {
        request_id: id,
        requester,
        context: vec![vec![40u8; frame_bytes]].into(),
        past_actions: None,
        actions: vec![vec![0.3; action_dim]; 3],
        samples: 2,
        seed: id,
        deadline: None,
        from_frame: 17,
    });
}

#[test]
fn a_request_is_answered_without_blocking_the_app() {
    let mut app = app(WorldModelPlugin::from_model(model()).with_threads(1));
    let agent = app.world_mut().spawn_empty().id();
    ask(&mut app, 1, agent, 16 * 16 * 3, 2);
    // A request that does not fit the checkpoint fails at once, in the same update.
    ask(&mut app, 2, agent, 10, 2);
    let t = Instant::now();
    let mut updates = 0;
    while app.world().resource::<Seen>().done.is_empty() && t.elapsed() < Duration::from_secs(30) {
        let u = Instant::now();
        app.update();
        // An update never waits for the model.
        assert!(u.elapsed() < Duration::from_millis(500), "an update took {:?}", u.elapsed());
        updates += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let seen = app.world().resource::<Seen>();
    assert_eq!(seen.failed.len(), 1);
    assert_eq!(seen.failed[0].request_id, 2);
    assert!(seen.failed[0].reason.contains("bytes"), "{}", seen.failed[0].reason);
    let d = &seen.done[0];
    assert_eq!((d.request_id, d.requester, d.from_frame), (1, agent, 17));
    assert_eq!(d.frames.len(), 2);
    assert_eq!(d.frames[0].len(), 3);
    assert!(updates >= 1);
    let diag = app.world().resource::<ForesightDiagnostics>();
    assert_eq!(diag.answered, 1);
    assert!(diag.latency_p50.is_some());
}

#[test]
fn a_missing_checkpoint_is_reported_and_the_game_keeps_running() {
    let mut app = app(WorldModelPlugin::new("/nonexistent/model.safetensors"));
    let agent = app.world_mut().spawn_empty().id();
    ask(&mut app, 5, agent, 16 * 16 * 3, 2);
    app.update();
    app.update();
    let diag = app.world().resource::<ForesightDiagnostics>();
    assert!(diag.unavailable.as_deref().unwrap_or("").contains("model.json"), "{:?}", diag.unavailable);
    let seen = app.world().resource::<Seen>();
    assert_eq!(seen.failed.len(), 1);
    assert_eq!(seen.failed[0].request_id, 5);
}
