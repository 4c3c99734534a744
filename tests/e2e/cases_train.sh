# e2e cases: training, resume, checkpoints and exit codes.
# Sourced by e2e.sh, which defines the helpers and variables used here (BIN, SRC, WORK,
# expect_code, expect_text, ...); one function case_<name> a case.

case_seed_command() {
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
}

case_exit_codes() {
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
  # Paths that do not exist are usage errors naming the flag or the file.
  expect_code 2 "$BIN/speculators-train" --speculator-type myalgo --verifier-name-or-path "$VERIFIER" \
    --data-path "$DATA" --save-path "$WORK/fp" --from-pretrained "$WORK/nope" --logger=
  expect_text "$WORK/err.txt" "--from-pretrained $WORK/nope: no config.json \\(expected a checkpoint directory\\)"
  expect_code 2 "$BIN/speculators-datagen" sample --verifier "$WORK/nope" --num-samples 2 --seq-len 8 --out "$WORK/s"
  expect_text "$WORK/err.txt" "verifier $WORK/nope: config.json does not exist"
  expect_code 2 "$BIN/speculators-train" --speculator-type myalgo --verifier-name-or-path "$VERIFIER" \
    --data-path "$WORK/nope" --save-path "$WORK/fp-data" --logger=
  expect_text "$WORK/err.txt" "--data-path $WORK/nope: not a directory \\(expected one holding data.jsonl"
  [ ! -e "$WORK/fp-data" ] || fail "a --data-path that does not exist left $WORK/fp-data behind"
  expect_code 2 "$BIN/speculators-datagen" hidden-states --verifier "$VERIFIER" --data "$WORK/nope"
  expect_text "$WORK/err.txt" "--data $WORK/nope: not a directory\$"
  # The CLI11-parsed executables give the same usage status (2) as speculators-train.
  expect_code 2 "$BIN/speculators-eval" --num-threads x
  expect_text "$WORK/err.txt" 'num-threads'
  expect_code 2 "$BIN/speculators-bench" --ttt-steps 0
  expect_text "$WORK/err.txt" 'ttt-steps: Value 0 not in range 1 to 64'
  expect_code 2 "$BIN/speculators-bench" --iters 0
  expect_text "$WORK/err.txt" 'iters: Value 0 not in range 1 to 1000000'
  expect_code 2 "$BIN/speculators-datagen" sample --num-samples x
  expect_text "$WORK/err.txt" 'num-samples'
  expect_code 0 "$BIN/speculators-train" --help
  expect_text "$WORK/out.txt" '--verifier-name-or-path'
  expect_code 0 "$BIN/speculators-train" --speculator-type myalgo --dump-config --epochs 4
  expect_text "$WORK/out.txt" 'epochs: 4'
}

case_device_precision() {
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
}

case_resume_exact() {
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
}

case_interrupt_resume() {
  # SIGINT midway: exit 130 with a resumable checkpoint; the resumed run equals an uninterrupted one.
  tiny_inputs
  expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/base")
  "$BIN/speculators-train" $(train_args "$WORK/run") >"$WORK/out.txt" 2>"$WORK/err.txt" &
  interrupt_at "$WORK/run/metrics.jsonl" 8 $! "$WORK/err.txt"
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
}

case_nonfinite_guard() {
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
}

case_report_html() {
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
}

case_best_checkpoint() {
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
}

case_save_path_safety() {
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
  # A checkpoint of another draft shape in the save path is a data error naming the tensor.
  expect_code 0 "$BIN/speculators-train" $(train_args "$WORK/shape") --epochs 1 --num-layers 1
  expect_code 4 "$BIN/speculators-train" $(train_args "$WORK/shape") --epochs 2 --num-layers 2
  expect_text "$WORK/err.txt" 'shape/0/optimizer_state.safetensors: tensor "model/layers.1.[a-z_.]*" is missing'
  # Weights that overflow to inf are never saved as "the last good state".
  expect_code 1 "$BIN/speculators-train" $(train_args "$WORK/inf") --optimizer adamw --lr 1e308 \
    --scheduler-type none --max-bad-steps 2
  expect_text "$WORK/err.txt" 'not saving a checkpoint at step [0-9]+: the weight ".*" is not finite'
  [ ! -e "$WORK/inf/0" ] || fail "a checkpoint was written from non-finite weights"
  [ -s "$WORK/inf/report.html" ] || fail "no report.html after the run that stopped on non-finite weights"
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
}

case_eagle3_dry_run() {
  tiny_inputs
  expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
    --data-path "$DATA" --save-path "$WORK/dry" --dry-run
  expect_text "$WORK/dry/config.json" '"speculators_model_type": "eagle3"'
  [ -s "$WORK/dry/model.safetensors" ] || fail "dry run wrote no weights"
}

case_eagle3_eval() {
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
  expect_code 2 "$BIN/speculators-eval" --verifier "$VERIFIER" --data "$WORK/nope" --draft "$WORK/ckpt/15"
  expect_text "$WORK/err.txt" "--data $WORK/nope: not a directory\$"
}

case_eagle3_train() {
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
}

case_save_and_log_freq() {
  # --checkpoint-freq 2 over 5 epochs saves epoch 0, every second epoch and the last (0, 1, 3, 4);
  # --log-freq 3 writes a training line at every third global step (0, 3, 6, ...).
  tiny_inputs
  expect_code 0 "$BIN/speculators-train" --speculator-type myalgo --verifier-name-or-path "$VERIFIER" \
    --data-path "$DATA" --save-path "$WORK/run" --epochs 5 --total-seq-len 128 --num-threads 1 --logger= \
    --checkpoint-freq 2 --log-freq 3
  [ "$(ls -d "$WORK/run"/[0-9]* | xargs -n1 basename | sort -n | tr '\n' ' ')" = "0 1 3 4 " ] ||
    fail "--checkpoint-freq 2 saved epochs $(ls -d "$WORK/run"/[0-9]* | xargs -n1 basename | sort -n | tr '\n' ' ')"
  python3 - "$WORK/run/metrics.jsonl" <<'PY' || fail "--log-freq 3 did not log every third step"
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1])]
steps = [j["global_step"] for j in lines if "train/loss" in j]
total = max(j["global_step"] for j in lines if "val/loss_epoch" in j)  # after the last step: the step count
assert total > 6 and steps == list(range(0, total, 3)), (total, steps)
PY
}

case_reference_flags_refused() {
  # Flags of the reference's trainer that this project does not implement (docs/compatibility.md,
  # "Reference flags") are refused by name with exit 2, never silently accepted.
  tiny_inputs
  while read -r flag value; do
    expect_code 2 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path "$VERIFIER" \
      --data-path "$DATA" --save-path "$WORK/refused" "$flag" ${value:+"$value"}
    expect_text "$WORK/err.txt" "unknown flag $flag"
    [ ! -e "$WORK/refused" ] || fail "$flag: the refused job wrote $WORK/refused"
  done <<'FLAGS'
--deterministic-cuda
--trust-remote-code
--draft-config draft.json
--draft-mrope-full-head-hack
--draft-attn-impl sdpa
--hidden-states-path hs
--mooncake-master localhost:50051
--vllm-endpoint http://localhost:8000
--on-generate delete
--request-timeout 30
--max-retries 3
--generation-validation-retries 2
--max-consecutive-generation-failures 5
--loss-implementation eager
--gradient-checkpointing
--block-size 8
--max-anchors 4
FLAGS
}
