//! The shipped `push` checkpoint's generative modes on freshly rendered episodes (seeds never
//! trained on): interpolation starts at video A, ends at video B and keeps one blob per body on
//! a continuous path (a cross-fade does not); edit strength moves the video away from its input
//! monotonically.


use foresight::data::Dataset;
use foresight::eval::metrics::{dist, mean_abs_diff, path_score};
use foresight::generate::cross_fade;
use foresight::model::diffusion::SamplerConfig;
use foresight::world_model::WorldModel;
use foresight_sim::datagen::{datagen, DatagenConfig};
use foresight_sim::policy::PolicyKind;

use crate::{render_lock, root, tmpdir};

fn episodes() -> Vec<foresight::data::Episode> {
    let _g = render_lock();
    let dir = tmpdir("gen-push").join("ds");
    let cfg = DatagenConfig { scene: root().join("scenes/push.ron"), episodes: 6, steps: Some(20), seed: 4242, policy: PolicyKind::Scripted, out: dir.clone(), envs: 6, shard_episodes: 64, command: "test".into() };
    datagen(&cfg, |_| {}).unwrap();
    let mut ds = Dataset::open(&dir).unwrap();
    (0..ds.len()).map(|i| ds.episode(i).unwrap()).collect()
}

#[test]
fn interpolation_beats_a_cross_fade_and_edits_grow_with_strength_on_the_shipped_push() {
    let wm = WorldModel::load(&root().join("assets/push.safetensors")).unwrap();
    assert!(wm.meta.dit.bidirectional, "the shipped push checkpoint generates towards anchors");
    let eps = episodes();
    let s = SamplerConfig { steps: 2, ..wm.meta.sampler };
    let w = wm.meta.resolution[1];
    let colours: Vec<[u8; 3]> = wm.meta.bodies.iter().map(|b| b.colour).collect();
    let pos = |f: &[u8]| wm.locate_bodies(f);
    let body_dist = |a: &[u8], b: &[u8]| {
        let d: Vec<f32> = pos(a).into_iter().zip(pos(b)).filter_map(|(p, q)| Some(dist(p?, q?))).collect();
        d.iter().sum::<f32>() / d.len().max(1) as f32
    };
    let n = 8;
    let (mut model_score, mut fade_score, mut start, mut end) = (0.0, 0.0, 0.0, 0.0);
    for (i, e) in eps.iter().enumerate() {
        let a: Vec<Vec<u8>> = (0..4).map(|t| e.frame(t).to_vec()).collect();
        let b: Vec<Vec<u8>> = (4 + n..8 + n).map(|t| e.frame(t).to_vec()).collect();
        let g = wm.interpolate(&a, &b, n, 1, i as u64, &s).unwrap();
        let tr: Vec<&[u8]> = g.frames[0].iter().map(|f| f.as_slice()).collect();
        let from = pos(&a[3]);
        model_score += path_score(&tr, w, &colours, &from, 8.0);
        let fade = cross_fade(&a[3], &b[0], n);
        fade_score += path_score(&fade.iter().map(|f| f.as_slice()).collect::<Vec<_>>(), w, &colours, &from, 8.0);
        start += body_dist(tr[0], &a[3]);
        end += body_dist(tr[n - 1], &b[0]);
    }
    let k = eps.len() as f64;
    let (model_score, fade_score, start, end) = (model_score / k, fade_score / k, start as f64 / k, end as f64 / k);
    eprintln!("interpolation: path score {model_score:.3} vs cross-fade {fade_score:.3}; start {start:.2} px from A, end {end:.2} px from B");
    assert!(model_score > fade_score, "path score {model_score:.3} does not beat the cross-fade's {fade_score:.3}");
    assert!(start < 4.0, "the transition starts {start:.2} px from video A");
    assert!(end < 6.0, "the transition ends {end:.2} px from video B");
    // Edit strength: the distance to the input rises.
    let mut dists = Vec::new();
    for strength in [0.0, 0.5, 1.0] {
        let mut d = 0.0;
        for (i, e) in eps.iter().enumerate() {
            let v: Vec<Vec<u8>> = (0..=16).map(|t| e.frame(t).to_vec()).collect();
            let acts: Vec<Vec<f32>> = (0..16).map(|t| e.action(t).iter().map(|a| -a).collect()).collect();
            let g = wm.edit_video(&v, strength, Some(acts), None, 1, i as u64, &s).unwrap();
            d += g.frames[0].iter().zip(&v[1..]).map(|(x, y)| mean_abs_diff(x, y)).sum::<f64>() / 16.0;
        }
        dists.push(d / k);
    }
    eprintln!("edit distance to input at strength 0, 0.5, 1: {dists:?}");
    assert_eq!(dists[0], 0.0);
    assert!(dists[1] > dists[0] && dists[2] > dists[1], "{dists:?}");
}
