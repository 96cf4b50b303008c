//! The smallest program: a `MinimalPlugins` app adds the world-model plugin, asks one question (what happens if the red disc is pushed right for 8 steps?) and prints where the model says the disc goes.
//!
//! ```text
//! cargo run -p bevy_foresight --example headless_query -- [CHECKPOINT] [FRAME.png]
//! ```

use bevy::prelude::*;
use bevy_foresight::{ForesightSystems, FuturesPredicted, PredictFutures, PredictionFailed, WorldModelPlugin};
use bevy_foresight::plugin::Foresight;
use foresight::eval::metrics::locate;
use foresight::scene::Role;

fn main() -> AppExit {
    let mut args = std::env::args().skip(1);
    let checkpoint = args.next().unwrap_or_else(|| "assets/push.safetensors".into());
    let frame = args.next().unwrap_or_else(|| "assets/push_start.png".into());
    App::new()
        .add_plugins(MinimalPlugins)
        .add_plugins(WorldModelPlugin::new(checkpoint).with_threads(2))
        .insert_resource(Frame(frame))
        .add_systems(Startup, ask)
        .add_systems(Update, answer.after(ForesightSystems::Receive))
        .run()
}

#[derive(Resource)]
struct Frame(String);

fn ask(mut commands: Commands, frame: Res<Frame>, mut requests: MessageWriter<PredictFutures>, mut exit: MessageWriter<AppExit>) {
    let rgb = match foresight::media::read_image(frame.0.as_ref()) {
        Ok((rgb, _, _)) => rgb,
        Err(e) => {
            eprintln!("{e}");
            exit.write(AppExit::error());
            return;
        }
    };
    let agent = commands.spawn(Name::new("agent")).id();
    // Push right (force_x = +1, force_z = 0) for 8 steps; two samples.
    requests.write(PredictFutures {
        request_id: 1,
        requester: agent,
        context: vec![rgb].into(),
        past_actions: None,
        actions: vec![vec![1.0, 0.0]; 8],
        samples: 2,
        seed: 7,
        deadline: None,
        from_frame: 0,
    });
}

fn answer(model: Option<Res<Foresight>>, mut done: MessageReader<FuturesPredicted>, mut failed: MessageReader<PredictionFailed>, mut exit: MessageWriter<AppExit>) {
    for f in failed.read() {
        eprintln!("request {} failed: {}", f.request_id, f.reason);
        exit.write(AppExit::error());
    }
    let Some(model) = model else { return };
    let meta = &model.model.meta;
    let agent = meta.bodies.iter().rev().find(|b| b.role == Role::Agent).map_or([220, 40, 40], |b| b.colour);
    for d in done.read() {
        println!("request {}: {} futures of {} frames in {:.0} ms", d.request_id, d.frames.len(), d.frames[0].len(), d.latency.as_secs_f64() * 1e3);
        for (s, frames) in d.frames.iter().enumerate() {
            // The agent, located by its colour in each predicted frame.
            let path: Vec<String> = frames.iter().map(|f| locate(f, meta.resolution[1], agent).map_or("?".into(), |p| format!("({:.0},{:.0})", p[0], p[1]))).collect();
            println!("  sample {s}: agent (pixel x, y) {}", path.join(" "));
        }
        exit.write(AppExit::Success);
    }
}
