//! Integration tests of the simulator: rendering, determinism, the oracle, states vs pixels.
//! They need a Vulkan driver (Mesa's lavapipe on a CPU; `.ci/run` installs it).

mod control;
mod datagen;
mod generate;
mod physics;
mod policies;

use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh empty directory.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("foresight-sim-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Bevy renderers are heavy; tests that render take turns.
pub static RENDER_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the render lock even if another test panicked while holding it.
pub fn render_lock() -> std::sync::MutexGuard<'static, ()> {
    RENDER_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn wilson_interval_on_fixed_inputs() {
    use foresight_sim::control::wilson95;
    let [lo, hi] = wilson95(45, 50);
    assert!((lo - 0.7864).abs() < 1e-3 && (hi - 0.9565).abs() < 1e-3, "{lo} {hi}");
    let [lo, hi] = wilson95(0, 20);
    assert!(lo == 0.0 && (hi - 0.1611).abs() < 1e-3, "{hi}");
    assert_eq!(wilson95(0, 0), [0.0, 1.0]);
}
