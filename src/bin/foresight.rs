//! `foresight`: the core command line (import; the model commands arrive with issue 3).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "foresight", version, about = "Foresight: a learned world simulator (core tools)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Turn a folder of episodes (PNG frames + actions.jsonl) into a dataset.
    Import {
        /// Folder with one sub-folder per episode.
        #[arg(long)]
        from: PathBuf,
        /// Output dataset directory (must not hold a dataset already).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write episodes of a dataset as a PNG grid (one row per episode) and a GIF of the first.
    Show {
        /// Dataset directory.
        #[arg(long)]
        data: PathBuf,
        /// First episode.
        #[arg(long, default_value_t = 0)]
        episode: usize,
        /// Number of episodes (rows).
        #[arg(long, default_value_t = 4)]
        count: usize,
        /// Frames per row (evenly spaced).
        #[arg(long, default_value_t = 12)]
        frames: usize,
        /// Output PNG (a GIF of the first episode is written beside it).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a dataset's summary: episodes, frames, contact fraction, a few captions.
    Inspect {
        /// Dataset directory.
        #[arg(long)]
        data: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.cmd {
        Cmd::Import { from, out } => {
            let m = foresight::data::import::import_dir(&from, &out, command).with_context(|| format!("importing {}", from.display()))?;
            let frames: usize = m.episodes.iter().map(|e| e.steps + 1).sum();
            println!(
                "imported {} episodes, {frames} frames of {}x{}, {}-d actions{} into {}",
                m.episodes.len(),
                m.resolution[0],
                m.resolution[1],
                m.action_spec.dim,
                if m.action_spec.discrete { " (one-hot)" } else { "" },
                out.display()
            );
        }
        Cmd::Show { data, episode, count, frames, out } => {
            let mut ds = foresight::data::Dataset::open(&data)?;
            let [h, w] = ds.manifest.resolution;
            let eps: Vec<_> = (episode..(episode + count).min(ds.len())).map(|i| ds.episode(i)).collect::<Result<_, _>>()?;
            anyhow::ensure!(!eps.is_empty(), "no episode {episode} in {}", data.display());
            let rows: Vec<Vec<&[u8]>> = eps
                .iter()
                .map(|e| {
                    let n = e.num_frames();
                    let k = frames.clamp(1, n);
                    (0..k).map(|j| e.frame(j * (n - 1) / (k - 1).max(1))).collect()
                })
                .collect();
            foresight::media::write_png_grid(&out, &rows, h, w, 2)?;
            let gif = out.with_extension("gif");
            let all: Vec<&[u8]> = (0..eps[0].num_frames()).map(|t| eps[0].frame(t)).collect();
            foresight::media::write_gif(&gif, &all, h, w, 4, 100)?;
            for e in &eps {
                println!("seed {} [{}]: {}", e.seed, e.policy, e.caption);
            }
            println!("wrote {} and {}", out.display(), gif.display());
        }
        Cmd::Inspect { data } => {
            let mut ds = foresight::data::Dataset::open(&data)?;
            let m = ds.manifest.clone();
            let frames: usize = m.episodes.iter().map(|e| e.steps + 1).sum();
            println!("{}: scene {} ({}), {} episodes, {frames} frames {}x{}, action dim {}, contact fraction {}", data.display(), m.scene, m.scene_hash, m.episodes.len(), m.resolution[0], m.resolution[1], m.action_spec.dim, m.contact_fraction.map_or("n/a".into(), |c| format!("{c:.3}")));
            for i in 0..ds.len() {
                ds.episode(i).with_context(|| format!("episode {i}"))?;
            }
            for e in m.episodes.iter().take(3) {
                println!("  seed {:016x} [{}] {}", e.seed, e.policy, e.caption);
            }
            println!("all {} episodes read and validated", ds.len());
        }
    }
    Ok(())
}
