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

/// Panics when asked with seed 666, otherwise the tiny model.
struct Panicky(std::sync::Arc<foresight::world_model::WorldModel>);

impl bevy_foresight::Predictor for Panicky {
    fn predict_batch(&self, q: &[foresight::world_model::Query], s: &foresight::model::diffusion::SamplerConfig) -> Result<Vec<foresight::world_model::Prediction>, foresight::world_model::WorldModelError> {
        if q.iter().any(|q| q.seed == 666) {
            panic!("deliberate test panic");
        }
        self.0.predict_batch(q, s)
    }
    fn generate(&self, g: &[foresight::generate::Generate], s: &foresight::model::diffusion::SamplerConfig) -> Result<Vec<foresight::world_model::Prediction>, foresight::world_model::WorldModelError> {
        bevy_foresight::Predictor::generate(self.0.as_ref(), g, s)
    }
}

#[test]
fn bad_actions_fail_with_a_message_and_a_model_panic_is_survived() {
    let plugin = WorldModelPlugin::from_model(model()).with_threads(1).with_predictor(|m| std::sync::Arc::new(Panicky(m)));
    let mut app = app(plugin);
    let agent = app.world_mut().spawn_empty().id();
    let frame = vec![40u8; 16 * 16 * 3];
    let send = |app: &mut App, id: u64, actions: Vec<Vec<f32>>, seed: u64| {
        app.world_mut().write_message(PredictFutures { request_id: id, requester: agent, context: vec![frame.clone()].into(), past_actions: None, actions, samples: 1, seed, deadline: None, from_frame: 0 });
        let t = Instant::now();
        loop {
            app.update();
            let seen = app.world().resource::<Seen>();
            if seen.done.iter().any(|d| d.request_id == id) || seen.failed.iter().any(|f| f.request_id == id) || t.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    send(&mut app, 1, vec![vec![0.1, 0.2, 0.3]], 1); // wrong action dimension
    send(&mut app, 2, vec![vec![f32::NAN, 0.0]], 2); // NaN
    send(&mut app, 3, vec![vec![0.1, 0.2]], 666); // the model panics
    send(&mut app, 4, vec![vec![0.1, 0.2]], 4); // and still answers afterwards
    let seen = app.world().resource::<Seen>();
    let reason = |id: u64| seen.failed.iter().find(|f| f.request_id == id).map(|f| f.reason.clone()).unwrap_or_default();
    assert!(reason(1).contains("3 values"), "{}", reason(1));
    assert!(reason(2).contains("not finite"), "{}", reason(2));
    assert!(reason(3).contains("panicked"), "{}", reason(3));
    assert!(seen.done.iter().any(|d| d.request_id == 4), "the worker survived the panic");
    // Exactly one answer per request.
    for id in 1..=4u64 {
        let n = seen.done.iter().filter(|d| d.request_id == id).count() + seen.failed.iter().filter(|f| f.request_id == id).count();
        assert_eq!(n, 1, "request {id} got {n} answers");
    }
    assert_eq!(app.world().resource::<ForesightDiagnostics>().panics, 1);
}

#[test]
fn generation_requests_come_back_as_images_with_spread_maps_or_fail_with_reasons() {
    use bevy_foresight::{GenerateVideo, PredictedFutures};
    use foresight::generate::Generate;
    let mut app = app(WorldModelPlugin::from_model(model()).with_threads(1));
    app.add_plugins(AssetPlugin::default()).init_asset::<Image>();
    let agent = app.world_mut().spawn_empty().id();
    let frame = vec![90u8; 16 * 16 * 3];
    let send = |app: &mut App, id: u64, request: Generate| {
        app.world_mut().write_message(GenerateVideo { request_id: id, requester: agent, request, camera: None, deadline: None, from_frame: 3 });
    };
    send(&mut app, 1, Generate::image_to_video(&frame, None, Some("the a goes left"), 4).sampled(3, 9));
    send(&mut app, 2, Generate::image_to_video(&frame, None, Some(" "), 4));
    send(&mut app, 3, Generate::image_to_video(&frame[..30], None, None, 4));
    let t = Instant::now();
    while app.world().resource::<Seen>().done.is_empty() && t.elapsed() < Duration::from_secs(30) {
        app.update();
        std::thread::sleep(Duration::from_millis(2));
    }
    let seen = app.world().resource::<Seen>();
    let mut failed: Vec<(u64, String)> = seen.failed.iter().map(|f| (f.request_id, f.reason.clone())).collect();
    failed.sort();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed[0].1.contains("empty") && failed[1].1.contains("16x16x3"), "{failed:?}");
    let d = &seen.done[0];
    assert_eq!((d.request_id, d.frames.len(), d.frames[0].len()), (1, 3, 4));
    let f = app.world().get::<PredictedFutures>(agent).expect("the component arrives with the message");
    assert_eq!((f.images.len(), f.images[0].len(), f.spread.len()), (3, 4, 4), "images per sample and step, a spread map per step");
    // An interpolation goes through the same path.
    let other = vec![20u8; 16 * 16 * 3];
    let g = Generate::interpolate(std::slice::from_ref(&frame), &[other], 5, 2).unwrap();
    app.world_mut().write_message(GenerateVideo { request_id: 4, requester: agent, request: g, camera: None, deadline: None, from_frame: 4 });
    let t = Instant::now();
    while app.world().resource::<Seen>().done.len() < 2 && t.elapsed() < Duration::from_secs(30) {
        app.update();
        std::thread::sleep(Duration::from_millis(2));
    }
    let seen = app.world().resource::<Seen>();
    assert_eq!((seen.done[1].request_id, seen.done[1].frames[0].len()), (4, 5));
}
