#!/usr/bin/env bash
# Install test (DESIGN §7): `cmake --install` into a temporary prefix, build plugins/myalgo out
# of tree against the installed SDK with find_package(Speculators CONFIG) +
# speculators_add_plugin, then train one step with the installed host and that plugin.
#   install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd); SRC=$(cd "$2" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/speculators-install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL [install]: $*" >&2; exit 1; }

cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
[ -f "$WORK/prefix/include/speculators/plugin/abi.h" ] || fail "public headers not installed"
[ -f "$WORK/prefix/lib/cmake/Speculators/SpeculatorsConfig.cmake" ] || fail "CMake package not installed"
if ls "$WORK/prefix/include/speculators" | grep -q -E 'yaml|spdlog|nlohmann'; then fail "private headers installed"; fi

generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
launcher=(); command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$SRC/plugins/myalgo" -B "$WORK/myalgo-build" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$WORK/prefix" >"$WORK/configure.log" 2>&1 \
  || { cat "$WORK/configure.log"; fail "out-of-tree configure failed"; }
cmake --build "$WORK/myalgo-build" -j"$(nproc)" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; fail "out-of-tree build failed"; }
so=$(find "$WORK/myalgo-build" -name myalgo.so | head -n 1)
[ -n "$so" ] || fail "the out-of-tree build produced no myalgo.so"
mkdir -p "$WORK/plugins" && cp "$so" "$WORK/plugins/"

HOST=$WORK/prefix/bin/speculators-train
"$HOST" --plugin-dir "$WORK/plugins" --list-plugins >"$WORK/list.txt"
grep -q -E "^myalgo .*$WORK/plugins/myalgo.so +ok" "$WORK/list.txt" || { cat "$WORK/list.txt"; fail "installed host does not load the out-of-tree plugin"; }

DATAGEN=$WORK/prefix/bin/speculators-datagen
"$DATAGEN" make-verifier --arch llama --hidden-size 32 --num-layers 2 --vocab-size 64 --out "$WORK/verifier" --seed 3 >/dev/null
"$DATAGEN" sample --verifier "$WORK/verifier" --num-samples 8 --seq-len 16 --prompt-len 4 --out "$WORK/data" --seed 3 >/dev/null
"$HOST" --plugin-dir "$WORK/plugins" --speculator-type myalgo --verifier-name-or-path "$WORK/verifier" \
  --data-path "$WORK/data" --save-path "$WORK/ckpt" --epochs 1 --max-steps 1 --total-seq-len 64 \
  --train-data-ratio 0.75 2>"$WORK/train.log" || { cat "$WORK/train.log"; fail "training one step failed"; }
grep -q '"global_step":0' "$WORK/ckpt/metrics.jsonl" || fail "no step was logged"
[ -s "$WORK/ckpt/0/model.safetensors" ] || fail "no checkpoint written"
echo "PASS [install]"
