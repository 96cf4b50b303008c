#!/usr/bin/env bash
# The main job on the shipped defaults: records ground-truth episodes of the three scenes with
# the scripted policy (printing datagen throughput), and writes a PNG grid and a GIF of each
# under runs/ so that a person can look at them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The dev profile optimises every dependency (opt-level 3), so one build serves tests and runs.
cargo build -p foresight -p foresight_sim --bins
bin="$CARGO_TARGET_DIR/debug"
mkdir -p runs
for scene in push bounce arm; do
  out="runs/$scene-data"
  rm -rf "$out"
  "$bin/foresight-sim" datagen --scene "scenes/$scene.ron" --episodes 256 --seed 0 --policy scripted --out "$out"
  "$bin/foresight" show --data "$out" --count 6 --out "runs/$scene.png"
done
echo "open runs/push.png, runs/bounce.png, runs/arm.png (and the .gif beside each)"
