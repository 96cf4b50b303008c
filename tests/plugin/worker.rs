use std::time::{Duration, Instant};

use bevy_foresight::{FullQueue, Job, Request, Response, Worker, WorkerConfig};
use foresight::world_model::Query;

use crate::model;

fn req(id: u64, requester: u64, horizon: usize) -> Request {
    let frame = vec![50u8; 16 * 16 * 3];
    Request { id, requester, job: Job::Predict(Query { context: vec![frame], past_actions: None, actions: vec![vec![0.1, 0.2]; horizon], samples: 1, seed: id }), deadline: None }
}

/// Gives the worker a long request and waits until it is being worked on, so that the next
/// requests queue up together behind it.
fn make_busy(w: &Worker) {
    w.submit(req(0, 100, 400));
    let t = Instant::now();
    while w.queue_depth() > 0 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(30));
}

fn collect(w: &Worker, n: usize) -> Vec<Response> {
    (0..n).map(|_| w.recv_timeout(Duration::from_secs(60)).expect("a response")).collect()
}

fn failed_reason(rs: &[Response], id: u64) -> Option<String> {
    rs.iter().find_map(|r| match r {
        Response::Failed { id: i, reason, .. } if *i == id => Some(reason.clone()),
        _ => None,
    })
}

fn done(rs: &[Response], id: u64) -> bool {
    rs.iter().any(|r| matches!(r, Response::Done { id: i, .. } if *i == id))
}

#[test]
fn requests_that_arrive_together_are_batched() {
    let w = Worker::spawn(model(), WorkerConfig { max_batch: 8, ..Default::default() }).unwrap();
    make_busy(&w);
    for i in 1..=5 {
        w.submit(req(i, i, 3));
    }
    let rs = collect(&w, 6);
    for i in 0..=5 {
        assert!(done(&rs, i), "request {i} not answered: {rs:?}");
    }
    let biggest = rs.iter().filter_map(|r| if let Response::Done { batch, .. } = r { Some(*batch) } else { None }).max().unwrap();
    assert!(biggest >= 2, "no batching happened");
    let s = w.stats();
    assert_eq!(s.answered, 6);
    assert!(s.latency_percentile(0.5).is_some() && s.frames_per_second() > 0.0);
}

#[test]
fn newer_request_supersedes_and_cancel_and_deadline_fail_with_reasons() {
    let w = Worker::spawn(model(), WorkerConfig::default()).unwrap();
    make_busy(&w);
    w.submit(req(1, 7, 2));
    w.submit(req(2, 7, 2));
    w.submit(req(3, 8, 2));
    w.cancel(3);
    let mut late = req(4, 9, 2);
    late.deadline = Some(Instant::now());
    w.submit(late);
    let rs = collect(&w, 5);
    assert!(failed_reason(&rs, 1).unwrap().contains("superseded"));
    assert!(done(&rs, 2));
    assert!(failed_reason(&rs, 3).unwrap().contains("cancelled"));
    assert!(failed_reason(&rs, 4).unwrap().contains("deadline"));
    let s = w.stats();
    assert_eq!((s.superseded, s.cancelled, s.expired), (1, 1, 1));
}

#[test]
fn full_queue_rejects_or_drops_the_oldest() {
    for policy in [FullQueue::Reject, FullQueue::DropOldest] {
        let w = Worker::spawn(model(), WorkerConfig { queue_capacity: 1, full_queue: policy, ..Default::default() }).unwrap();
        make_busy(&w);
        w.submit(req(1, 1, 2));
        w.submit(req(2, 2, 2));
        let rs = collect(&w, 3);
        match policy {
            FullQueue::Reject => {
                assert!(failed_reason(&rs, 2).unwrap().contains("full"));
                assert!(done(&rs, 1));
                assert_eq!(w.stats().rejected, 1);
            }
            FullQueue::DropOldest => {
                assert!(failed_reason(&rs, 1).unwrap().contains("dropped"));
                assert!(done(&rs, 2));
                assert_eq!(w.stats().dropped, 1);
            }
        }
    }
}

#[test]
fn a_bad_query_fails_alone() {
    let w = Worker::spawn(model(), WorkerConfig::default()).unwrap();
    make_busy(&w);
    let mut bad = req(1, 1, 2);
    if let Job::Predict(q) = &mut bad.job {
        q.actions[0] = vec![f32::NAN, 0.0];
    }
    w.submit(bad);
    w.submit(req(2, 2, 2));
    let rs = collect(&w, 3);
    assert!(failed_reason(&rs, 1).unwrap().contains("not finite"));
    assert!(done(&rs, 2));
}

/// Records the sampler each batch was answered with; its own default is 3 steps.
struct Recording(std::sync::Arc<foresight::world_model::WorldModel>, std::sync::Mutex<Vec<foresight::model::diffusion::SamplerConfig>>);

impl bevy_foresight::Predictor for Recording {
    fn predict_batch(&self, q: &[Query], s: &foresight::model::diffusion::SamplerConfig) -> Result<Vec<foresight::world_model::Prediction>, foresight::world_model::WorldModelError> {
        self.1.lock().unwrap().push(*s);
        self.0.predict_batch(q, s)
    }
    fn generate(&self, g: &[foresight::generate::Generate], s: &foresight::model::diffusion::SamplerConfig) -> Result<Vec<foresight::world_model::Prediction>, foresight::world_model::WorldModelError> {
        bevy_foresight::Predictor::generate(self.0.as_ref(), g, s)
    }
    fn default_sampler(&self) -> foresight::model::diffusion::SamplerConfig {
        foresight::model::diffusion::SamplerConfig { steps: 3, ..Default::default() }
    }
}

#[test]
fn the_worker_samples_as_the_checkpoint_says_unless_told_otherwise() {
    for (given, steps) in [(None, 3), (Some(foresight::model::diffusion::SamplerConfig { steps: 1, ..Default::default() }), 1)] {
        let rec = std::sync::Arc::new(Recording(model(), Default::default()));
        let w = Worker::spawn(rec.clone(), WorkerConfig { sampler: given, ..Default::default() }).unwrap();
        let rs = collect(&w, {
            w.submit(req(1, 1, 2));
            1
        });
        assert!(done(&rs, 1), "{rs:?}");
        let seen = rec.1.lock().unwrap().clone();
        assert!(!seen.is_empty() && seen.iter().all(|s| s.steps == steps), "{given:?}: sampled with {seen:?}");
    }
}
