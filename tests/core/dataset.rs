use foresight::data::{Dataset, DatasetWriter, Episode, Events, Manifest};
use foresight::scene::Scene;

use crate::{root, tmpdir};

fn episode(seed: u64, steps: usize, h: usize, w: usize, adim: usize, sdim: usize) -> Episode {
    let frames = (0..(steps + 1) * h * w * 3).map(|i| ((i as u64 * 31 + seed) % 251) as u8).collect();
    let actions = (0..steps * adim).map(|i| (i as f32 * 0.1 + seed as f32).sin()).collect();
    let states = (0..(steps + 1) * sdim).map(|i| i as f32 + seed as f32).collect();
    Episode { height: h, width: w, frames, action_dim: adim, actions, state_dim: sdim, states, seed, policy: "test".into(), caption: format!("episode {seed}"), events: Events::default(), contact_steps: seed as usize % 3 }
}

fn push_manifest() -> Manifest {
    let scene = Scene::load(root().join("scenes/push.ron")).unwrap();
    Manifest::for_scene(&scene, 7, "test".into())
}

#[test]
fn write_then_read_round_trips() {
    let dir = tmpdir("roundtrip");
    let m = push_manifest();
    let sd = m.state_dim();
    let eps: Vec<Episode> = (0..5).map(|s| episode(s, 3 + s as usize, 64, 64, 2, sd)).collect();
    let mut w = DatasetWriter::create(&dir, m, 2).unwrap();
    for e in eps.clone() {
        w.push(e).unwrap();
    }
    let m = w.finish().unwrap();
    assert_eq!(m.episodes.len(), 5);
    assert_eq!(m.episodes[2].shard, "shard_00001.safetensors");
    assert!(dir.join("shard_00002.safetensors").exists());
    let total: usize = eps.iter().map(|e| e.steps()).sum();
    let contacts: usize = eps.iter().map(|e| e.contact_steps).sum();
    assert!((m.contact_fraction.unwrap() - contacts as f64 / total as f64).abs() < 1e-9);
    let mut ds = Dataset::open(&dir).unwrap();
    for (i, e) in eps.iter().enumerate() {
        assert_eq!(&ds.episode(i).unwrap(), e);
    }
    // Manifest keys are a contract.
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    for k in ["format_version", "scene", "scene_hash", "resolution", "dt", "frame_skip", "action_spec", "state_spec", "bodies", "contact_fraction", "episodes"] {
        assert!(json.get(k).is_some(), "manifest lacks `{k}`");
    }
    for k in ["shard", "frame_offset", "action_offset", "steps", "seed", "policy", "caption", "events"] {
        assert!(json["episodes"][0].get(k).is_some(), "episode lacks `{k}`");
    }
    for k in ["dim", "names", "low", "high", "discrete"] {
        assert!(json["action_spec"].get(k).is_some(), "action_spec lacks `{k}`");
    }
    assert_eq!(json["bodies"][1]["role"], "agent");
}

#[test]
fn existing_dataset_is_never_overwritten() {
    let dir = tmpdir("nooverwrite");
    let m = push_manifest();
    let sd = m.state_dim();
    let mut w = DatasetWriter::create(&dir, m.clone(), 4).unwrap();
    w.push(episode(1, 2, 64, 64, 2, sd)).unwrap();
    w.finish().unwrap();
    let before = std::fs::read(dir.join("shard_00000.safetensors")).unwrap();
    assert!(DatasetWriter::create(&dir, m, 4).is_err());
    assert_eq!(std::fs::read(dir.join("shard_00000.safetensors")).unwrap(), before);
}

#[test]
fn wrong_frame_size_is_refused() {
    let dir = tmpdir("wrongsize");
    let m = push_manifest();
    let sd = m.state_dim();
    let mut w = DatasetWriter::create(&dir, m, 4).unwrap();
    let err = w.push(episode(1, 2, 32, 64, 2, sd)).unwrap_err().to_string();
    assert!(err.contains("32x64"), "{err}");
    let mut bad = episode(2, 2, 64, 64, 2, sd);
    bad.actions[0] = f32::NAN;
    assert!(w.push(bad).unwrap_err().to_string().contains("not finite"));
}

#[test]
fn truncated_or_corrupt_shard_is_reported_by_name() {
    let dir = tmpdir("truncated");
    let m = push_manifest();
    let sd = m.state_dim();
    let mut w = DatasetWriter::create(&dir, m, 4).unwrap();
    w.push(episode(1, 4, 64, 64, 2, sd)).unwrap();
    w.finish().unwrap();
    let shard = dir.join("shard_00000.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let mut ds = Dataset::open(&dir).unwrap();
    let err = ds.episode(0).unwrap_err().to_string();
    assert!(err.contains("shard_00000.safetensors") && err.contains("truncated"), "{err}");
    std::fs::write(&shard, b"garbage").unwrap();
    let mut ds = Dataset::open(&dir).unwrap();
    assert!(ds.episode(0).unwrap_err().to_string().contains("shard_00000.safetensors"));
    std::fs::write(dir.join("manifest.json"), b"{ \"format_version\": 1, ").unwrap();
    let err = Dataset::open(&dir).err().unwrap().to_string();
    assert!(err.contains("manifest.json"), "{err}");
}

#[test]
fn import_png_episodes() {
    let src = tmpdir("import-src");
    for (e, steps) in [(0usize, 3usize), (1, 5)] {
        let d = src.join(format!("ep{e}"));
        std::fs::create_dir_all(&d).unwrap();
        for t in 0..=steps {
            let img = image::RgbImage::from_fn(16, 12, |x, y| image::Rgb([(x * 10 + t as u32) as u8, (y * 10) as u8, e as u8]));
            img.save(d.join(format!("frame_{t:04}.png"))).unwrap();
        }
        let lines: Vec<String> = (0..steps).map(|t| format!("{{\"action\": [{}, {}, {}]}}", (t % 3 == 0) as u8, (t % 3 == 1) as u8, (t % 3 == 2) as u8)).collect();
        std::fs::write(d.join("actions.jsonl"), lines.join("\n")).unwrap();
        std::fs::write(d.join("episode.json"), format!("{{\"caption\": \"episode {e}\"}}")).unwrap();
    }
    let out = tmpdir("import-out").join("ds");
    let m = foresight::data::import::import_dir(&src, &out, "test".into()).unwrap();
    assert_eq!(m.resolution, [12, 16]);
    assert!(m.action_spec.discrete);
    assert_eq!(m.action_spec.dim, 3);
    let mut ds = Dataset::open(&out).unwrap();
    let ep = ds.episode(1).unwrap();
    assert_eq!(ep.steps(), 5);
    assert_eq!(ep.caption, "episode 1");
    assert_eq!(&ep.frame(2)[..3], &[2, 0, 1]);
    // A missing frame is an error naming the file.
    std::fs::remove_file(src.join("ep1/frame_0005.png")).unwrap();
    let err = foresight::data::import::import_dir(&src, &tmpdir("import-out2").join("ds"), "t".into()).unwrap_err().to_string();
    assert!(err.contains("frame_0005.png"), "{err}");
}
