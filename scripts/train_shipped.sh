#!/usr/bin/env bash
# Reproduces a shipped checkpoint: assets/NAME.safetensors + assets/NAME.json.
#   scripts/train_shipped.sh push     # from scratch: configs/default.json (runs/push-ship, the base),
#                                     # then captions, backward prediction and anchors:
#                                     # configs/push_text.json on scripted + random-policy data
#                                     # (runs/push-text) -> assets/push.safetensors
#   scripts/train_shipped.sh bounce   # fine-tuned from the push base: configs/finetune.json
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
base="runs/push-ship/world_model.safetensors"
if [ "$name" = push ]; then
  "$bin/foresight" train --data "$data" --config configs/default.json --out "$out" "${resume[@]}"
  # Stage 3: text, backward prediction and anchor frames, on scripted + random-policy episodes.
  [ -f data/push-random/manifest.json ] || "$bin/foresight-sim" datagen --scene scenes/push.ron --episodes 768 --seed 20000 --policy random --out data/push-random
  resume=()
  [ -d runs/push-text ] && resume=(--resume)
  "$bin/foresight" train --data "$data" --data data/push-random --config configs/push_text.json --init "$base" --out runs/push-text "${resume[@]}"
  out=runs/push-text
else
  [ -f "$base" ] || { echo "bounce and arm start from the push base: run scripts/train_shipped.sh push first" >&2; exit 1; }
  "$bin/foresight" train --data "$data" --config configs/finetune.json --init "$base" --out "$out" "${resume[@]}"
fi
"$bin/foresight" export --checkpoint "$out/world_model.safetensors" --out "assets/$name.safetensors"
"$bin/foresight" eval --checkpoint "assets/$name.safetensors" --data "data/$name-eval" --context 4 --horizon 16 --json "$out/eval.json"
if [ "$name" = push ]; then
  "$bin/foresight-sim" eval-generate --scene scenes/push.ron --checkpoint assets/push.safetensors --data data/push-eval --json "$out/eval_generate.json"
fi
