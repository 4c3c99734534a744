# e2e cases: several ranks as separate processes over Gloo.
# Sourced by e2e.sh, which defines the helpers and variables used here (BIN, SRC, WORK,
# expect_code, expect_text, ...); one function case_<name> a case.

case_dist_collectives() {
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
}

case_dist_equivalence() {
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
}

case_dist_resume_world_size() {
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
}

case_dist_dead_rank() {
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
  interrupt_at "$WORK/int/metrics.jsonl" 3 $! "$WORK/int.out"
  expect_text "$WORK/int.out" '\[rank 0\] .*interrupted by SIGINT at step [0-9]+: wrote a resumable checkpoint'
  step=$(grep -o '"global_step": [0-9]*' "$WORK/int/0/training_state.json" | grep -o '[0-9]*$')
  expect_code 0 "$BIN/speculators-train" $(dist_args "$WORK/int") --nproc-per-node 2 --max-steps $((step + 2))
  expect_text "$WORK/err.txt" "resuming from .*/int/0: epoch 0, packed row $step, global step $step"
  expect_text "$WORK/int/0/training_state.json" "\"global_step\": $((step + 2))"
}
