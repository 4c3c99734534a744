#!/usr/bin/env bash
# End-to-end cases through the real executables and plugins of a build tree.
#   e2e.sh BUILD_DIR SOURCE_DIR CASE
# Each case builds what it needs in a fresh temporary directory and checks exit codes, files
# and printed lines. Shared tiny inputs (verifier + data) are made once per build tree.
set -euo pipefail
BUILD=$(cd "$1" && pwd); SRC=$(cd "$2" && pwd); CASE=$3
BIN=$BUILD/bin
WORK=$(mktemp -d "${TMPDIR:-/tmp}/speculators-e2e-$CASE.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export SPECULATORS_LOG_LEVEL=${SPECULATORS_LOG_LEVEL:-info}

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
    # Plugins built for another ABI major, LibTorch minor or C++11 ABI are rejected with a
    # one-line reason, and the host still trains with the good plugins.
    tiny_inputs
    fixtures=$BUILD/tests/plugin_fixtures
    mkdir -p "$WORK/plugins"
    for f in bad_abi_major bad_torch bad_cxx11 garbage; do cp "$fixtures/$f.so" "$WORK/plugins/"; done
    expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/plugins" --list-plugins
    expect_text "$WORK/out.txt" 'rejected: .*ABI major'
    expect_text "$WORK/out.txt" 'rejected: .*LibTorch 1\.[0-9]+ != host 1\.13'
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
    expect_text "$WORK/out.txt" '^  myalgo 0\.1\.0  plugin ABI [0-9]+\.[0-9]+  LibTorch 1\.13\.[0-9]+  C\+\+11 ABI [01]  CPU  sha256 [0-9a-f]{12}  ok$'
    expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/plugins" --list-plugins
    expect_text "$WORK/out.txt" "^myalgo +0\.1\.0 +$WORK/plugins/myalgo\.so +ok"
    expect_code 3 "$BIN/speculators-train" plugins install "$BUILD/tests/plugin_packages/speculators-plugin-bad_torch-0.0.1.tar.gz" \
      --plugin-dir "$WORK/other"
    [ "$(wc -l <"$WORK/err.txt")" = 1 ] || fail "the refusal is not one line"
    expect_text "$WORK/err.txt" 'does not fit this host: LibTorch 1\.14 != host 1\.13$'
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
      --data-path "$DATA" --save-path "$WORK/ckpt" --epochs 8 --total-seq-len 256 --lr 1e-2
    expect_code 0 "$BIN/speculators-eval" --verifier "$VERIFIER" --data "$DATA" --draft "$WORK/ckpt/7" \
      --num-prompts 6 --max-new-tokens 16 --json
    expect_text "$WORK/out.txt" '"exact_prompts":6'
    tau=$(sed -E 's/.*"acceptance_length":([0-9.e+-]+).*/\1/' "$WORK/out.txt")
    awk -v t="$tau" 'BEGIN { exit !(t > 1.5 && t <= 4) }' || fail "acceptance length $tau not in (1.5, 4]"
    expect_text "$WORK/ckpt/7/eval.json" '"acceptance_length"'
    expect_code 0 "$BIN/speculators-eval" --verifier "$VERIFIER" --data "$DATA" --draft "$WORK/ckpt/7" \
      --num-prompts 2 --max-new-tokens 8
    expect_text "$WORK/out.txt" 'acceptance length tau'
    expect_text "$WORK/out.txt" 'training estimate'
    expect_text "$WORK/out.txt" '2/2 outputs identical'
    expect_code 2 "$BIN/speculators-eval" --verifier "$VERIFIER" --data "$DATA" --draft "$WORK/nothing"
    expect_text "$WORK/err.txt" 'no config.json'
    ;;
  eagle3_train)
    tiny_inputs
    expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
      --data-path "$DATA" --save-path "$WORK/ckpt" --epochs 2 --total-seq-len 256
    expect_text "$WORK/ckpt/metrics.jsonl" '"val/full_acc_0_epoch"'
    expect_text "$WORK/ckpt/metrics.jsonl" '"val/acceptance_length_epoch"'
    expect_text "$WORK/err.txt" 'estimated acceptance length'
    ;;
  files_source_train)
    # A directory in the reference's offline layout, written by hand (facts §3.3), trains as is.
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
  *) fail "unknown case $CASE" ;;
esac
echo "PASS [$CASE]"
