//! Text and a single image to video inside Bevy: a `GenerateVideo` message asks the world model for four futures of the start frame under a caption, and the answer comes back as `Image` assets plus per-pixel spread maps, written to a GIF.
//!
//! ```text
//! cargo run -p bevy_foresight --example generate -- [CHECKPOINT] [FRAME.png] [CAPTION] [OUT_DIR]
//! ```

use bevy::prelude::*;
use bevy_foresight::plugin::Foresight;
use bevy_foresight::{ForesightSystems, FuturesPredicted, GenerateVideo, PredictedFutures, PredictionFailed, WorldModelPlugin};
use foresight::generate::{write_outputs, Generate, VideoOutputs};

#[derive(Resource)]
struct Args {
    frame: String,
    caption: String,
    out: std::path::PathBuf,
}

fn main() -> AppExit {
    let mut a = std::env::args().skip(1);
    let checkpoint = a.next().unwrap_or_else(|| "assets/push.safetensors".into());
    let frame = a.next().unwrap_or_else(|| "assets/push_start.png".into());
    let caption = a.next().unwrap_or_else(|| "the red disc moves right. the blue block stays still.".into());
    let out = a.next().unwrap_or_else(|| "runs/generate-plugin".into()).into();
    App::new()
        .add_plugins(MinimalPlugins)
        .add_plugins(AssetPlugin::default())
        .init_asset::<Image>()
        .add_plugins(WorldModelPlugin::new(checkpoint).with_threads(2))
        .insert_resource(Args { frame, caption, out })
        .add_systems(Startup, ask)
        .add_systems(Update, answer.after(ForesightSystems::Receive))
        .run()
}

fn ask(mut commands: Commands, args: Res<Args>, mut requests: MessageWriter<GenerateVideo>, mut exit: MessageWriter<AppExit>) {
    let rgb = match foresight::media::read_image(args.frame.as_ref()) {
        Ok((rgb, _, _)) => rgb,
        Err(e) => {
            eprintln!("{e}");
            exit.write(AppExit::error());
            return;
        }
    };
    let agent = commands.spawn(Name::new("designer")).id();
    let request = Generate::image_to_video(&rgb, None, Some(&args.caption), 16).sampled(4, 11);
    requests.write(GenerateVideo { request_id: 1, requester: agent, request, camera: None, deadline: None, from_frame: 0 });
}

fn answer(
    model: Option<Res<Foresight>>,
    args: Res<Args>,
    futures: Query<&PredictedFutures>,
    images: Res<Assets<Image>>,
    mut done: MessageReader<FuturesPredicted>,
    mut failed: MessageReader<PredictionFailed>,
    mut exit: MessageWriter<AppExit>,
) {
    for f in failed.read() {
        eprintln!("request {} failed: {}", f.request_id, f.reason);
        exit.write(AppExit::error());
    }
    let Some(model) = model else { return };
    for d in done.read() {
        let [h, w] = model.model.meta.resolution;
        let Ok(f) = futures.get(d.requester) else { continue };
        let spread_levels: Vec<f32> = f.spread.iter().filter_map(|h| images.get(h)).filter_map(|i| i.data.as_ref()).map(|px| px.chunks_exact(4).map(|p| p[0] as f32).sum::<f32>() / (px.len() / 4) as f32).collect();
        println!("\"{}\": {} futures of {} frames in {:.1} s, as {} Image assets and {} spread maps", args.caption, d.frames.len(), d.frames[0].len(), d.latency.as_secs_f64(), f.images.iter().map(|r| r.len()).sum::<usize>(), f.spread.len());
        println!("mean spread-map red level per step: {}", spread_levels.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(" "));
        match write_outputs(&args.out, "generate", &VideoOutputs { before: vec![], after: vec![], reference: vec![] }, &d.frames, h, w) {
            Ok((gif, strip)) => println!("wrote {} and {}", gif.display(), strip.display()),
            Err(e) => eprintln!("{e}"),
        }
        exit.write(AppExit::Success);
    }
}
