//! Policy evaluation end to end on the shipped push: both worlds start from the same true frame,
//! the model side is deterministic, and the outcomes are well formed.

use std::sync::Arc;

use foresight::plan::policies::FramePolicyKind;
use foresight::scene::Scene;
use foresight::world_model::WorldModel;
use foresight_sim::evaluate::{in_true_scene, in_world_model};

use crate::{render_lock, root};

#[test]
fn policies_play_the_same_starts_in_both_worlds_and_the_model_side_repeats() {
    let _g = render_lock();
    let scene = Arc::new(Scene::load(root().join("scenes/push.ron")).unwrap());
    let model = WorldModel::load(&root().join("assets/push.safetensors")).unwrap();
    let sampler = model.meta.sampler;
    let seeds: Vec<u64> = (0..3).map(|i| foresight::rng::episode_seed(&scene.name, 6000, i)).collect();
    let mut renderer = foresight_sim::Renderer::new(scene.clone(), 2).unwrap();
    let kind = FramePolicyKind::Scripted { noise: 0.0 };
    let steps = 6;
    let (truth, true_frames) = in_true_scene(&scene, &mut renderer, kind, &seeds, steps).unwrap();
    let (imagined, model_frames) = in_world_model(&scene, &model, &sampler, &mut renderer, kind, &seeds, steps).unwrap();
    for o in [truth, imagined] {
        assert!((0.0..=1.0).contains(&o.success) && o.ret.is_finite(), "{o:?}");
    }
    // The first episode is shown: its start, then a frame a step until success.
    assert!((2..=steps + 1).contains(&true_frames.len()) && (2..=steps + 1).contains(&model_frames.len()));
    assert_eq!(true_frames[0], model_frames[0], "both worlds start from the same true frame");
    assert_ne!(model_frames[1], model_frames[0], "the model moves the scene");
    // Same seeds, same imagined episodes (the renderer's slots split them into two chunks).
    let (again, frames_again) = in_world_model(&scene, &model, &sampler, &mut renderer, kind, &seeds, steps).unwrap();
    assert_eq!((again.success, again.ret), (imagined.success, imagined.ret));
    assert_eq!(frames_again, model_frames);
}
