#!/usr/bin/env bash
# The main job on the shipped defaults:
#   1. records ground-truth episodes of the three scenes with the scripted policy (printing
#      datagen throughput) and writes a PNG grid and a GIF of each under runs/;
#   2. with each shipped checkpoint (assets/NAME.safetensors), predicts 16 frames from 4 frames
#      of a fresh episode (seeds never trained on) and writes truth | prediction | difference
#      (runs/NAME-rollout.gif, and a PNG strip with three sampled futures);
#   3. runs the plugin example `foresee`: the push scene plays in the simulator, the agent asks
#      the world-model plugin for its next 16 frames every 8 steps; runs/foresee.gif shows real |
#      imagined | difference and the figures are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The dev profile optimises every dependency (opt-level 3), so one build serves tests and runs.
cargo build -p foresight -p foresight_sim --bins
cargo build -p bevy_foresight --example foresee
bin="$CARGO_TARGET_DIR/debug"
mkdir -p runs
for scene in push bounce arm; do
  out="runs/$scene-data"
  rm -rf "$out"
  "$bin/foresight-sim" datagen --scene "scenes/$scene.ron" --episodes 256 --seed 0 --policy scripted --out "$out"
  "$bin/foresight" show --data "$out" --count 6 --out "runs/$scene.png"
  if [ -f "assets/$scene.safetensors" ]; then
    "$bin/foresight" rollout --checkpoint "assets/$scene.safetensors" --data "$out" --episode 0 --samples 3 --out "runs/$scene-rollout.gif"
  else
    echo "no shipped checkpoint assets/$scene.safetensors: skipping its rollout"
  fi
done
if [ -f assets/push.safetensors ]; then
  "$bin/examples/foresee" --checkpoint assets/push.safetensors --out runs/foresee.gif
  # Text + one image to video (three samples and their spread), then the same video extended
  # backwards in time.
  "$bin/foresight" generate --checkpoint assets/push.safetensors --from-image assets/push_start.png --text "the red disc moves right. the blue block stays still." --samples 3 --out runs/generate
  "$bin/foresight" extend --checkpoint assets/push.safetensors --video runs/generate --frames 8 --backward --out runs/extend
fi
echo "look at runs/{push,bounce,arm}.png (ground truth), runs/*-rollout.gif|png (truth | prediction | difference), runs/foresee.gif, runs/generate/ and runs/extend/ (GIF + strip.png)"
