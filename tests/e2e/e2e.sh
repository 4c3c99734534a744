#!/usr/bin/env bash
# End-to-end cases through the real executables and plugins of a build tree.
#   e2e.sh BUILD_DIR SOURCE_DIR CASE
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

fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
expect_code() {  # expect_code CODE command...
  local want=$1; shift
  set +e; "$@" >"$WORK/out.txt" 2>"$WORK/err.txt"; local got=$?; set -e
  if [ "$got" != "$want" ]; then
    cat "$WORK/out.txt" "$WORK/err.txt" >&2
    fail "expected exit $want, got $got from: $*"
  fi
}
expect_text() {  # expect_text FILE PATTERN
  grep -q -E -- "$2" "$1" || { cat "$1" >&2; fail "no line matching '$2' in $1"; }
}

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

case "$CASE" in
  seed_command)
    # The reference's documented command, as written (issue: "The seed's command works").
    tiny_inputs
    expect_code 0 "$BIN/speculators-train" --speculator-type myalgo --verifier-name-or-path "$VERIFIER" \
      --num-layers 1 --block-size 8 --data-path "$DATA" --save-path "$WORK/ckpt" --epochs 20
    for e in 0 19; do
      for f in config.json model.safetensors training_state.json; do
        [ -s "$WORK/ckpt/$e/$f" ] || fail "missing $WORK/ckpt/$e/$f"
      done
    done
    expect_text "$WORK/ckpt/19/training_state.json" '"epoch": 19'
    expect_text "$WORK/ckpt/19/config.json" '"speculators_model_type": "myalgo"'
    expect_text "$WORK/ckpt/metrics.jsonl" '"val/loss_epoch"'
    expect_text "$WORK/ckpt/run.yaml" 'speculator_type: "myalgo"'  # defaults (block_size 8, epochs 20) are left out
    expect_text "$WORK/ckpt/train_command.txt" '--speculator-type myalgo'
    ;;
  exit_codes)
    tiny_inputs
    expect_code 2 "$BIN/speculators-train" --speculator-type myalgo --epoch 3
    expect_text "$WORK/err.txt" 'did you mean --epochs'
    expect_code 2 "$BIN/speculators-train" --speculator-type myalgo --data-path "$DATA"
    expect_text "$WORK/err.txt" 'verifier-name-or-path is required'
    expect_code 2 "$BIN/speculators-train" --speculator-type nosuchalgo --verifier-name-or-path "$VERIFIER"
    expect_text "$WORK/err.txt" 'nosuchalgo'
    printf 'train:\n  trainer:\n    epohcs: 3\n' >"$WORK/job.yaml"
    expect_code 2 "$BIN/speculators-train" "$WORK/job.yaml" --speculator-type myalgo
    expect_text "$WORK/err.txt" 'job.yaml:3'
    mkdir -p "$WORK/bad"; printf '{"input_ids": [1, 2], "loss_mask": [1]}\n' >"$WORK/bad/data.jsonl"
    expect_code 4 "$BIN/speculators-train" --speculator-type myalgo --verifier-name-or-path "$VERIFIER" \
      --data-path "$WORK/bad" --save-path "$WORK/out" --epochs 1
    expect_text "$WORK/err.txt" 'data.jsonl:1'
    expect_code 0 "$BIN/speculators-train" --help
    expect_text "$WORK/out.txt" '--verifier-name-or-path'
    expect_code 0 "$BIN/speculators-train" --speculator-type myalgo --dump-config --epochs 4
    expect_text "$WORK/out.txt" 'epochs: 4'
    ;;
  list_and_describe)
    expect_code 0 "$BIN/speculators-train" --list-plugins
    expect_text "$WORK/out.txt" '^myalgo +0\.1\.0 +.*myalgo\.so +ok'
    expect_text "$WORK/out.txt" '^eagle3 +0\.1\.0 +.*eagle3\.so +ok'
    expect_code 0 "$BIN/speculators-train" --describe myalgo
    expect_text "$WORK/out.txt" '--block-size'
    expect_code 0 "$BIN/speculators-train" --describe eagle3
    expect_text "$WORK/out.txt" '--ttt-steps'
    expect_text "$WORK/out.txt" '--no-norm-before-residual'
    ;;
  rejected_plugins)
    # Plugins built for another ABI major, LibTorch minor or C++11 ABI, and plugins that crash,
    # abort or hang in registration, are rejected with a one-line reason, and the host still
    # trains with the good plugins.
    tiny_inputs
    fixtures=$BUILD/tests/plugin_fixtures
    mkdir -p "$WORK/plugins"
    for f in bad_abi_major bad_torch bad_cxx11 garbage reg_segfault reg_abort reg_hang; do
      cp "$fixtures/$f.so" "$WORK/plugins/"
    done
    # A plugin that crashes, aborts or hangs in registration does so in a probe child.
    export SPECULATORS_PLUGIN_PROBE_TIMEOUT=2
    start=$SECONDS
    expect_code 0 timeout 60 "$BIN/speculators-train" --plugin-dir "$WORK/plugins" --list-plugins
    [ $((SECONDS - start)) -lt 30 ] || fail "--list-plugins took $((SECONDS - start)) s"
    expect_text "$WORK/out.txt" '^reg_segfault .* rejected: crashed in registration \(signal 11\)$'
    expect_text "$WORK/out.txt" '^reg_abort .* rejected: crashed in registration \(signal 6\)$'
    expect_text "$WORK/out.txt" '^reg_hang .* rejected: hung in registration \(no answer within 2 s; killed\)$'
    expect_text "$WORK/out.txt" 'rejected: .*ABI major'
    expect_text "$WORK/out.txt" "rejected: .*LibTorch $TORCH_MAJOR\\.[0-9]+ != host $TORCH_MAJOR\\.$TORCH_MINOR"
    expect_text "$WORK/out.txt" 'rejected: .*C\+\+11 ABI'
    expect_text "$WORK/out.txt" '^myalgo .* ok'
    expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/plugins" --speculator-type myalgo \
      --verifier-name-or-path "$VERIFIER" --data-path "$DATA" --save-path "$WORK/ckpt" --epochs 1
    [ -s "$WORK/ckpt/0/model.safetensors" ] || fail "no checkpoint after training with rejected plugins around"
    ;;
  plugin_packages)
    # `plugins install|list|remove` with the packages of this build (docs/plugins.md): the
    # in-tree myalgo package installs into a fresh directory and loads from there; a package
    # built for the next LibTorch minor is refused in one line with nothing copied; a plugin
    # directory others can write to is refused.
    pkg=$BUILD/packages/speculators-plugin-myalgo-0.1.0.tar.gz
    expect_code 0 "$BIN/speculators-train" plugins install "$pkg" --plugin-dir "$WORK/plugins"
    expect_text "$WORK/out.txt" "^installed myalgo 0\.1\.0 into $WORK/plugins"
    expect_code 0 "$BIN/speculators-train" plugins list --plugin-dir "$WORK/plugins"
    expect_text "$WORK/out.txt" "^  myalgo 0\\.1\\.0  plugin ABI [0-9]+\\.[0-9]+  LibTorch $TORCH_MAJOR\\.$TORCH_MINOR\\.[0-9]+  C\\+\\+11 ABI [01]  $PLUGIN_DEVICE  sha256 [0-9a-f]{12}  ok\$"
    expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/plugins" --list-plugins
    expect_text "$WORK/out.txt" "^myalgo +0\.1\.0 +$WORK/plugins/myalgo\.so +ok"
    expect_code 3 "$BIN/speculators-train" plugins install "$BUILD/tests/plugin_packages/speculators-plugin-bad_torch-0.0.1.tar.gz" \
      --plugin-dir "$WORK/other"
    [ "$(wc -l <"$WORK/err.txt")" = 1 ] || fail "the refusal is not one line"
    expect_text "$WORK/err.txt" "does not fit this host: LibTorch $TORCH_MAJOR\\.$TORCH_NEXT_MINOR != host $TORCH_MAJOR\\.$TORCH_MINOR\$"
    [ ! -e "$WORK/other" ] || fail "a refused package created $WORK/other"
    # An installed .so that no longer matches its manifest is refused before it is opened.
    printf 'x' >>"$WORK/plugins/myalgo.so"
    expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/plugins" --list-plugins
    expect_text "$WORK/out.txt" "^myalgo .*$WORK/plugins/myalgo\.so +rejected: sha256 of $WORK/plugins/myalgo\.so is [0-9a-f]{64} but its manifest"
    expect_code 0 "$BIN/speculators-train" plugins remove myalgo --plugin-dir "$WORK/plugins"
    [ -z "$(ls -A "$WORK/plugins")" ] || fail "plugins remove left files in $WORK/plugins"
    mkdir -m 0757 "$WORK/open"
    expect_code 3 "$BIN/speculators-train" --plugin-dir "$WORK/open" --list-plugins
    expect_text "$WORK/err.txt" "--plugin-dir $WORK/open is writable by others \(mode 0757\)"
    ;;
  eagle3_dry_run)
    tiny_inputs
    expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
      --data-path "$DATA" --save-path "$WORK/dry" --dry-run
    expect_text "$WORK/dry/config.json" '"speculators_model_type": "eagle3"'
    [ -s "$WORK/dry/model.safetensors" ] || fail "dry run wrote no weights"
    ;;
  eagle3_eval)
    # Train a little, then decode speculatively: every output equals greedy decoding, and the
    # trained draft gets more than the bonus token per step on average.
    tiny_inputs
    expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
      --data-path "$DATA" --save-path "$WORK/ckpt" --epochs 16 --total-seq-len 256 --lr 1e-2
    expect_code 0 "$BIN/speculators-eval" --verifier "$VERIFIER" --data "$DATA" --draft "$WORK/ckpt/15" \
      --num-prompts 6 --max-new-tokens 16 --json
    expect_text "$WORK/out.txt" '"exact_prompts":6'
    tau=$(sed -E 's/.*"acceptance_length":([0-9.e+-]+).*/\1/' "$WORK/out.txt")
    awk -v t="$tau" 'BEGIN { exit !(t > 2 && t <= 4) }' || fail "acceptance length $tau not in (2, 4]"
    expect_text "$WORK/ckpt/15/eval.json" '"acceptance_length"'
    expect_text "$WORK/ckpt/report.html" 'measured acceptance length &tau; of checkpoint 15'
    expect_code 0 "$BIN/speculators-eval" --verifier "$VERIFIER" --data "$DATA" --draft "$WORK/ckpt/15" \
      --num-prompts 2 --max-new-tokens 8
    expect_text "$WORK/out.txt" 'acceptance length tau'
    expect_text "$WORK/out.txt" 'training estimate'
    expect_text "$WORK/out.txt" '2/2 outputs identical'
    expect_code 2 "$BIN/speculators-eval" --verifier "$VERIFIER" --data "$DATA" --draft "$WORK/nothing"
    expect_text "$WORK/err.txt" 'no config.json'
    mkdir -p "$WORK/config-only" && cp "$WORK/ckpt/15/config.json" "$WORK/config-only/"
    expect_code 2 "$BIN/speculators-eval" --verifier "$VERIFIER" --data "$DATA" --draft "$WORK/config-only"
    expect_text "$WORK/err.txt" 'config-only: no model.safetensors'
    ;;
  eagle3_train)
    tiny_inputs
    expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
      --data-path "$DATA" --save-path "$WORK/ckpt" --epochs 2 --total-seq-len 256
    expect_text "$WORK/ckpt/metrics.jsonl" '"val/full_acc_0_epoch"'
    expect_text "$WORK/ckpt/metrics.jsonl" '"val/acceptance_length_epoch"'
    expect_text "$WORK/err.txt" 'estimated acceptance length'
    # --from-pretrained: the saved draft is rebuilt from its config.json and weights.
    expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
      --data-path "$DATA" --save-path "$WORK/again" --epochs 1 --total-seq-len 256 --from-pretrained "$WORK/ckpt/1"
    expect_text "$WORK/err.txt" "loaded draft weights from $WORK/ckpt/1"
    ;;
  device_precision)
    # --device cuda without CUDA is a usage error naming what is missing (docs/gpu.md); a bf16
    # run on the CPU trains under autocast, and its --max-steps + resume equals the
    # uninterrupted bf16 run bit for bit (exact resume holds per device and precision).
    tiny_inputs
    set +e; "$BIN/speculators-train" $(train_args "$WORK/cuda") --device cuda --max-steps 1 >"$WORK/out.txt" 2>"$WORK/err.txt"
    got=$?; set -e
    if grep -q 'device: cuda' "$WORK/err.txt"; then
      echo "a GPU is visible: the no-CUDA error is not checked here"
    else
      [ "$got" = 2 ] || { cat "$WORK/err.txt" >&2; fail "--device cuda without CUDA: exit $got, expected 2"; }
      expect_text "$WORK/err.txt" '--device cuda: .*(no CUDA support|sees no CUDA device)'
      expect_code 2 "$BIN/speculators-train" $(train_args "$WORK/cuda") --device cuda:1
      expect_text "$WORK/err.txt" '--device cuda:1: '
    fi
    expect_code 2 "$BIN/speculators-train" $(train_args "$WORK/bad") --precision fp16
    expect_text "$WORK/err.txt" 'precision must be one of bf16, fp32'
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/b16") --device cpu --precision bf16 --epochs 2
    expect_text "$WORK/err.txt" 'device: cpu, bf16 autocast .*verifier hidden states bfloat16'
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/b16b") --device cpu --precision bf16 --epochs 2 \
      --max-steps 5 --scheduler-total-steps "$(grep -c '"train/loss"' "$WORK/b16/metrics.jsonl")"
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/b16b") --device cpu --precision bf16 --epochs 2 \
      --scheduler-total-steps "$(grep -c '"train/loss"' "$WORK/b16/metrics.jsonl")"
    expect_text "$WORK/err.txt" 'resuming from'
    stable_metrics "$WORK/b16/metrics.jsonl" >"$WORK/a.jsonl"; stable_metrics "$WORK/b16b/metrics.jsonl" >"$WORK/b.jsonl"
    diff "$WORK/a.jsonl" "$WORK/b.jsonl" >&2 || fail "the resumed bf16 run's metrics differ"
    cmp "$WORK/b16/1/model.safetensors" "$WORK/b16b/1/model.safetensors" || fail "bf16 weights differ after resume"
    cmp "$WORK/b16/1/optimizer_state.safetensors" "$WORK/b16b/1/optimizer_state.safetensors" ||
      fail "bf16 optimizer state differs after resume"
    # ... and it is not the fp32 run.
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/f32") --device cpu --epochs 2
    ! cmp -s "$WORK/b16/1/model.safetensors" "$WORK/f32/1/model.safetensors" || fail "bf16 and fp32 runs are identical"
    ;;
  resume_exact)
    # SIGKILL at random steps (a checkpoint every step, so some kills land inside a save), then
    # resume: every later metric and the final weights equal an uninterrupted run's, bit for bit.
    tiny_inputs
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/base") --save-steps 1
    total=$(grep -c '"train/loss"' "$WORK/base/metrics.jsonl")
    [ "$total" -ge 12 ] || fail "the baseline run has only $total steps"
    for seed in 1 2 3; do
      RANDOM=$seed; kills=0
      run="$WORK/run$seed"
      for attempt in 1 2; do
        target=$((RANDOM % (total - 2) + 1))
        "$BIN/speculators-train" $(train_args "$run") --save-steps 1 >"$WORK/out.txt" 2>&1 &
        pid=$!
        wait_lines "$run/metrics.jsonl" "$target" "$pid"
        kill -9 "$pid" 2>/dev/null && kills=$((kills + 1)); wait "$pid" 2>/dev/null || true
      done
      [ "$kills" -ge 1 ] || fail "seed $seed: every run finished before it could be killed"
      expect_code 0 "$BIN/speculators-train" $(train_args "$run") --save-steps 1
      expect_text "$WORK/err.txt" 'resuming from'
      same_run "$WORK/base" "$run"
      [ -z "$(ls -A "$run" | grep '^\.tmp-')" ] || fail "a temporary checkpoint directory was left in $run"
    done
    # A resume at an epoch end, and one with gradient accumulation and --keep-last.
    # (The schedule's length is pinned: by default it follows --epochs.)
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/ep") --save-steps 1 --epochs 2 --scheduler-total-steps "$total"
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/ep") --save-steps 1 --scheduler-total-steps "$total"
    expect_text "$WORK/err.txt" 'resuming from .*/1: epoch 2, packed row 0'
    same_run "$WORK/base" "$WORK/ep"
    # (--scheduler-total-steps pinned: otherwise --max-steps also shortens the schedule.)
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/ga") --grad-accum-steps 2 --keep-last 1 \
      --scheduler-total-steps 40
    kept=$(cd "$WORK/ga" && ls -d [0-9]* | tr '\n' ' ')
    want=$( (echo 2; readlink "$WORK/ga/checkpoint_best") | sort -u | tr '\n' ' ')
    [ "$kept" = "$want" ] || fail "--keep-last 1 kept '$kept', expected the newest and the best: '$want'"
    spe=$(grep -c '"epoch":0,"global_step"[^}]*"train/loss"' "$WORK/ga/metrics.jsonl")
    stop=$((spe + 2))  # inside epoch 1
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/ga2") --grad-accum-steps 2 --max-steps $stop \
      --scheduler-total-steps 40
    expect_text "$WORK/ga2/1/training_state.json" "\"global_step\": $stop"
    expect_text "$WORK/ga2/1/training_state.json" '"local_step": 4'
    # A checkpoint that does not fit the data, or of an unknown format, is refused by name.
    cp -r "$WORK/ga2" "$WORK/ga3"
    expect_code 4 "$BIN/speculators-train" $(train_args "$WORK/ga3") --grad-accum-steps 2 --total-seq-len 256
    expect_text "$WORK/err.txt" 'ga3/1/trainer_state.json: the checkpoint was taken with [0-9]+ packed rows in epoch 1'
    sed -i 's/"format": 2/"format": 7/' "$WORK/ga3/1/trainer_state.json"
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/ga3") --grad-accum-steps 2 --max-steps 1
    expect_text "$WORK/err.txt" 'not resuming from .*ga3/1: .*ga3/1/trainer_state.json: unknown trainer state format 7'
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/ga2") --grad-accum-steps 2 --scheduler-total-steps 40
    stable_metrics "$WORK/ga/metrics.jsonl" >"$WORK/a.jsonl"; stable_metrics "$WORK/ga2/metrics.jsonl" >"$WORK/b.jsonl"
    diff "$WORK/a.jsonl" "$WORK/b.jsonl" | cut -c1-150 >&2; diff -q "$WORK/a.jsonl" "$WORK/b.jsonl" >/dev/null || fail "--max-steps then resume differs with --grad-accum-steps 2"
    cmp "$WORK/ga/2/model.safetensors" "$WORK/ga2/2/model.safetensors" || fail "weights differ after --max-steps + resume"
    # Starting over removes the earlier checkpoints instead of resuming from them.
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/ga2") --epochs 1 --no-resume-from-checkpoint
    [ ! -d "$WORK/ga2/2" ] || fail "--no-resume-from-checkpoint left the earlier run's epoch 2"
    ;;
  interrupt_resume)
    # SIGINT midway: exit 130 with a resumable checkpoint; the resumed run equals an uninterrupted one.
    tiny_inputs
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/base")
    "$BIN/speculators-train" $(train_args "$WORK/run") >"$WORK/out.txt" 2>"$WORK/err.txt" &
    pid=$!
    wait_lines "$WORK/run/metrics.jsonl" 8 "$pid"
    kill -INT "$pid"
    set +e; wait "$pid"; code=$?; set -e
    [ "$code" = 130 ] || { cat "$WORK/err.txt" >&2; fail "SIGINT: expected exit 130, got $code"; }
    expect_text "$WORK/err.txt" 'interrupted by SIGINT at step [0-9]+: wrote a resumable checkpoint'
    ls "$WORK/run" | grep -q -E '^epoch[0-9]+_step[0-9]+$' || fail "no mid-epoch checkpoint after SIGINT"
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/run")
    expect_text "$WORK/err.txt" 'resuming from'
    same_run "$WORK/base" "$WORK/run"
    # Two signals: the second exits at once (130) and what is on disk still resumes.
    "$BIN/speculators-train" $(train_args "$WORK/two") --save-steps 1 >"$WORK/out.txt" 2>"$WORK/err.txt" &
    pid=$!
    wait_lines "$WORK/two/metrics.jsonl" 6 "$pid"
    kill -TERM "$pid"; kill -TERM "$pid" 2>/dev/null || true
    set +e; wait "$pid"; code=$?; set -e
    [ "$code" = 130 ] || { cat "$WORK/err.txt" >&2; fail "two signals: expected exit 130, got $code"; }
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/two") --save-steps 1
    same_run "$WORK/base" "$WORK/two"
    ;;
  nonfinite_guard)
    # An absurd learning rate makes every step after the first non-finite: each is skipped and
    # logged, and --max-bad-steps ends the run with the last good state saved.
    tiny_inputs
    expect_code 1 "$BIN/speculators-train" $(train_args "$WORK/ckpt") --optimizer adamw --lr 1e30 \
      --scheduler-type none --max-bad-steps 3
    expect_text "$WORK/err.txt" 'stopping: 3 consecutive steps had a non-finite loss or gradient'
    expect_text "$WORK/err.txt" 'non-finite (loss|gradient); step skipped'
    [ "$(grep -c '"skipped":"non-finite' "$WORK/ckpt/metrics.jsonl")" = 3 ] || fail "expected 3 skipped-step lines"
    expect_text "$WORK/ckpt/0/trainer_state.json" '"bad_streak": 3'
    expect_text "$WORK/ckpt/0/training_state.json" '"global_step": 4'
    # Bad trainer option values are usage errors that name the option.
    expect_code 2 "$BIN/speculators-train" $(train_args "$WORK/bad") --grad-accum-steps 0
    expect_text "$WORK/err.txt" 'grad-accum-steps must be >= 1 and <= 1048576, got 0'
    expect_code 2 "$BIN/speculators-train" $(train_args "$WORK/bad") --max-bad-steps 0
    expect_text "$WORK/err.txt" 'max-bad-steps must be >= 1, got 0'
    expect_code 2 "$BIN/speculators-train" $(train_args "$WORK/bad") --logger tensorboard,wandb
    expect_text "$WORK/err.txt" '--logger: "wandb" is not available'
    expect_code 2 "$BIN/speculators-train" $(train_args "$WORK/bad") --optimizer sgd
    expect_text "$WORK/err.txt" 'sgd'
    ;;
  report_html)
    # The report renders in headless Chromium and draws every plot; TensorBoard files are written.
    tiny_inputs
    expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
      --data-path "$DATA" --save-path "$WORK/run" --epochs 2 --total-seq-len 256 --num-threads 1
    [ -s "$WORK/run/report.html" ] || fail "no report.html at the end of the run"
    ls "$WORK/run/tensorboard/" | grep -q '^events\.out\.tfevents\.' || fail "no TensorBoard event file"
    rm "$WORK/run/report.html"
    expect_code 0 "$BIN/speculators-train" report "$WORK/run"
    [ -s "$WORK/run/report.html" ] || fail "speculators-train report wrote no report.html"
    grep -q -E '(src|href)="https?:' "$WORK/run/report.html" && fail "the report loads something from the network"
    HOME=$WORK timeout 120 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=5000 \
      --dump-dom "file://$WORK/run/report.html" >"$WORK/dom.html" 2>"$WORK/chromium.txt" ||
      { cat "$WORK/chromium.txt" >&2; fail "chromium could not render the report"; }
    lines=$(grep -c . "$WORK/run/metrics.jsonl")
    steps=$(grep -c '"train/loss"' "$WORK/run/metrics.jsonl")
    expect_text "$WORK/dom.html" "data-rendered=\"$lines\""
    for chart in loss acc tau lr tps; do
      grep -q "<svg[^>]*data-chart=\"$chart\"" "$WORK/dom.html" || fail "chart $chart was not drawn"
    done
    for key in train/loss train/full_acc_0 train/full_acc_2 train/acceptance_length lr lr/muon profile/tokens_per_s; do
      expect_text "$WORK/dom.html" "class=\"series\" data-key=\"$key\" data-points=\"$steps\""
    done
    for key in val/loss_epoch val/full_acc_1_epoch val/acceptance_length_epoch; do
      expect_text "$WORK/dom.html" "class=\"series\" data-key=\"$key\" data-points=\"2\""
      [ "$(grep -o "class=\"point\" data-key=\"$key\"" "$WORK/dom.html" | wc -l)" = 2 ] || fail "$key: expected 2 points"
    done
    expect_code 2 "$BIN/speculators-train" report "$WORK/nowhere"
    expect_text "$WORK/err.txt" 'nowhere: not a directory'
    ;;
  best_checkpoint)
    # checkpoint_best follows the lowest val/loss_epoch; --save-best keeps only that epoch.
    tiny_inputs
    best_by_metrics() {  # the epoch with the lowest val/loss_epoch in metrics.jsonl
      grep '"val/loss_epoch"' "$1" | sed -E 's/^\{"epoch":([0-9]+),.*"val\/loss_epoch":([-0-9.e+]+).*/\2 \1/' |
        sort -g -k1,1 | head -n 1 | cut -d' ' -f2
    }
    for mode in all best; do
      flags=""; [ "$mode" = best ] && flags=--save-best
      expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/$mode") --epochs 4 --lr 3e-3 $flags
      best=$(readlink "$WORK/$mode/checkpoint_best")
      [ "$best" = "$(best_by_metrics "$WORK/$mode/metrics.jsonl")" ] || fail "$mode: checkpoint_best -> $best"
      expect_text "$WORK/$mode/$best/val_metrics.json" '"loss_epoch"'
      # As speculators/train/checkpointer.py: val_metrics.json only in epochs that became the best
      # when they were saved.
      for f in "$WORK/$mode"/[0-9]*/val_metrics.json; do
        e=$(basename "$(dirname "$f")")
        [ "$(best_by_metrics <(grep -E '^\{"epoch":[0-9]+,' "$WORK/$mode/metrics.jsonl" |
          awk -v e="$e" -F'[:,]' '$2 <= e'))" = "$e" ] || fail "$mode: $f but epoch $e was never the best"
      done
      [ -f "$WORK/$mode/run.yaml" ] || fail "$mode: run.yaml was removed"
    done
    [ "$(cd "$WORK/all" && ls -d [0-9]* | tr '\n' ' ')" = "0 1 2 3 " ] || fail "default: not every epoch was saved"
    [ "$(cd "$WORK/best" && ls -d [0-9]*)" = "$(readlink "$WORK/best/checkpoint_best")" ] ||
      fail "--save-best kept more than the best epoch"
    # A reduced draft vocabulary travels with the checkpoint (the save path gets the built mapping;
    # the data directory is left as it was).
    cp -r "$DATA" "$WORK/data"
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/vocab") --data-path "$WORK/data" --epochs 1 \
      --draft-vocab-size 64
    for f in d2t.npy t2d.npy; do
      cmp "$WORK/vocab/$f" "$WORK/vocab/0/$f" || fail "$WORK/vocab/0/$f is not the run's vocabulary mapping"
      [ ! -e "$WORK/data/$f" ] || fail "the run wrote $WORK/data/$f"
    done
    ;;
  files_source_train)
    # A directory in the reference's offline layout, written by hand, trains as is.
    tiny_inputs
    mkdir -p "$WORK/data"; cp "$DATA/data.jsonl" "$WORK/data/"
    # eagle3 on a 4-layer verifier: aux layers [2, 2, 1] + the final layer = 4 slots, H = 32.
    python3 "$SRC/tests/e2e/write_hs_files.py" "$WORK/data" 4 32
    expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
      --data-path "$WORK/data" --save-path "$WORK/ckpt" --epochs 1 --total-seq-len 256
    expect_text "$WORK/err.txt" '\(files source'
    expect_text "$WORK/ckpt/metrics.jsonl" '"train/loss"'
    [ -s "$WORK/ckpt/0/model.safetensors" ] || fail "no checkpoint after training on files"
    # A truncated file: skipped and counted at the epoch end by default, fatal (exit 4) with raise.
    truncate -s 100 "$WORK/data/hidden_states/hs_3.safetensors"
    expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
      --data-path "$WORK/data" --save-path "$WORK/ckpt2" --epochs 2 --total-seq-len 256
    expect_text "$WORK/err.txt" 'skipping bad sample: .*hs_3\.safetensors \(data\.jsonl row 3\)'
    expect_text "$WORK/err.txt" 'train epoch 1: skipped 1 bad samples'
    expect_code 4 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
      --data-path "$WORK/data" --save-path "$WORK/ckpt3" --epochs 1 --total-seq-len 256 --on-bad-sample raise
    expect_text "$WORK/err.txt" 'hs_3\.safetensors \(data\.jsonl row 3\): unreadable'
    # Features for other layers than the draft needs: a clear error before training.
    expect_code 4 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
      --data-path "$WORK/data" --save-path "$WORK/ckpt4" --epochs 1 --target-layer-ids 1 2
    expect_text "$WORK/err.txt" 'needs \[T, 3, 32\]'
    # A verifier family that cannot run here (gemma2) trains from files: only its widths,
    # embedding, final norm and head are read. Online features refuse it by name.
    rm -f "$WORK/data/hidden_states/hs_3.safetensors"
    python3 "$SRC/tests/e2e/write_hs_files.py" "$WORK/data" 4 32
    cp -r "$VERIFIER" "$WORK/gemma_verifier"
    python3 - "$WORK/gemma_verifier/config.json" <<'PY'
import json, sys
path = sys.argv[1]
cfg = json.load(open(path))
cfg.update(model_type="gemma2", architectures=["Gemma2ForCausalLM"], attn_logit_softcapping=50.0,
           final_logit_softcapping=30.0)
json.dump(cfg, open(path, "w"))
PY
    expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$WORK/gemma_verifier" \
      --data-path "$WORK/data" --save-path "$WORK/ckpt5" --epochs 1 --total-seq-len 256 --data-source files
    expect_text "$WORK/err.txt" "model_type 'gemma2' cannot be run here"
    [ -s "$WORK/ckpt5/0/model.safetensors" ] || fail "no checkpoint after training on files with a gemma2 verifier"
    expect_code 2 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$WORK/gemma_verifier" \
      --data-path "$WORK/data" --save-path "$WORK/ckpt6" --epochs 1 --total-seq-len 256 --data-source online
    expect_text "$WORK/err.txt" "model_type 'gemma2' is not supported"
    ;;
  datagen_kill_resume)
    # SIGKILL midway, restart: every file valid, none written twice (same inode and mtime).
    tiny_inputs
    mkdir -p "$WORK/data"
    for _ in $(seq 10); do cat "$DATA/data.jsonl"; done >"$WORK/data/data.jsonl"  # 480 rows
    rows=$(wc -l <"$WORK/data/data.jsonl")
    hs=$WORK/data/hidden_states
    "$BIN/speculators-datagen" hidden-states --verifier "$VERIFIER" --data "$WORK/data" --batch-tokens 24 \
      >"$WORK/gen1.txt" 2>&1 &
    pid=$!
    for _ in $(seq 600); do
      n=$(ls "$hs" 2>/dev/null | grep -c '^hs_[0-9]*\.safetensors$' || true)
      [ "$n" -ge 30 ] && break
      sleep 0.05
    done
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    before=$(ls "$hs" | grep -c '^hs_[0-9]*\.safetensors$' || true)
    echo "killed after $before of $rows files"
    [ "$before" -ge 30 ] || fail "datagen wrote only $before files before the kill"
    [ "$before" -lt "$rows" ] || fail "datagen finished all $rows rows before the kill; make the data larger"
    (cd "$hs" && stat -c '%n %i %.Y' hs_*.safetensors | sort) >"$WORK/before.txt"
    expect_code 0 "$BIN/speculators-datagen" hidden-states --verifier "$VERIFIER" --data "$WORK/data" --batch-tokens 24
    expect_text "$WORK/out.txt" "wrote $((rows - before)), kept $before existing, regenerated 0"
    after=$(ls "$hs" | grep -c '^hs_[0-9]*\.safetensors$')
    [ "$after" = "$rows" ] || fail "$after of $rows files after the restart"
    (cd "$hs" && stat -c '%n %i %.Y' $(cut -d' ' -f1 "$WORK/before.txt") | sort) >"$WORK/after.txt"
    cmp -s "$WORK/before.txt" "$WORK/after.txt" || { diff "$WORK/before.txt" "$WORK/after.txt" >&2; fail "files from before the kill were rewritten"; }
    leftover=$(ls "$hs" | grep -v '^hs_[0-9]*\.safetensors$' || true)
    [ -z "$leftover" ] || fail "temporary or lock files left: $leftover"
    expect_code 0 "$BIN/speculators-datagen" hidden-states --verifier "$VERIFIER" --data "$WORK/data" --validate
    expect_text "$WORK/out.txt" "wrote 0, kept $rows existing, regenerated 0"
    [ -s "$WORK/data/token_freq.npy" ] || fail "no token_freq.npy"
    ;;
  dist_collectives)
    # Every collective against its closed form, for 2 and 3 ranks and each launcher's variables.
    for n in 2 3; do env_ranks $n "$WORK/cc$n" torchrun "$BIN/comm_check" 30; done
    env_ranks 2 "$WORK/slurm" slurm "$BIN/comm_check" 30
    env_ranks 2 "$WORK/ompi" openmpi "$BIN/comm_check" 30
    expect_text "$WORK/cc3.2" 'rank 2 of 3: every collective is correct'
    # A rank that hangs (SIGSTOP): the other's collective fails at the timeout, naming it.
    port=$(free_port)
    RANK=0 WORLD_SIZE=2 MASTER_PORT=$port "$BIN/comm_check" 4 hang >"$WORK/h0" 2>&1 & p0=$!
    RANK=1 WORLD_SIZE=2 MASTER_PORT=$port "$BIN/comm_check" 4 hang >"$WORK/h1" 2>&1 & p1=$!
    set +e; wait $p0; code=$?; set -e
    kill -9 $p1 2>/dev/null || true; wait $p1 2>/dev/null || true
    [ "$code" = 5 ] || { cat "$WORK/h0" >&2; fail "rank 0 exited $code with a stopped peer, expected 5"; }
    expect_text "$WORK/h0" 'all_reduce failed on rank 0 of 2: rank 1 stopped \(no heartbeat'
    # A rank that never comes: the rendezvous gives up after the timeout.
    port=$(free_port)
    expect_code 5 env RANK=0 WORLD_SIZE=2 MASTER_PORT=$port "$BIN/comm_check" 2
    expect_text "$WORK/err.txt" "rank 0 of 2: the rendezvous at 127.0.0.1:$port did not complete within 2 s; rank\(s\) 1 never joined"
    # Launcher variables that cannot be right are usage errors naming the variable.
    expect_code 2 env RANK=2 WORLD_SIZE=2 "$BIN/comm_check" 2
    expect_text "$WORK/err.txt" 'rank 2 is outside a world of 2'
    expect_code 2 env RANK=0 WORLD_SIZE=2 MASTER_PORT=http "$BIN/comm_check" 2
    expect_text "$WORK/err.txt" 'MASTER_PORT="http" is not a non-negative integer'
    ;;
  dist_equivalence)
    # 2 ranks with one row each equal 1 rank with both rows (--grad-accum-steps 2), per --shard
    # mode and launcher; a run on other batches (no accumulation) is the control that differs.
    tiny_inputs
    expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/one") --grad-accum-steps 2 --max-steps 4
    expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/other") --max-steps 4
    if python3 "$SRC/tests/e2e/compare_weights.py" "$WORK/one/0/optimizer_state.safetensors" \
         "$WORK/other/0/optimizer_state.safetensors" 1e-5 >/dev/null 2>&1; then
      fail "the control run on other batches matches within 1e-5: the comparison cannot tell runs apart"
    fi
    env_ranks 2 "$WORK/none" torchrun "$BIN/speculators-train" $(dist_args "$WORK/none") --max-steps 4 --shard none
    expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/optimizer") --max-steps 4 --shard optimizer \
      --nproc-per-node 2
    expect_text "$WORK/err.txt" '2 ranks, gloo, --shard optimizer'
    env_ranks 2 "$WORK/full" slurm "$BIN/speculators-train" $(dist_args "$WORK/full") --max-steps 4 --shard full
    for mode in none optimizer full; do
      close_weights "$WORK/one/0" "$WORK/$mode/0"
      same_losses "$WORK/one/metrics.jsonl" "$WORK/$mode/metrics.jsonl"
      # One writer: rank 0's four steps, the same checkpoint files as one process writes.
      [ "$(grep -c '"train/loss"' "$WORK/$mode/metrics.jsonl")" = 4 ] || fail "$mode: metrics.jsonl is not rank 0's 4 steps"
      expect_text "$WORK/$mode/train_command.txt" '^# World size: 2$'
      [ "$(ls "$WORK/$mode/0" | sort | tr '\n' ' ')" = "$(ls "$WORK/one/0" | sort | tr '\n' ' ')" ] ||
        fail "$mode: the checkpoint holds other files than a single-process one"
    done
    expect_text "$WORK/full.0" 'training eagle3: .*2 ranks, gloo, --shard full'
    # A backend named on the command line is joined even by one process (how one GPU runs the
    # NCCL path): a one-rank Gloo group trains as the process alone does.
    expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/group1") --grad-accum-steps 2 --max-steps 4 \
      --dist-backend gloo
    expect_text "$WORK/err.txt" 'rank 0 of 1 joined \(speculators launch, gloo'
    close_weights "$WORK/one/0" "$WORK/group1/0"
    same_losses "$WORK/one/metrics.jsonl" "$WORK/group1/metrics.jsonl"
    ;;
  dist_resume_world_size)
    # A checkpoint of 2 ranks resumes on 1 and the reverse, mid-epoch, on the same loss curve.
    tiny_inputs
    expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/one") --grad-accum-steps 2 --max-steps 8
    expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/a") --nproc-per-node 2 --shard optimizer --max-steps 4
    expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/a") --grad-accum-steps 2 --max-steps 8
    expect_text "$WORK/err.txt" 'the checkpoint was written by 2 rank\(s\) after 4 packed rows each; the rest of the epoch is packed for 1'
    expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/b") --grad-accum-steps 2 --max-steps 4
    expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/b") --nproc-per-node 2 --shard full --max-steps 8
    expect_text "$WORK/err.txt" 'the checkpoint was written by 1 rank\(s\) after 8 packed rows each; the rest of the epoch is packed for 2'
    for run in a b; do
      close_weights "$WORK/one/0" "$WORK/$run/0"
      same_losses "$WORK/one/metrics.jsonl" "$WORK/$run/metrics.jsonl"
    done
    # Changing the rows per step (world size x accumulation) is allowed, with a warning.
    expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/a") --max-steps 9
    expect_text "$WORK/err.txt" 'resuming with 1 rank\(s\) x --grad-accum-steps 1 = 1 packed rows per step \(the checkpoint used 1 x 2 = 2\)'
    ;;
  dist_dead_rank)
    # Killing a rank ends the job within the collective timeout, naming the rank; the last
    # checkpoint resumes. Then a SIGINT to the launcher stops every rank with a checkpoint.
    tiny_inputs
    "$BIN/speculators-train" $(dist_args "$WORK/run") --epochs 50 --nproc-per-node 2 --save-steps 2 \
      >"$WORK/run.out" 2>&1 &
    launcher=$!
    wait_lines "$WORK/run/metrics.jsonl" 4 "$launcher"
    victim=""
    for p in $(pgrep -P "$launcher"); do
      tr '\0' '\n' <"/proc/$p/environ" | grep -qx 'RANK=1' && victim=$p
    done
    [ -n "$victim" ] || fail "no rank 1 process under the launcher"
    start=$(date +%s); kill -9 "$victim"
    set +e; wait "$launcher"; code=$?; set -e
    took=$(( $(date +%s) - start ))
    [ "$code" = 5 ] || { cat "$WORK/run.out" >&2; fail "the launcher exited $code after rank 1 was killed, expected 5"; }
    [ "$took" -lt 30 ] || fail "the job took $took s to stop, the collective timeout is 30 s"
    expect_text "$WORK/run.out" "rank 1 \(pid $victim\) was killed by signal 9"
    expect_text "$WORK/run.out" '\[rank 0\] .* failed on rank 0 of 2: rank 1 stopped'
    [ -z "$(pgrep -P "$launcher" || true)" ] || fail "a rank outlived the launcher"
    # Non-finite steps on 2 sharded ranks: skipped together, and the guard stops both ranks.
    expect_code 1 "$BIN/speculators-train" $(dist_args "$WORK/nan") --nproc-per-node 2 --shard optimizer \
      --optimizer adamw --lr 1e30 --scheduler-type none --max-bad-steps 3
    expect_text "$WORK/err.txt" '\[rank 0\] .*stopping: 3 consecutive steps had a non-finite loss or gradient'
    expect_text "$WORK/err.txt" '\[rank 1\] .*stopping: 3 consecutive steps had a non-finite loss or gradient'
    [ "$(grep -c '"skipped":"non-finite' "$WORK/nan/metrics.jsonl")" = 3 ] || fail "expected 3 skipped-step lines"
    # The store's host dies: the other rank names rank 0.
    port=$(free_port)
    RANK=0 WORLD_SIZE=2 MASTER_PORT=$port "$BIN/speculators-train" $(dist_args "$WORK/r0") --epochs 50 >"$WORK/r0.0" 2>&1 & p0=$!
    RANK=1 WORLD_SIZE=2 MASTER_PORT=$port "$BIN/speculators-train" $(dist_args "$WORK/r0") --epochs 50 >"$WORK/r0.1" 2>&1 & p1=$!
    wait_lines "$WORK/r0/metrics.jsonl" 2 "$p0"
    kill -9 $p0; wait $p0 2>/dev/null || true
    set +e; wait $p1; code=$?; set -e
    [ "$code" = 5 ] || { cat "$WORK/r0.1" >&2; fail "rank 1 exited $code after rank 0 was killed, expected 5"; }
    expect_text "$WORK/r0.1" 'rank 0, which hosts the rendezvous store at 127.0.0.1:[0-9]+, is unreachable'
    # SIGINT to the launcher: every rank stops after the same step with one checkpoint, exit 130.
    "$BIN/speculators-train" $(dist_args "$WORK/int") --epochs 50 --nproc-per-node 2 >"$WORK/int.out" 2>&1 &
    launcher=$!
    wait_lines "$WORK/int/metrics.jsonl" 3 "$launcher"
    kill -INT "$launcher"
    set +e; wait "$launcher"; code=$?; set -e
    [ "$code" = 130 ] || { cat "$WORK/int.out" >&2; fail "the launcher exited $code after SIGINT, expected 130"; }
    expect_text "$WORK/int.out" '\[rank 0\] .*interrupted by SIGINT at step [0-9]+: wrote a resumable checkpoint'
    step=$(grep -o '"global_step": [0-9]*' "$WORK/int/0/training_state.json" | grep -o '[0-9]*$')
    expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/int") --nproc-per-node 2 --max-steps $((step + 2))
    expect_text "$WORK/err.txt" "resuming from .*/int/0: epoch 0, packed row $step, global step $step"
    expect_text "$WORK/int/0/training_state.json" "\"global_step\": $((step + 2))"
    ;;
  save_path_safety)
    # The save path belongs to the user: only directories with the checkpoint marker are replaced
    # or deleted; a second trainer on the same path stops at once; a damaged or tampered
    # checkpoint is not resumed; non-finite weights are never saved; metrics.jsonl stays JSON.
    tiny_inputs
    mkdir -p "$WORK/u/2024" "$WORK/u/7"; echo x >"$WORK/u/2024/thesis.tex"; echo y >"$WORK/u/7/notes"
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/u") --epochs 1 --no-resume-from-checkpoint
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/u") --epochs 2 --no-resume-from-checkpoint --keep-last 1
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/u") --epochs 2 --no-resume-from-checkpoint --save-best
    [ "$(cat "$WORK/u/2024/thesis.tex")" = x ] && [ "$(cat "$WORK/u/7/notes")" = y ] || fail "a user's directory was changed"
    mkdir -p "$WORK/f"; echo mine >"$WORK/f/0"
    expect_code 2 "$BIN/speculators-train" $(train_args "$WORK/f") --epochs 1
    expect_text "$WORK/err.txt" 'f/0 exists and is not a checkpoint written by speculators-train'
    [ "$(cat "$WORK/f/0")" = mine ] || fail "a user's file named 0 was replaced"
    # --keep-last counts complete checkpoints only: an incomplete copy does not push them out.
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/kl") --epochs 2
    cp -r "$WORK/kl/0" "$WORK/kl/5"; rm "$WORK/kl/5/trainer_state.json"
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/kl") --epochs 4 --keep-last 1
    [ -f "$WORK/kl/3/trainer_state.json" ] || fail "--keep-last 1 deleted the newest complete checkpoint"
    [ -e "$WORK/kl/checkpoint_best/model.safetensors" ] || fail "checkpoint_best dangles"
    # A second trainer on a save path in use fails at once, naming the holder.
    "$BIN/speculators-train" $(train_args "$WORK/lock") --epochs 50 >"$WORK/lock.out" 2>&1 &
    holder=$!
    wait_lines "$WORK/lock/metrics.jsonl" 1 "$holder"
    expect_code 2 "$BIN/speculators-train" $(train_args "$WORK/lock") --epochs 50
    expect_text "$WORK/err.txt" "is in use by another speculators-train \\(pid $holder"
    kill -9 "$holder"; wait "$holder" 2>/dev/null || true
    # A flipped byte in the newest checkpoint: it is skipped for the one before, with a warning.
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/bit") --epochs 2
    printf '\x55' | dd of="$WORK/bit/1/optimizer_state.safetensors" bs=1 seek=300 conv=notrunc 2>/dev/null
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/bit") --epochs 2
    expect_text "$WORK/err.txt" 'not resuming from .*bit/1: .*optimizer_state.safetensors: sha256 [0-9a-f]+ differs'
    expect_text "$WORK/err.txt" 'resuming from .*bit/0: epoch 1'
    # A counter out of range in the only checkpoint: exit 4 naming the file and key.
    expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/neg") --epochs 1
    sed -i 's/"epoch": 0/"epoch": -3/' "$WORK/neg/0/trainer_state.json"
    expect_code 4 "$BIN/speculators-train" $(train_args "$WORK/neg") --epochs 2
    expect_text "$WORK/err.txt" 'neg/0/trainer_state.json: "epoch" is -3, must be >= 0'
    [ ! -e "$WORK/neg/-2" ] || fail "a directory -2 was made"
    # Weights that overflow to inf are never saved as "the last good state".
    expect_code 1 "$BIN/speculators-train" $(train_args "$WORK/inf") --optimizer adamw --lr 1e308 \
      --scheduler-type none --max-bad-steps 2
    expect_text "$WORK/err.txt" 'not saving a checkpoint at step [0-9]+: the weight ".*" is not finite'
    [ ! -e "$WORK/inf/0" ] || fail "a checkpoint was written from non-finite weights"
    python3 -c 'import json,sys
for n, line in enumerate(open(sys.argv[1]), 1):
    json.loads(line, parse_constant=lambda c: sys.exit("line %d holds %s: not JSON" % (n, c)))' "$WORK/inf/metrics.jsonl" \
      || fail "metrics.jsonl is not strict JSON"
    # SIGKILL of the --nproc-per-node launcher takes its ranks with it.
    "$BIN/speculators-train" $(dist_args "$WORK/orphan") --epochs 50 --nproc-per-node 2 >"$WORK/orphan.out" 2>&1 &
    launcher=$!
    wait_lines "$WORK/orphan/metrics.jsonl" 2 "$launcher"
    ranks=$(pgrep -P "$launcher" | tr '\n' ' ')
    [ -n "$ranks" ] || fail "no ranks under the launcher"
    kill -9 "$launcher"; wait "$launcher" 2>/dev/null || true
    for _ in $(seq 100); do alive=""; for r in $ranks; do kill -0 "$r" 2>/dev/null && alive="$alive $r"; done
      [ -z "$alive" ] && break; sleep 0.1; done
    [ -z "$alive" ] || fail "ranks$alive outlived their SIGKILLed launcher"
    ;;
  other_build_plugins)
    # The other LibTorch build of this source (build/ against build-torch2/): its myalgo plugin
    # is refused in one line, as a package and as a plugin file with its manifest, before any of
    # its code is opened. Skipped (exit 77) when that build has not been made.
    other=${SPECULATORS_TEST_OTHER_BUILD:-}
    pkg=$other/packages/speculators-plugin-myalgo-0.1.0.tar.gz
    if [ -z "$other" ] || [ ! -f "$pkg" ] || [ ! -f "$other/plugins/myalgo.manifest.json" ]; then
      echo "SKIPPED: no plugins of the other LibTorch build at '${other:-unset}' (build it first)"
      exit 77
    fi
    other_version=$(sed -n 's/.*"torch_version": "\([0-9]*\.[0-9]*\).*/\1/p' "$other/plugins/myalgo.manifest.json")
    [ -n "$other_version" ] || fail "no torch_version in $other/plugins/myalgo.manifest.json"
    [ "$other_version" != "$TORCH_MAJOR.$TORCH_MINOR" ] || fail "$other is built with this LibTorch ($other_version) too"
    other_re=${other_version//./\\.}
    expect_code 3 "$BIN/speculators-train" plugins install "$pkg" --plugin-dir "$WORK/refused"
    [ "$(wc -l <"$WORK/err.txt")" = 1 ] || fail "the refusal is not one line"
    expect_text "$WORK/err.txt" "does not fit this host: LibTorch $other_re != host $TORCH_MAJOR\\.$TORCH_MINOR\$"
    [ ! -e "$WORK/refused" ] || fail "a refused package created $WORK/refused"
    mkdir -p "$WORK/plugins"
    cp "$other/plugins/myalgo.so" "$other/plugins/myalgo.manifest.json" "$WORK/plugins/"
    expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/plugins" --list-plugins
    expect_text "$WORK/out.txt" "^myalgo .*$WORK/plugins/myalgo\\.so +rejected: manifest .*: LibTorch $other_re != host $TORCH_MAJOR\\.$TORCH_MINOR\$"
    ;;
  chat_prepare_train)
    # Conversations -> prepare -> eagle3 training: a tiny verifier with its own tokenizer.json and
    # chat template (make-verifier --with-tokenizer), a ShareGPT file with one malformed line that
    # is skipped and named, --on-bad-sample raise stopping with exit 4, a finished prepare kept on
    # restart, and an eagle3 draft trained on the rows.
    expect_code 0 "$BIN/speculators-datagen" make-verifier --arch llama --hidden-size 32 --num-layers 4 \
      --vocab-size 128 --out "$WORK/verifier" --seed 1 --with-tokenizer
    for f in tokenizer.json chat_template.jinja tokenizer_config.json; do [ -s "$WORK/verifier/$f" ] || fail "no $f"; done
    conv=$WORK/conversations.jsonl; : >"$conv"
    for i in $(seq 1 40); do
      a=$((i * 7 % 50)); b=$((i * 3 % 20))
      printf '{"conversations": [{"from": "system", "value": "You add numbers."}, {"from": "human", "value": "What is %d plus %d?"}, {"from": "gpt", "value": "%d plus %d is %d."}, {"from": "human", "value": "And twice that?"}, {"from": "gpt", "value": "Twice %d is %d, the answer."}]}\n' \
        $a $b $a $b $((a + b)) $((a + b)) $((2 * (a + b))) >>"$conv"
      [ "$i" = 17 ] && printf '{"conversations": [{"from": "human", "value": "cut off\n' >>"$conv"
    done
    expect_code 0 "$BIN/speculators-datagen" prepare --verifier "$WORK/verifier" --dataset "$conv" \
      --preset sharegpt --out "$WORK/data" --seq-length 256
    expect_text "$WORK/out.txt" '^wrote 80 rows .* from 40 records .* skipped 1 malformed'
    expect_text "$WORK/err.txt" 'conversations\.jsonl:18: malformed row'
    [ -s "$WORK/data/token_freq.npy" ] || fail "no token_freq.npy"
    expect_code 0 "$BIN/speculators-datagen" prepare --verifier "$WORK/verifier" --dataset "$conv" \
      --preset sharegpt --out "$WORK/data" --seq-length 256
    expect_text "$WORK/out.txt" 'is complete for these arguments \(80 rows\); kept'
    expect_code 4 "$BIN/speculators-datagen" prepare --verifier "$WORK/verifier" --dataset "$conv" \
      --preset sharegpt --out "$WORK/raise" --on-bad-sample raise
    expect_text "$WORK/err.txt" 'conversations\.jsonl:18: malformed row'
    [ ! -e "$WORK/raise/data.jsonl" ] || fail "--on-bad-sample raise left a data.jsonl"
    expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$WORK/verifier" \
      --data-path "$WORK/data" --save-path "$WORK/ckpt" --epochs 2 --total-seq-len 256
    expect_text "$WORK/ckpt/metrics.jsonl" '"val/full_acc_0_epoch"'
    [ -s "$WORK/ckpt/1/model.safetensors" ] || fail "no eagle3 checkpoint after training on prepared rows"
    ;;
  chat_regenerate_resume)
    # regenerate replaces the assistant turns with the verifier's own responses; a run killed with
    # SIGKILL (plus a half-written last line, as a kill inside a write leaves) and restarted ends
    # with the same file as an uninterrupted run, every conversation once.
    expect_code 0 "$BIN/speculators-datagen" make-verifier --arch llama --hidden-size 32 --num-layers 2 \
      --vocab-size 128 --out "$WORK/verifier" --seed 1 --with-tokenizer
    conv=$WORK/conversations.jsonl; : >"$conv"
    for i in $(seq 1 48); do
      printf '{"messages": [{"role": "user", "content": "Tell me about %d."}, {"role": "assistant", "content": "old"}, {"role": "user", "content": "More on %d?"}, {"role": "assistant", "content": "old"}]}\n' $i $i >>"$conv"
    done
    args=(regenerate --verifier "$WORK/verifier" --dataset "$conv" --max-new-tokens 96 --batch-size 2 --temperature 0.8 --seed 5)
    expect_code 0 "$BIN/speculators-datagen" "${args[@]}" --out "$WORK/full.jsonl"
    expect_text "$WORK/out.txt" '^regenerated 48 conversations \(96 assistant turns'
    [ "$(wc -l <"$WORK/full.jsonl")" = 48 ] || fail "the uninterrupted run wrote $(wc -l <"$WORK/full.jsonl") lines"
    if grep -q '"content":"old"' "$WORK/full.jsonl"; then fail "a recorded assistant turn survived"; fi
    "$BIN/speculators-datagen" "${args[@]}" --out "$WORK/part.jsonl" >/dev/null 2>&1 &
    pid=$!
    wait_lines "$WORK/part.jsonl" 3 "$pid"
    kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    lines=$(wc -l <"$WORK/part.jsonl")
    [ "$lines" -lt 48 ] || fail "the run finished before it could be killed"
    printf '{"index": %d, "messages": [{"role": "us' "$lines" >>"$WORK/part.jsonl"
    expect_code 0 "$BIN/speculators-datagen" "${args[@]}" --out "$WORK/part.jsonl"
    expect_text "$WORK/out.txt" "kept $lines from an earlier run"
    cmp "$WORK/full.jsonl" "$WORK/part.jsonl" || fail "the restarted run's file differs from the uninterrupted run's"
    ;;
  *) fail "unknown case $CASE" ;;
esac
echo "PASS [$CASE]"
