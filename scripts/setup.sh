#!/usr/bin/env bash
# Installs what Foresight needs and is missing, then exports the build environment.
# Sourced by scripts/main.sh, scripts/test.sh and .ci/run.
set -euo pipefail

sudo_cmd() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

# Mesa's software Vulkan (lavapipe): Bevy renders offscreen on the CPU through it. (No `grep -q`
# on the pipe: it exits at the first match, ldconfig dies of SIGPIPE, and under pipefail the
# check failed now and then and reinstalled the driver.)
if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || ! ldconfig -p 2>/dev/null | grep libvulkan.so.1 >/dev/null; then
  echo "== installing the software Vulkan driver (libvulkan1 mesa-vulkan-drivers)"
  sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_cmd apt-get install -y -qq libvulkan1 mesa-vulkan-drivers >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust 1.95 (rustup) first" >&2
  exit 1
fi

# One target directory outside the clone, reused between runs when it exists.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/foresight-target}"
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_INCREMENTAL=0
# lavapipe wants a runtime dir; headless machines often have none.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/foresight-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
