#!/usr/bin/env bash
# End-to-end cases of the contract between a job, the host and a plugin, through the real
# executables of a build tree:
#   job_contract.sh BUILD_DIR SOURCE_DIR CASE
#   rejected_job_writes_nothing  a job refused after --draft-vocab-size resolved its vocabulary
#                                leaves no d2t.npy/t2d.npy behind (not in the data directory, not in
#                                the save path), so a later plain run trains the full vocabulary; an
#                                accepted job writes the mapping it built into its save path.
#   from_pretrained_flags        under --from-pretrained a flag of the draft's architecture is an
#                                error naming it; training flags still apply.
#   plugin_errors                what a plugin throws in each phase (build, validate... see
#                                tests/plugins/fixture_draft.cpp) ends the run with exit 3 and one
#                                line naming the algorithm and the phase; never a LibTorch backtrace
#                                or an abort.
#   varying_metric_keys          metric keys that change between batches are refused by one
#                                process exactly as by two ranks, with the rule in the message.
#   no_target_layers             a draft with an empty target_layer_ids() evaluates (its features
#                                are [n, 0]) instead of aborting.
#   vocab_sources                --draft-vocab-size finds its token frequencies where the reference
#                                does (token_freq.pt, written by the reference's own code; the
#                                mapping equals the reference's), then token_freq.npy; with neither,
#                                the full vocabulary and a warning; the reference's cached
#                                d2t-N.npy/t2d-N.npy are read. Needs SPECULATORS_TEST_PYTHON.
set -euo pipefail
BUILD=$(cd "$1" && pwd); CASE=$3
BIN=$BUILD/bin
WORK=$(mktemp -d "${TMPDIR:-/tmp}/speculators-contract-$CASE.XXXXXX")
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"' EXIT

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# A tiny verifier (vocabulary 128) and on-policy data of our own: the case changes the data directory.
inputs() {
  "$BIN/speculators-datagen" make-verifier --arch llama --hidden-size 32 --num-layers 4 \
    --vocab-size 128 --out "$WORK/verifier" --seed 1 >/dev/null
  "$BIN/speculators-datagen" sample --verifier "$WORK/verifier" --num-samples 16 --seq-len 24 \
    --prompt-len 8 --out "$WORK/data" --seed 1 >/dev/null
}
myalgo() {  # myalgo SAVE_DIR args...: a one-epoch myalgo job on the inputs
  local save=$1; shift
  "$BIN/speculators-train" --speculator-type myalgo --verifier-name-or-path "$WORK/verifier" \
    --data-path "$WORK/data" --save-path "$save" --epochs 1 --total-seq-len 128 --num-threads 1 --logger= "$@"
}

DRAFTS=$BUILD/tests/plugin_drafts
draft() {  # draft NAME SAVE_DIR args...: a one-epoch job of a fixture draft
  local name=$1 save=$2; shift 2
  "$BIN/speculators-train" --plugin-dir "$DRAFTS" --speculator-type "$name" --verifier-name-or-path "$WORK/verifier" \
    --data-path "$WORK/data" --save-path "$save" --epochs 1 --total-seq-len 128 --num-threads 1 --logger= "$@"
}
evaluate() {  # evaluate DRAFT_DIR: speculative decoding with a checkpoint of a fixture draft
  "$BIN/speculators-eval" --plugin-dir "$DRAFTS" --verifier "$WORK/verifier" --draft "$1" --data "$WORK/data" \
    --num-prompts 2 --max-new-tokens 6 --speculative-tokens 2 --num-threads 1
}
# expect_plugin_error ALGORITHM PHASE MESSAGE: the last command's stderr reports the failure as one
# line naming both, and holds no LibTorch backtrace.
expect_plugin_error() {
  expect_text "$WORK/err.txt" "algorithm $1 \\($2\\): .*$3"
  [ "$(grep -c -E "algorithm $1 \\($2\\)" "$WORK/err.txt")" = 1 ] || fail "$1: not exactly one error line"
  if grep -q -E 'Exception raised from|frame #[0-9]|terminate called' "$WORK/err.txt"; then
    cat "$WORK/err.txt" >&2; fail "$1: a raw exception or backtrace reached the user"
  fi
}

case "$CASE" in
  vocab_sources)
    PY=${SPECULATORS_TEST_PYTHON:?set by ctest}
    inputs
    # Frequencies that favour the high token ids, saved by the reference's own function; the
    # reference's mapping for 64 of 128 tokens goes next to it, for comparison.
    "$PY" - "$WORK/data" "$WORK/ref" <<'PY' || fail "the reference could not write token_freq.pt"
import os, sys
import numpy as np
import torch
from speculators.train.vocab_mapping import build_vocab_mappings_from_distribution, save_token_frequency_distribution
data, ref = sys.argv[1:3]
rows = [{"input_ids": torch.arange(t, 128), "loss_mask": torch.ones(128 - t, dtype=torch.long)} for t in range(0, 128, 3)]
save_token_frequency_distribution(rows, os.path.join(data, "token_freq.pt"))
freq = torch.load(os.path.join(data, "token_freq.pt"), weights_only=True)
d2t, t2d = build_vocab_mappings_from_distribution(freq, draft_vocab_size=64, target_vocab_size=128)
os.makedirs(ref)
np.save(os.path.join(ref, "d2t.npy"), d2t.numpy())
np.save(os.path.join(ref, "t2d.npy"), t2d.numpy())
PY
    same_mapping() {  # same_mapping DIR: DIR/{d2t,t2d}.npy equal the reference's
      "$PY" - "$1" "$WORK/ref" <<'PY' || fail "the mapping in $1 differs from the reference's"
import sys
import numpy as np
got, ref = sys.argv[1:3]
for name in ("d2t.npy", "t2d.npy"):
    a, b = np.load(f"{got}/{name}"), np.load(f"{ref}/{name}")
    assert a.shape == b.shape and (a.astype(np.int64) == b.astype(np.int64)).all(), (name, a, b)
PY
    }
    expect_code 0 myalgo "$WORK/pt" --dry-run --draft-vocab-size 64
    expect_text "$WORK/err.txt" 'built a 64-token draft vocabulary from .*/data/token_freq\.pt'
    same_mapping "$WORK/pt"
    # Without it, the token_freq.npy that `sample` wrote (the data's own frequencies: another mapping).
    rm "$WORK/data/token_freq.pt"
    expect_code 0 myalgo "$WORK/npy" --dry-run --draft-vocab-size 64
    expect_text "$WORK/err.txt" 'built a 64-token draft vocabulary from .*/data/token_freq\.npy'
    if cmp -s "$WORK/npy/d2t.npy" "$WORK/pt/d2t.npy"; then fail "token_freq.npy gave the token_freq.pt mapping"; fi
    # With neither: the reference's rule, the full vocabulary and a warning.
    rm "$WORK/data/token_freq.npy"
    expect_code 0 myalgo "$WORK/none" --dry-run --draft-vocab-size 64
    expect_text "$WORK/err.txt" "no token frequencies to build one from .*training with the verifier's full vocabulary of 128 tokens"
    expect_text "$WORK/none/config.json" '"draft_vocab_size": 128'
    # The reference's cached mapping files in the data directory are read.
    cp "$WORK/ref/d2t.npy" "$WORK/data/d2t-64.npy"; cp "$WORK/ref/t2d.npy" "$WORK/data/t2d-64.npy"
    expect_code 0 myalgo "$WORK/cached" --dry-run --draft-vocab-size 64
    expect_text "$WORK/err.txt" 'vocabulary mapping from .*/data/d2t-64\.npy'
    expect_text "$WORK/cached/config.json" '"draft_vocab_size": 64'
    ;;
  rejected_job_writes_nothing)
    inputs
    before=$(ls "$WORK/data" | tr '\n' ' ')
    # Refused (layer 99 of a 4-layer verifier) after the vocabulary was resolved.
    expect_code 2 myalgo "$WORK/rejected" --draft-vocab-size 64 --target-layer-ids 99
    expect_text "$WORK/err.txt" '99'
    [ "$(ls "$WORK/data" | tr '\n' ' ')" = "$before" ] || fail "the rejected job changed $WORK/data: $(ls "$WORK/data")"
    for f in d2t.npy t2d.npy; do
      [ ! -e "$WORK/rejected/$f" ] || fail "the rejected job wrote $WORK/rejected/$f"
    done
    # A plain run afterwards trains the full vocabulary.
    expect_code 0 myalgo "$WORK/plain" --dry-run
    expect_text "$WORK/plain/config.json" '"draft_vocab_size": 128'
    # An accepted job writes the mapping it built into its save path, and only there.
    expect_code 0 myalgo "$WORK/reduced" --dry-run --draft-vocab-size 64
    expect_text "$WORK/reduced/config.json" '"draft_vocab_size": 64'
    for f in d2t.npy t2d.npy; do
      [ -s "$WORK/reduced/$f" ] || fail "the accepted job did not write $WORK/reduced/$f"
    done
    [ "$(ls "$WORK/data" | tr '\n' ' ')" = "$before" ] || fail "the accepted job changed $WORK/data"
    ;;
  from_pretrained_flags)
    inputs
    expect_code 0 myalgo "$WORK/first" --dry-run --block-size 4
    # The architecture comes from the checkpoint: a flag that would change it is refused by name.
    expect_code 2 myalgo "$WORK/second" --from-pretrained "$WORK/first" --block-size 6
    expect_text "$WORK/err.txt" '--block-size cannot apply with --from-pretrained .*first: .*block_size.*config\.json'
    [ ! -e "$WORK/second/config.json" ] || fail "the refused job wrote a checkpoint"
    # Training options still apply.
    expect_code 0 myalgo "$WORK/third" --from-pretrained "$WORK/first" --dry-run --lr 1e-3
    expect_text "$WORK/third/config.json" '"block_size": 4'
    ;;
  plugin_errors)
    inputs
    expect_code 3 draft draft_throw_build "$WORK/b"
    expect_plugin_error draft_throw_build build 'fixture throws in its factory'
    expect_code 3 draft draft_throw_forward "$WORK/f"
    expect_plugin_error draft_throw_forward forward 'fixture throws in forward'
    expect_code 3 draft draft_throw_forward_torch "$WORK/ft"
    expect_plugin_error draft_throw_forward_torch forward 'LibTorch: .*non-empty list'
    expect_code 3 draft draft_detached_loss "$WORK/l"
    expect_plugin_error draft_detached_loss loss 'LibTorch: .*does not require grad'
    expect_code 3 draft draft_throw_save "$WORK/s" --dry-run
    expect_plugin_error draft_throw_save save 'fixture throws in config_json'
    # Evaluation: a checkpoint of draft_ok, relabelled for the fixtures that fail when loaded or proposing.
    expect_code 0 draft draft_ok "$WORK/ok" --dry-run
    expect_code 0 evaluate "$WORK/ok"
    for name in draft_throw_load draft_throw_proposer; do
      cp -r "$WORK/ok" "$WORK/$name"
      sed -i "s/\"draft_ok\"/\"$name\"/" "$WORK/$name/config.json"
    done
    expect_code 3 evaluate "$WORK/draft_throw_load"
    expect_plugin_error draft_throw_load load 'fixture throws in from_config'
    expect_code 3 evaluate "$WORK/draft_throw_proposer"
    expect_plugin_error draft_throw_proposer proposer 'fixture throws in propose'
    ;;
  varying_metric_keys)
    inputs
    # 16 samples of 24 tokens in rows of 128: several batches, so the keys change at the second.
    expect_code 3 draft draft_varying_metrics "$WORK/one"
    expect_plugin_error draft_varying_metrics metrics 'every batch must return the same metric keys'
    expect_code 3 draft draft_varying_metrics "$WORK/two" --nproc-per-node 2 --dist-timeout 30
    expect_text "$WORK/err.txt" 'algorithm draft_varying_metrics \(metrics\): .*every batch must return the same metric keys'
    ;;
  no_target_layers)
    inputs
    expect_code 0 draft draft_no_layers "$WORK/ckpt" --dry-run
    expect_code 0 evaluate "$WORK/ckpt"
    expect_text "$WORK/out.txt" 'tau'
    ;;
  *)
    fail "unknown case $CASE"
    ;;
esac
echo "PASS [$CASE]"
