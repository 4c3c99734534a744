#!/usr/bin/env bash
# End-to-end cases through the real executables and plugins of a build tree.
#   e2e.sh BUILD_DIR SOURCE_DIR CASE
# This file holds the helpers; the cases are functions case_<name> in cases_<topic>.sh.
# Each case builds what it needs in a fresh temporary directory and checks exit codes, files
# and printed lines. Shared tiny inputs (verifier + data) are made once per build tree.
set -euo pipefail
BUILD=$(cd "$1" && pwd); SRC=$(cd "$2" && pwd); CASE=$3
BIN=$BUILD/bin
WORK=$(mktemp -d "${TMPDIR:-/tmp}/speculators-e2e-$CASE.XXXXXX")
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"' EXIT
export SPECULATORS_LOG_LEVEL=${SPECULATORS_LOG_LEVEL:-info}
# The build's LibTorch major.minor and CUDA flag (tests/e2e/CMakeLists.txt sets them).
TORCH_VERSION=${SPECULATORS_TEST_TORCH_VERSION:?set by ctest}
TORCH_MAJOR=${TORCH_VERSION%%.*}; TORCH_MINOR=${TORCH_VERSION#*.}; TORCH_MINOR=${TORCH_MINOR%%.*}
TORCH_NEXT_MINOR=$((TORCH_MINOR + 1))
PLUGIN_DEVICE=CPU; [ "${SPECULATORS_TEST_CUDA:-0}" = 1 ] && PLUGIN_DEVICE=CUDA

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Tiny verifier and on-policy data, shared by the cases of one build tree.
tiny_inputs() {
  local dir=$BUILD/e2e-inputs
  if [ ! -f "$dir/data/data.jsonl" ]; then
    local tmp; tmp=$(mktemp -d "$BUILD/e2e-inputs.XXXXXX")
    "$BIN/speculators-datagen" make-verifier --arch llama --hidden-size 32 --num-layers 4 \
      --vocab-size 128 --out "$tmp/verifier" --seed 1 >/dev/null
    "$BIN/speculators-datagen" sample --verifier "$tmp/verifier" --num-samples 48 --seq-len 24 \
      --prompt-len 8 --out "$tmp/data" --seed 1 >/dev/null
    rm -rf "$dir"; mv "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
  fi
  VERIFIER=$dir/verifier; DATA=$dir/data
}


# Deterministic part of metrics.jsonl: every line without its timing ("profile/...") entries.
stable_metrics() { sed -E 's/,?"profile\/[a-z_]+":[^,}]*//g' "$1"; }
# train_args SAVE_DIR: a small myalgo run (3 epochs). One thread and no feature cache, so CPU
# results are bit-identical: cached verifier features were computed with other rows in the same
# verifier call than a resumed run computes them with, which changes their last bits.
train_args() {
  echo --speculator-type myalgo --verifier-name-or-path "$VERIFIER" --data-path "$DATA" \
    --save-path "$1" --epochs 3 --total-seq-len 128 --num-threads 1 --logger= --feature-cache-mb 0
}
# wait_lines FILE N PID: until FILE has N lines or PID is gone.
wait_lines() {
  while kill -0 "$3" 2>/dev/null; do
    [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    sleep 0.01
  done
}
# interrupt_at METRICS LINES PID LOG: SIGINT to PID once METRICS has LINES lines; it must exit 130
# (LOG is shown when it does not).
interrupt_at() {
  wait_lines "$1" "$2" "$3"
  kill -INT "$3"
  set +e; wait "$3"; local code=$?; set -e
  [ "$code" = 130 ] || { cat "$4" >&2; fail "SIGINT: expected exit 130, got $code"; }
}
# same_run BASE OTHER: identical losses, metrics and final weights/optimizer state.
same_run() {
  stable_metrics "$1/metrics.jsonl" >"$WORK/a.jsonl"; stable_metrics "$2/metrics.jsonl" >"$WORK/b.jsonl"
  diff "$WORK/a.jsonl" "$WORK/b.jsonl" >&2 || fail "metrics of $2 differ from the uninterrupted run"
  for f in model.safetensors optimizer_state.safetensors; do
    cmp "$1/2/$f" "$2/2/$f" || fail "$2/2/$f differs from the uninterrupted run"
  done
}

# Distributed cases: ranks are separate processes that meet over Gloo on 127.0.0.1.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# dist_args SAVE_DIR: a small eagle3 run. Samples are 24 tokens and rows 32, so every packed row
# holds exactly one sample: 2 ranks x 1 row and 1 rank x 2 rows (--grad-accum-steps 2) train
# each step on the same two samples. The schedule is pinned (it would follow the step count).
dist_args() {
  echo --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" --data-path "$DATA" --save-path "$1" \
    --epochs 1 --total-seq-len 32 --num-threads 1 --num-workers 0 --logger= --feature-cache-mb 0 \
    --scheduler-total-steps 20 --dist-timeout 30
}
# env_ranks N LOG_PREFIX ENV_STYLE command...: N ranks with the environment of torchrun, SLURM
# or Open MPI (ENV_STYLE torchrun|slurm|openmpi); waits for all; fails unless all exit 0.
env_ranks() {
  local n=$1 log=$2 style=$3; shift 3
  local port; port=$(free_port); local pids=()
  for r in $(seq 0 $((n - 1))); do
    case $style in
      torchrun) env RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$@" >"$log.$r" 2>&1 & ;;
      slurm) env SLURM_PROCID=$r SLURM_NTASKS=$n SLURM_LOCALID=$r SLURM_NNODES=1 MASTER_PORT=$port "$@" >"$log.$r" 2>&1 & ;;
      openmpi) env OMPI_COMM_WORLD_RANK=$r OMPI_COMM_WORLD_SIZE=$n OMPI_COMM_WORLD_LOCAL_RANK=$r \
                 MASTER_PORT=$port "$@" >"$log.$r" 2>&1 & ;;
    esac
    pids+=($!)
  done
  local r=0
  for pid in "${pids[@]}"; do
    wait "$pid" || { cat "$log".* >&2; fail "rank $r ($style launch) failed: $*"; }
    r=$((r + 1))
  done
}
# close_weights A B: every fp32 weight and optimizer slot of two checkpoints within 1e-5.
close_weights() {
  for prefix in model/ muon/ adamw/; do
    python3 "$SRC/tests/e2e/compare_weights.py" "$1/optimizer_state.safetensors" "$2/optimizer_state.safetensors" \
      1e-5 "$prefix" >&2 || fail "$prefix tensors of $2 differ from $1 by more than 1e-5"
  done
}
# same_losses A B: train/loss at every global step of two metrics.jsonl equal to 1e-5 (relative).
same_losses() {
  python3 - "$1" "$2" <<'PY' || fail "the loss curves of $1 and $2 differ"
import json, sys
def losses(path):
    return {j["global_step"]: j["train/loss"] for j in map(json.loads, open(path)) if "train/loss" in j}
a, b = losses(sys.argv[1]), losses(sys.argv[2])
assert a.keys() == b.keys(), (sorted(a), sorted(b))
for k in a:
    assert abs(a[k] - b[k]) <= 1e-5 * abs(a[k]), (k, a[k], b[k])
print(len(a), "steps, same losses", file=sys.stderr)
PY
}

# The cases live in cases_<topic>.sh, one function case_<name> each.
for cases_file in "$SRC"/tests/e2e/cases_*.sh; do
  # shellcheck source=/dev/null
  source "$cases_file"
done
declare -F "case_$CASE" >/dev/null || fail "unknown case $CASE"
"case_$CASE"
echo "PASS [$CASE]"
