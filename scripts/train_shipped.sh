#!/usr/bin/env bash
# Reproduces a shipped checkpoint: assets/NAME.safetensors + assets/NAME.json.
#   scripts/train_shipped.sh push     # from scratch: configs/default.json
#   scripts/train_shipped.sh bounce   # fine-tuned from assets/push.safetensors: configs/finetune.json
#   scripts/train_shipped.sh arm      # likewise (3-d actions: a fresh action embedding)
# Resumable: run it again after an interruption and it continues (datasets are kept, training
# resumes exactly). Work goes to data/NAME-train and runs/NAME-ship; evaluation data (seeds from
# 1000) is written to data/NAME-eval and the report to runs/NAME-ship/eval.*.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
name="${1:?usage: scripts/train_shipped.sh push|bounce|arm}"
# FORESIGHT_BIN: a folder of already built binaries (a background queue uses a frozen copy).
bin="${FORESIGHT_BIN:-}"
if [ -z "$bin" ]; then
  cargo build -p foresight -p foresight_sim --bins
  bin="$CARGO_TARGET_DIR/debug"
fi
data="data/$name-train"
out="runs/$name-ship"
[ -f "$data/manifest.json" ] || "$bin/foresight-sim" datagen --scene "scenes/$name.ron" --episodes 1024 --seed 1 --out "$data"
[ -f "data/$name-eval/manifest.json" ] || "$bin/foresight-sim" datagen --scene "scenes/$name.ron" --episodes 32 --steps 80 --seed 1000 --out "data/$name-eval"
resume=()
[ -d "$out" ] && resume=(--resume)
if [ "$name" = push ]; then
  "$bin/foresight" train --data "$data" --config configs/default.json --out "$out" "${resume[@]}"
else
  "$bin/foresight" train --data "$data" --config configs/finetune.json --init assets/push.safetensors --out "$out" "${resume[@]}"
fi
"$bin/foresight" export --checkpoint "$out/world_model.safetensors" --out "assets/$name.safetensors"
"$bin/foresight" eval --checkpoint "assets/$name.safetensors" --data "data/$name-eval" --context 4 --horizon 16 --json "$out/eval.json"
