//! Integration tests of the core crate (one binary, several modules).

mod dataset;
mod generate;
mod model;
mod plan;
mod world_model;
mod scene;

/// A fresh empty directory under the target dir.
pub fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("foresight-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The repository root.
pub fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
