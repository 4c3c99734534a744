# e2e cases: data sources and the datagen commands.
# Sourced by e2e.sh, which defines the helpers and variables used here (BIN, SRC, WORK,
# expect_code, expect_text, ...); one function case_<name> a case.

case_files_source_train() {
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
}

case_datagen_kill_resume() {
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
}

case_chat_prepare_train() {
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
}

case_chat_regenerate_resume() {
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
}
