//! Shared by the headless examples: a `MinimalPlugins` app with the world-model plugin that
//! collects every answer into [`Answers`].
#![allow(dead_code)]

use std::sync::Arc;

use bevy::prelude::*;
use bevy_foresight::{ForesightSystems, FuturesPredicted, PredictionFailed, WorldModelPlugin};
use foresight::world_model::WorldModel;

/// Every answer so far.
#[derive(Resource, Default)]
pub struct Answers {
    /// Predicted futures.
    pub done: Vec<FuturesPredicted>,
    /// Failures with their reasons.
    pub failed: Vec<PredictionFailed>,
}

fn collect(mut answers: ResMut<Answers>, mut done: MessageReader<FuturesPredicted>, mut failed: MessageReader<PredictionFailed>) {
    answers.done.extend(done.read().cloned());
    answers.failed.extend(failed.read().cloned());
}

/// A headless app running `model` on `threads` threads, collecting answers into [`Answers`].
pub fn app(model: Arc<WorldModel>, threads: usize) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(WorldModelPlugin::from_model(model).with_threads(threads))
        .init_resource::<Answers>()
        .add_systems(Update, collect.after(ForesightSystems::Receive));
    app
}
