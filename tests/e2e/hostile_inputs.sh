#!/usr/bin/env bash
# End-to-end cases of inputs a careless or hostile user gives the real executables of a build
# tree; each must end with the documented exit code and one line naming the file, key or value:
#   hostile_inputs.sh BUILD_DIR SOURCE_DIR CASE
#   tar_bomb           `plugins install` of a package whose header claims 2 GiB: exit 3 from the
#                      listing, no temporary directory left, nothing installed.
#   linked_plugin      a plugin .so linked from a directory others can write to is listed
#                      rejected by --list-plugins; the good plugins stay ok.
#   verifier_files     a verifier without lm_head.weight (and no tie_word_embeddings), or whose
#                      lm_head.weight says I32: exit 4; a config.json nested 50,000 levels deep,
#                      one claiming 1,000,000 layers: exit 2; each before any training step,
#                      nothing saved; widths whose draft cannot be allocated: exit 1 naming the
#                      config and its widths.
#   data_sizes         zero training rows: exit 4 and no checkpoint; a 200,000-token row trains in
#                      bounded time (clipped before the verifier); sample --seq-len beyond
#                      max_position_embeddings: exit 2.
#   draft_config       a draft config.json (--from-pretrained, speculators-eval --draft) nested
#                      50,000 levels deep, with 1e400, or a directory: exit 2 naming the file;
#                      draft weights without a tensor of the model: exit 4 naming it.
#   plugin_manifests   a plugin manifest nested 50,000 levels deep or with 1e400: --list-plugins
#                      lists that plugin rejected (exit 0), training with it exits 3, and `plugins
#                      install` of a package holding it exits 3 naming the package, leaving
#                      nothing in TMPDIR.
#   resume_files       the only checkpoint with a trainer_state.json nested 50,000 levels deep or
#                      with 1e400, with NaN weights or without a Muon momentum buffer (checksums
#                      rewritten to match): exit 4 naming the file; the first two in a line of
#                      metrics.jsonl: `report` exits 4 naming the file and line.
#   output_paths       a --save-path or --log-dir under a file, a --run-name that leaves --log-dir,
#                      a --d2t-path or --token-freq-path that does not exist: exit 2 naming it; datagen passes over a temporary file it did not write.
#   option_ranges      option values outside their declared ranges, NaN and infinities: exit 2
#                      with one line naming the option, its range and the value; nothing saved.
set -euo pipefail
BUILD=$(cd "$1" && pwd); CASE=$3
BIN=$BUILD/bin
WORK=$(mktemp -d "${TMPDIR:-/tmp}/speculators-hostile-$CASE.XXXXXX")
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"' EXIT
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$WORK"

expect_code() {  # expect_code CODE command...: also one error line, no backtrace (lib.sh's, bounded)
  local want=$1; shift
  local runner=(timeout -k 5 300)
  [ "$(type -t "$1")" != function ] || runner=()  # train wraps its own timeout
  set +e; "${runner[@]}" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt"; local got=$?; set -e
  if [ "$got" != "$want" ]; then
    cat "$WORK/out.txt" "$WORK/err.txt" >&2
    fail "expected exit $want, got $got from: $*"
  fi
  if grep -q -E 'Exception raised from|frame #[0-9]|terminate called' "$WORK/err.txt"; then
    cat "$WORK/err.txt" >&2; fail "a raw exception or backtrace reached the user"
  fi
}
inputs() {
  "$BIN/speculators-datagen" make-verifier --arch llama --hidden-size 32 --num-layers 2 --vocab-size 128 \
    --out V --seed 0 >/dev/null
  "$BIN/speculators-datagen" sample --verifier V --num-samples 16 --seq-len 24 --prompt-len 8 --out D \
    --seed 0 >/dev/null
}
train() {  # train VERIFIER DATA SAVE args...
  local v=$1 d=$2 s=$3; shift 3
  timeout -k 5 300 "$BIN/speculators-train" --speculator-type myalgo --verifier-name-or-path "$v" --data-path "$d" \
    --save-path "$s" --epochs 1 --total-seq-len 64 --num-threads 1 --logger= "$@"
}
PY=python3
E='^\[[0-9:]+ E\] '  # how an error line starts
deep_json() { $PY -c 'import sys; sys.stdout.write("{\"a\":" + "[" * 50000 + "]" * 50000 + "}")'; }
# rewrite_tensors DIR EXPR: applies EXPR to the tensors of DIR/optimizer_state.safetensors (a dict
# name -> [header entry, bytes]) and records the file's new sha256 in DIR/trainer_state.json.
rewrite_tensors() {
  $PY - "$1" "$2" <<'PY'
import hashlib, json, struct, sys
path = sys.argv[1] + "/optimizer_state.safetensors"
raw = open(path, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); meta = header.pop("__metadata__", None)
tensors = {k: [v, bytearray(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])] for k, v in header.items()}
exec(sys.argv[2])
out, data = {}, b""
for k, (v, b) in tensors.items():
    v = dict(v); v["data_offsets"] = [len(data), len(data) + len(b)]; out[k] = v; data += bytes(b)
if meta is not None: out["__metadata__"] = meta
text = json.dumps(out).encode(); text += b" " * (-len(text) % 8)
blob = struct.pack("<Q", len(text)) + text + data
open(path, "wb").write(blob)
state_path = sys.argv[1] + "/trainer_state.json"
state = json.load(open(state_path))
state["checksums"]["optimizer_state.safetensors"] = hashlib.sha256(blob).hexdigest()
json.dump(state, open(state_path, "w"), indent=2)
PY
}

case "$CASE" in
  tar_bomb)
    # A ustar header claiming 2 GiB (written by Python's tarfile from a stream of zeros that is
    # cut short: the listing must stop at the header, never read the content).
    $PY - <<'PY'
import gzip, io, tarfile
info = tarfile.TarInfo("bomb.bin"); info.size = 2 << 30
header = info.tobuf(format=tarfile.GNU_FORMAT)
with gzip.open("bomb.tar.gz", "wb", compresslevel=1) as out:
    out.write(header + bytes(1 << 20))
PY
    mkdir tmp
    expect_code 3 env TMPDIR="$WORK/tmp" "$BIN/speculators-train" plugins install bomb.tar.gz --plugin-dir "$WORK/P"
    expect_text "$WORK/err.txt" "plugin package bomb.tar.gz: entry 'bomb.bin' would bring the content past 1024 MiB \\(2147483648 bytes\\); refusing to unpack it"
    [ ! -e "$WORK/P" ] || fail "the refused package created $WORK/P"
    [ -z "$(ls -A "$WORK/tmp")" ] || fail "left behind in TMPDIR: $(ls -A "$WORK/tmp")"
    ;;
  linked_plugin)
    mkdir -m 777 open; mkdir -m 755 P
    cp "$BUILD/plugins/myalgo.so" open/; chmod 644 open/myalgo.so
    ln -s "$WORK/open/myalgo.so" P/myalgo.so
    expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/P" --list-plugins
    expect_text "$WORK/out.txt" "myalgo .*$WORK/P/myalgo.so +rejected: refusing to open $WORK/P/myalgo.so \\(a link to $WORK/open/myalgo.so\\): $WORK/open is writable by"
    expect_text "$WORK/out.txt" "eagle3 .* ok"
    ;;
  verifier_files)
    inputs
    cp -r V VN
    $PY - VN/model.safetensors <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); del header["lm_head.weight"]
text = json.dumps(header).encode(); text += b" " * (-len(text) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
    expect_code 4 train VN D S1
    expect_text "$WORK/err.txt" "VN/model.safetensors: tensor 'lm_head.weight' is missing and VN/config.json does not set \"tie_word_embeddings\": true"
    [ ! -e S1/0 ] || fail "a checkpoint was saved"
    # F32 data whose header says I32 (the same size): refused as not floating point.
    cp -r V VI
    $PY - VI/model.safetensors <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); assert header["lm_head.weight"]["dtype"] == "F32"
header["lm_head.weight"]["dtype"] = "I32"
text = json.dumps(header).encode(); text += b" " * (-len(text) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
    expect_code 4 train VI D S5
    expect_text "$WORK/err.txt" "VI/model.safetensors: tensor 'lm_head.weight' has dtype Int; verifier weights must be floating point"
    [ ! -e S5/0 ] || fail "a checkpoint was saved"
    cp -r V VD
    $PY -c 'import sys; sys.stdout.write("{\"a\":" + "[" * 50000 + "]" * 50000 + "}")' > VD/config.json
    expect_code 2 train VD D S2
    expect_text "$WORK/err.txt" "VD/config.json: invalid JSON: nested deeper than"
    cp -r V VL
    sed -i 's/"num_hidden_layers": *[0-9]*/"num_hidden_layers": 1000000/' VL/config.json
    expect_code 2 train VL D S3
    expect_text "$WORK/err.txt" "VL/config.json: num_hidden_layers 1000000 is more than any decoder this trainer builds \\(at most 10000\\)"
    # Widths whose verifier fits in memory (head_dim 8) but whose draft cannot (fc alone is 4 TiB):
    # the allocation failure names what sized it. (Needs the kernel to refuse a 4 TiB allocation,
    # as its default overcommit heuristic does.)
    cp -r V VH
    $PY - VH/config.json <<'PY'
import json, sys
config = json.load(open(sys.argv[1])); config.update(hidden_size=1 << 20, head_dim=8)
json.dump(config, open(sys.argv[1], "w"))
PY
    if [ "$(cat /proc/sys/vm/overcommit_memory 2>/dev/null)" = 0 ]; then
      expect_code 1 train VH D S4
      expect_text "$WORK/err.txt" "algorithm myalgo \\(build\\): out of memory: LibTorch: .*; the draft takes its widths from VH/config.json: hidden_size 1048576, intermediate_size 96, vocab_size 128"
      [ ! -e S4/0 ] || fail "a checkpoint was saved"
    else
      echo "skipped the draft-allocation case: vm.overcommit_memory is not 0"
    fi
    ;;
  data_sizes)
    inputs
    mkdir DZ; head -1 D/data.jsonl > DZ/data.jsonl
    expect_code 4 train V DZ SZ
    expect_text "$WORK/err.txt" "DZ/data.jsonl: nothing to train on: 1 row\\(s\\), 0 in the training split"
    [ -z "$(ls SZ 2>/dev/null | grep -E '^[0-9]+$')" ] || fail "an untrained checkpoint was saved: $(ls SZ)"
    mkdir DL
    $PY -c 'import json; print(json.dumps({"input_ids": [i % 128 for i in range(200000)]}))' > DL/data.jsonl
    cat D/data.jsonl >> DL/data.jsonl
    start=$SECONDS
    expect_code 0 train V DL SL
    [ $((SECONDS - start)) -lt 120 ] || fail "a 200,000-token row took $((SECONDS - start)) s"
    expect_text "$WORK/err.txt" "1 data row\\(s\\) are longer than a packed row \\(the first: data.jsonl line 1, 200000 tokens\\); the verifier runs on their first 65 tokens only"
    expect_code 2 "$BIN/speculators-datagen" sample --verifier V --num-samples 1 --seq-len 100000000 --out DS
    expect_text "$WORK/err.txt" "--seq-len 100000000 is beyond the verifier's context: max_position_embeddings is 4096"
    ;;
  draft_config)
    inputs
    expect_code 0 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path V --data-path D \
      --save-path K --dry-run --logger= --target-layer-ids 0 1
    cp -r K KD; deep_json > KD/config.json
    cp -r K KE; sed -i 's/"hidden_size": *[0-9]*/"hidden_size": 1e400/' KE/config.json
    grep -q 1e400 KE/config.json || fail "no hidden_size in K/config.json"
    cp -r K KF; rm KF/config.json; mkdir KF/config.json
    for k in KD KE KF; do
      case $k in
        KD) message="$WORK/KD/config.json: invalid JSON: nested deeper than 256 levels" ;;
        KE) message="$WORK/KE/config.json: invalid JSON: .*1e400" ;;
        KF) message="$WORK/KF/config.json: cannot open: not a regular file" ;;
      esac
      expect_code 2 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path V --data-path D \
        --save-path "S$k" --epochs 1 --logger= --from-pretrained "$WORK/$k"
      expect_text "$WORK/err.txt" "$E$message"
      [ ! -e "S$k/0" ] || fail "$k: a checkpoint was saved"
      expect_code 2 "$BIN/speculators-eval" --verifier V --data D --draft "$WORK/$k" --num-prompts 1 --max-new-tokens 2
      expect_text "$WORK/err.txt" "$E$message"
    done
    # Draft weights without a tensor the model has: a data error naming the file and the tensor.
    cp -r K KM
    $PY - KM/model.safetensors <<'PY' > removed
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); name = sorted(k for k in header if k.startswith("layers."))[0]; del header[name]
text = json.dumps(header).encode(); text += b" " * (-len(text) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
print(name)
PY
    message="$WORK/KM/model.safetensors: tensor \"$(cat removed)\" is missing"
    expect_code 4 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path V --data-path D \
      --save-path SKM --epochs 1 --logger= --from-pretrained "$WORK/KM"
    expect_text "$WORK/err.txt" "${E}algorithm eagle3 \\(load\\): $message"
    expect_code 4 "$BIN/speculators-eval" --verifier V --data D --draft "$WORK/KM" --num-prompts 1 --max-new-tokens 2
    expect_text "$WORK/err.txt" "${E}algorithm eagle3 \\(load\\): $message"
    # A speculative_tokens that is not a whole number of tokens: the plugin's usage error.
    cp -r K KT
    $PY - KT/config.json <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["speculators_config"]["proposal_methods"][0]["speculative_tokens"] = 3.5
json.dump(config, open(sys.argv[1], "w"))
PY
    expect_code 2 "$BIN/speculators-eval" --verifier V --data D --draft "$WORK/KT" --num-prompts 1 --max-new-tokens 2
    expect_text "$WORK/err.txt" "${E}algorithm eagle3 \\(load\\): .*speculative_tokens must be an integer, got 3.5\$"
    ;;
  plugin_manifests)
    inputs
    mkdir -m 755 P PE
    cp "$BUILD/plugins/myalgo.so" P/; cp "$BUILD/plugins/myalgo.so" PE/
    deep_json > P/myalgo.manifest.json
    sed 's/"cuda": *[0-9]*/"cuda": 1e400/' "$BUILD/plugins/myalgo.manifest.json" > PE/myalgo.manifest.json
    grep -q 1e400 PE/myalgo.manifest.json || fail "no cuda key in myalgo.manifest.json"
    expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/P" --list-plugins
    expect_text "$WORK/out.txt" "myalgo .*$WORK/P/myalgo.so +rejected: manifest $WORK/P/myalgo.manifest.json: not valid JSON: .*nested deeper than 256 levels"
    expect_text "$WORK/out.txt" "eagle3 .* ok"
    expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/PE" --list-plugins
    expect_text "$WORK/out.txt" "myalgo .*$WORK/PE/myalgo.so +rejected: manifest $WORK/PE/myalgo.manifest.json: not valid JSON: .*1e400"
    expect_code 3 train V D S --plugin-dir "$WORK/P"
    expect_text "$WORK/err.txt" "manifest $WORK/P/myalgo.manifest.json: not valid JSON: .*nested deeper than 256 levels"
    [ ! -e S/0 ] || fail "a checkpoint was saved"
    # The same manifest inside a package.
    mkdir stage tmp; cp "$BUILD/plugins/myalgo.so" stage/; deep_json > stage/myalgo.manifest.json
    tar -czf deep.tar.gz -C stage myalgo.so myalgo.manifest.json
    expect_code 3 env TMPDIR="$WORK/tmp" "$BIN/speculators-train" plugins install deep.tar.gz --plugin-dir "$WORK/P2"
    expect_text "$WORK/err.txt" "${E}manifest myalgo.manifest.json in plugin package deep.tar.gz: not valid JSON: .*nested deeper than 256 levels"
    [ ! -e "$WORK/P2" ] || fail "the refused package created $WORK/P2"
    [ -z "$(ls -A "$WORK/tmp")" ] || fail "left behind in TMPDIR: $(ls -A "$WORK/tmp")"
    ;;
  resume_files)
    inputs
    expect_code 0 train V D S
    for k in deep big nan muon; do cp -r S "S$k"; done
    deep_json > Sdeep/0/trainer_state.json
    sed -i 's/"epoch": 0/"epoch": 1e400/' Sbig/0/trainer_state.json
    grep -q 1e400 Sbig/0/trainer_state.json || fail "no epoch in trainer_state.json"
    rewrite_tensors Snan/0 'name = sorted(k for k in tensors if k.startswith("model/"))[0]; tensors[name][1][0:4] = struct.pack("<f", float("nan"))'
    rewrite_tensors Smuon/0 'name = sorted(k for k in tensors if k.endswith("/momentum_buffer"))[0]; del tensors[name]; open("removed", "w").write(name)'
    for k in deep big nan muon; do
      case $k in
        deep) message="no checkpoint in $WORK/S$k can be resumed .*$WORK/S$k/0/trainer_state.json: invalid JSON: nested deeper than 256 levels" ;;
        big) message="no checkpoint in $WORK/S$k can be resumed .*$WORK/S$k/0/trainer_state.json: invalid JSON: .*1e400" ;;
        nan) message="no checkpoint in $WORK/S$k can be resumed .*$WORK/S$k/0/optimizer_state.safetensors: tensor \"model/[^\"]*\" holds non-finite values" ;;
        muon) message="$WORK/S$k/0/optimizer_state.safetensors: optimizer state \"$(cat removed)\" is missing" ;;
      esac
      expect_code 4 train V D "$WORK/S$k" --epochs 2
      expect_text "$WORK/err.txt" "$E$message"
      [ ! -e "S$k/1" ] || fail "$k: the run went on from a refused checkpoint"
    done
    # The same inputs in a run's metrics.jsonl, for `speculators-train report`.
    for k in deep big; do
      cp -r S "R$k"; rm -f "R$k/report.html"; n=$(($(wc -l <"R$k/metrics.jsonl") + 1))
      if [ $k = deep ]; then deep_json >>"R$k/metrics.jsonl"; else echo '{"global_step": 1e400}' >>"R$k/metrics.jsonl"; fi
      echo >>"R$k/metrics.jsonl"
      expect_code 4 "$BIN/speculators-train" report "R$k"
      expect_text "$WORK/err.txt" "${E}R$k/metrics.jsonl:$n: invalid JSON"
      [ ! -e "R$k/report.html" ] || fail "$k: a report was written from a broken metrics.jsonl"
    done
    ;;
  output_paths)
    inputs
    echo x > F
    expect_code 2 train V D "$WORK/F/x"
    expect_text "$WORK/err.txt" "$E$WORK/F/x: cannot create the save path: "
    expect_code 2 train V D S --log-dir "$WORK/F/x"
    expect_text "$WORK/err.txt" "$E$WORK/F/x: cannot create the log directory: "
    for name in ../escape /tmp/escape a/b ..; do
      expect_code 2 train V D S --logger tensorboard --run-name "$name"
      expect_text "$WORK/err.txt" "${E}--run-name \"$name\": expected a directory name inside --log-dir"
    done
    [ ! -e escape ] || fail "--run-name ../escape wrote outside the log directory"
    expect_code 2 train V D S --d2t-path "$WORK/nope/d2t.npy" --t2d-path "$WORK/nope/t2d.npy"
    expect_text "$WORK/err.txt" "$E--d2t-path $WORK/nope/d2t.npy: no such file\$"
    expect_code 2 train V D S --draft-vocab-size 100 --token-freq-path "$WORK/nope/freq.pt"
    expect_text "$WORK/err.txt" "$E--token-freq-path $WORK/nope/freq.pt: no such file\$"
    # A temporary file of datagen's pattern whose "pid" no process can have is left alone.
    cp -r D DH; mkdir DH/hidden_states; touch DH/hidden_states/hs_0.safetensors.tmp.99999999999999999999
    expect_code 0 "$BIN/speculators-datagen" hidden-states --verifier V --data DH --target-layer-ids 0 1
    [ -s DH/hidden_states/hs_0.safetensors ] || fail "datagen wrote no hs_0.safetensors"
    ;;
  option_ranges)
    inputs
    # FLAG VALUE MESSAGE: each job is refused before it starts, with exactly one line on stderr.
    while read -r flag value message; do
      expect_code 2 train V D S "$flag" "$value"
      [ "$(wc -l <"$WORK/err.txt")" = 1 ] || { cat "$WORK/err.txt" >&2; fail "$flag $value: not one line"; }
      expect_text "$WORK/err.txt" "${E}flag $flag: $message\$"
      [ ! -e S ] || fail "$flag $value: the refused job wrote S"
    done <<'CASES'
--epochs 0 --epochs must be >= 1 and <= 1000000, got 0
--epochs -1 --epochs must be >= 1 and <= 1000000, got -1
--epochs 99999999999 --epochs must be >= 1 and <= 1000000, got 99999999999
--lr nan --lr must be a finite number, got NaN
--lr inf --lr must be a finite number, got Infinity
--lr -1 --lr must be > 0, got -1.0
--noise-std nan --noise-std must be a finite number, got NaN
--max-grad-norm nan --max-grad-norm must be a finite number, got NaN
--max-grad-norm -1 --max-grad-norm must be > 0, got -1.0
--log-freq 0 --log-freq must be >= 1, got 0
--num-layers 100000 --num-layers must be >= 1 and <= 256, got 100000
--muon-ns-steps 1e9 expected an integer for --muon-ns-steps, got "1e9"
--muon-ns-steps 101 --muon-ns-steps must be >= 1 and <= 100, got 101
--num-workers 100000 --num-workers must be >= 0 and <= 256, got 100000
CASES
    # The same range for eagle3, whose schema restates --num-layers.
    expect_code 2 "$BIN/speculators-train" --speculator-type eagle3 --verifier-name-or-path V \
      --data-path D --save-path S --num-layers 100000
    expect_text "$WORK/err.txt" "${E}flag --num-layers: --num-layers must be >= 1 and <= 256, got 100000\$"
    [ ! -e S ] || fail "the refused eagle3 job wrote S"
    ;;
  *) fail "unknown case $CASE" ;;
esac
echo "ok [$CASE]"
