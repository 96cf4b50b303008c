//! Closed-loop control through `foresight-sim plan`: with the oracle as imagination it pushes the
//! block home, the report is rewritten per episode, and `--resume` keeps finished episodes only
//! when the settings match; with the model, its candidate costs are audited by the oracle.

use std::process::Command;

use crate::{render_lock, root, tmpdir};

fn plan(json: &std::path::Path, extra: &[&str]) -> std::process::Output {
    plan_with("oracle", json, extra)
}

fn plan_with(imagination: &str, json: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_foresight-sim"))
        .current_dir(root())
        .args(["plan", "--scene", "scenes/push.ron", "--imagination", imagination, "--seed", "5000", "--json"])
        .arg(json)
        .args(extra)
        .output()
        .unwrap()
}

fn report(json: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

#[test]
fn the_oracle_planner_pushes_the_block_home_and_a_stopped_run_resumes() {
    let _g = render_lock();
    let dir = tmpdir("plan");
    let json = dir.join("oracle.json");
    let out = plan(&json, &["--episodes", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = report(&json);
    assert_eq!(first["complete"], true);
    assert_eq!(first["results"].as_array().unwrap().len(), 2);
    // The default budget (16 candidates, one round, noise held 4 steps) solves these starts.
    assert_eq!(first["success_rate"], 1.0, "{first}");
    assert!(dir.join("oracle.gif").exists(), "the first episode's GIF");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("episode 2/2: success"),
        "a progress line per episode: {stderr}"
    );
    // Resuming to 3 episodes keeps the 2 done (same bytes) and plays one more.
    let out = plan(&json, &["--episodes", "3", "--resume"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = report(&json);
    let rows = resumed["results"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[..2], first["results"].as_array().unwrap()[..]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 of 3 episodes done"));
    // Other settings are refused, and the report is left as it was.
    let out = plan(&json, &["--episodes", "4", "--resume", "--hold", "2"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`config` differs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report(&json), resumed);
}

#[test]
fn the_model_planner_is_audited_by_the_oracle_on_the_same_candidates() {
    let _g = render_lock();
    let dir = tmpdir("plan-model");
    let json = dir.join("model.json");
    let out = plan_with("model", &json, &["--checkpoint", "assets/push.safetensors", "--episodes", "1", "--max-steps", "8", "--temperature", "0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(&json);
    let row = &r["results"][0];
    assert_eq!(row["steps"], 8, "{r}");
    let rho = row["cost_spearman_vs_oracle"].as_f64().unwrap();
    let regret = row["regret_px"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&rho) && regret >= 0.0, "{rho} {regret}");
    assert!((0.0..=1.0).contains(&row["imagined_body_lost"].as_f64().unwrap()));
    // Where the imagined bodies end against the truth: the agent is tracked within a few pixels
    // over 8 steps, and the errors are finite distances inside the 64-pixel frame.
    let body_err = row["imagined_body_error_px"].as_f64().unwrap();
    let agent_err = row["imagined_agent_error_px"].as_f64().unwrap();
    assert!((0.0..64.0).contains(&body_err) && (0.0..64.0).contains(&agent_err), "{body_err} {agent_err}");
    assert!(row["pushing_candidates"].as_u64().is_some(), "{r}");
    assert_eq!(r["imagined_body_error_px"], row["imagined_body_error_px"]);
    assert!(r["seconds_per_action"].as_f64().unwrap() > 0.0);
    assert_eq!(r["config"]["sampler"]["temperature"], 0.0);
    // The oracle's own runs carry no audit.
    let out = plan(&dir.join("oracle.json"), &["--episodes", "1", "--max-steps", "8"]);
    assert!(out.status.success());
    let alone = report(&dir.join("oracle.json"));
    assert!(alone["results"][0]["cost_spearman_vs_oracle"].is_null());
    // Shadowed by the model, the oracle plays the same episode (it does not depend on the model),
    // and the model's costs of the same candidates are audited and dumped per round.
    let dump = dir.join("dump.jsonl");
    // A second checkpoint (here the same one) scores the same candidates from the same context.
    let out = plan(&dir.join("shadow.json"), &["--episodes", "1", "--max-steps", "8", "--shadow-model", "--checkpoint", "assets/push.safetensors", "--audit-dump", dump.to_str().unwrap(), "--audit-checkpoint", "assets/push.safetensors"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shadow = report(&dir.join("shadow.json"));
    for key in ["steps", "final_distance_px", "success"] {
        assert_eq!(shadow["results"][0][key], alone["results"][0][key], "{key}");
    }
    assert!(shadow["results"][0]["cost_spearman_vs_oracle"].as_f64().is_some(), "{shadow}");
    let rounds: Vec<serde_json::Value> = std::fs::read_to_string(&dump).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rounds.len(), 2, "8 steps, 4 actions per plan");
    for r in &rounds {
        assert_eq!(r["model"].as_array().unwrap().len(), 16);
        assert_eq!(r["model"][0].as_array().unwrap().len(), 1, "one sample");
        assert_eq!(r["oracle"].as_array().unwrap().len(), 16);
        assert_eq!(r["oracle_last"].as_array().unwrap().len(), 16);
        assert_eq!(r["second_model"], r["model"], "the same checkpoint, context and noise: the same costs");
    }
    // Without the oracle as the planner's imagination, shadowing is refused.
    let out = plan_with("random", &dir.join("bad.json"), &["--shadow-model", "--checkpoint", "assets/push.safetensors", "--episodes", "1"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--shadow-model"));
}
