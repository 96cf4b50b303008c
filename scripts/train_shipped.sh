#!/usr/bin/env bash
# Reproduces a shipped checkpoint: assets/NAME.safetensors + assets/NAME.json.
#   scripts/train_shipped.sh push        # the convolutional push (session 7), five resumable steps:
#       1. convolutional autoencoder, 1,000 steps         configs/push_conv.json       runs/push-conv
#       2. 1,500 more with the colour weight (to 2,500)    configs/push_conv_more.json  runs/push-conv2
#       3. a fresh transformer on it, 1,200 steps          configs/push_conv_more.json  runs/push-conv2
#       4. self-generated, re-encoded context, 1,500 steps configs/push_conv_self.json  runs/push-conv-self
#       5. captions, backward windows, anchors, 1,200      configs/push_conv_text.json  runs/push-conv-text
#       6. 500 more, fewer of those, more own context      configs/push_conv_polish.json runs/push-conv-polish
#          (5 and 6 on scripted + random-policy episodes)  -> assets/push.safetensors
#   scripts/train_shipped.sh bounce      # fine-tuned from the shipped push (assets/push.safetensors):
#   scripts/train_shipped.sh arm         # 1. configs/finetune_conv.json, runs/NAME-conv: the autoencoder
#       500 steps on the scene, then the transformer 1,000 steps (arm: 3-d actions, a fresh action
#       embedding; frame deltas re-measured on the scene); 2. configs/finetune_conv_self.json
#       --init it, runs/NAME-conv-self: 800 steps on its own re-encoded context. Scripted +
#       random-policy episodes; ~75 min.
# Resumable: run it again after an interruption and it continues (datasets are kept, training
# resumes exactly). Work goes to data/NAME-train and runs/; evaluation data (seeds from 1000) is
# written to data/NAME-eval and the report beside the final run's checkpoint (eval.*).
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
scene="$name"
data="data/$scene-train"
[ -f "$data/manifest.json" ] || "$bin/foresight-sim" datagen --scene "scenes/$scene.ron" --episodes 1024 --seed 1 --out "$data"
[ -f "data/$scene-eval/manifest.json" ] || "$bin/foresight-sim" datagen --scene "scenes/$scene.ron" --episodes 32 --steps 80 --seed 1000 --out "data/$scene-eval"

# Optimiser steps a stage of a run directory has done (0 before it starts).
done_steps() { sed -n 's/^ *"step": *\([0-9]*\).*/\1/p' "$1" 2>/dev/null | head -n 1 | grep . || echo 0; }
# Trains run $2 with config $1 until stage file $3 reaches $4 steps (the config's schedule may be
# longer: the run stops there, as the shipped one did); extra arguments go to `train`.
train_to() {
  local cfg="$1" out="$2" state="$3" target="$4"; shift 4
  local now; now=$(done_steps "$out/$state")
  [ "$now" -ge "$target" ] && return 0
  local resume=()
  [ -f "$out/$state" ] && resume=(--resume)
  "$bin/foresight" train --config "$cfg" --out "$out" --stop-after $((target - now)) "${resume[@]}" "$@"
}

case "$name" in
  push)
    [ -f data/push-random/manifest.json ] || "$bin/foresight-sim" datagen --scene scenes/push.ron --episodes 768 --seed 20000 --policy random --out data/push-random
    train_to configs/push_conv.json runs/push-conv autoencoder.state.json 1000 --data "$data"
    if [ ! -f runs/push-conv2/autoencoder.state.json ]; then
      mkdir -p runs/push-conv2 && cp runs/push-conv/autoencoder.* runs/push-conv2/
    fi
    train_to configs/push_conv_more.json runs/push-conv2 autoencoder.state.json 2500 --data "$data"
    train_to configs/push_conv_more.json runs/push-conv2 dynamics.state.json 1200 --data "$data"
    train_to configs/push_conv_self.json runs/push-conv-self dynamics.state.json 1500 --data "$data" --init runs/push-conv2/world_model.safetensors
    train_to configs/push_conv_text.json runs/push-conv-text dynamics.state.json 1200 --data "$data" --data data/push-random --init runs/push-conv-self/world_model.safetensors
    train_to configs/push_conv_polish.json runs/push-conv-polish dynamics.state.json 500 --data "$data" --data data/push-random --init runs/push-conv-text/world_model.safetensors
    out=runs/push-conv-polish
    ;;
  bounce|arm)
    [ -f "data/$name-random/manifest.json" ] || "$bin/foresight-sim" datagen --scene "scenes/$name.ron" --episodes 512 --seed 20000 --policy random --out "data/$name-random"
    base="runs/$name-conv"
    if [ "$(done_steps "$base/dynamics.state.json")" -lt 1000 ]; then
      resume=()
      [ -d "$base" ] && resume=(--resume)
      "$bin/foresight" train --config configs/finetune_conv.json --out "$base" --data "$data" --data "data/$name-random" --init assets/push.safetensors "${resume[@]}"
    fi
    train_to configs/finetune_conv_self.json "runs/$name-conv-self" dynamics.state.json 800 --data "$data" --data "data/$name-random" --init "$base/world_model.safetensors"
    out="runs/$name-conv-self"
    ;;
  *)
    echo "unknown checkpoint $name: push, bounce or arm" >&2
    exit 2
    ;;
esac
"$bin/foresight" export --checkpoint "$out/world_model.safetensors" --out "assets/$name.safetensors"
"$bin/foresight" eval --checkpoint "assets/$name.safetensors" --data "data/$name-eval" --context 4 --horizon 16 --json "$out/eval.json"
if [ "$name" = push ]; then
  "$bin/foresight-sim" eval-generate --scene scenes/push.ron --checkpoint assets/push.safetensors --data data/push-eval --json "$out/eval_generate.json"
fi
