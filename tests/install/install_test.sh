#!/usr/bin/env bash
# Install test (docs/plugins.md): `cmake --install` into a temporary prefix, build
# plugins/myalgo out of tree against the installed SDK with find_package(Speculators CONFIG) +
# speculators_add_plugin(... PACKAGE), install the package it makes into a fresh plugin
# directory with `speculators-train plugins install`, and train one step with that plugin. Also:
# the same package edited to claim another LibTorch minor is refused at install time with one
# line, and `cpack -G TGZ` packs the SDK with the files a plugin author needs. Then a plugin
# written from docs/adding-an-algorithm.md alone (examples/mlp_speculator) goes the whole way an
# author's would: built out of tree against the installed SDK, its own tests run with ctest
# through Speculators::testing (speculators_add_plugin_test), packaged, installed with
# `speculators-train plugins install`, and trained for a few steps.
#   install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd); SRC=$(cd "$2" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/speculators-install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL [install]: $*" >&2; exit 1; }
export XDG_DATA_HOME=$WORK/no-user-plugins  # the user's own plugin directory stays out of this test
# The build's LibTorch major.minor (tests/install/CMakeLists.txt sets it).
TORCH_VERSION=${SPECULATORS_TEST_TORCH_VERSION:?set by ctest}
TORCH_MAJOR=${TORCH_VERSION%%.*}; TORCH_MINOR=${TORCH_VERSION#*.}; TORCH_MINOR=${TORCH_MINOR%%.*}
NEXT="$TORCH_MAJOR.$((TORCH_MINOR + 1))"

cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
[ -f "$WORK/prefix/include/speculators/plugin/abi.h" ] || fail "public headers not installed"
[ -f "$WORK/prefix/lib/cmake/Speculators/SpeculatorsConfig.cmake" ] || fail "CMake package not installed"
if ls "$WORK/prefix/include/speculators" | grep -q -E 'yaml|spdlog|nlohmann'; then fail "private headers installed"; fi

generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
# The plugins build from copies under $WORK, with ccache's base directory there: every path the
# compiler sees is then the same from one run (and one clone) to the next except for $WORK, which
# ccache rewrites to a relative path, so a rebuild of unchanged sources is a cache hit.
cp -r "$SRC/plugins/myalgo" "$WORK/myalgo-src"
cp -r "$SRC/examples/mlp_speculator" "$WORK/mlp-src"
launcher=()
command -v ccache >/dev/null && launcher=("-DCMAKE_CXX_COMPILER_LAUNCHER=env;CCACHE_BASEDIR=$WORK;CCACHE_SLOPPINESS=pch_defines,include_file_mtime,include_file_ctime,time_macros;ccache")
cmake -S "$WORK/myalgo-src" -B "$WORK/myalgo-build" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$WORK/prefix" >"$WORK/configure.log" 2>&1 \
  || { cat "$WORK/configure.log"; fail "out-of-tree configure failed"; }
cmake --build "$WORK/myalgo-build" -j"$(nproc)" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; fail "out-of-tree build failed"; }
HOST=$WORK/prefix/bin/speculators-train
# In-tree plugins are installed with their manifests, byte for byte (the manifests' sha256 hold).
for p in myalgo eagle3; do
  [ -f "$WORK/prefix/lib/speculators/plugins/$p.manifest.json" ] || fail "$p.manifest.json not installed"
done
"$HOST" --list-plugins >"$WORK/list0.txt" 2>/dev/null
grep -q -E "^myalgo .*/lib/speculators/plugins/myalgo.so +ok" "$WORK/list0.txt" || { cat "$WORK/list0.txt"; fail "installed in-tree myalgo does not load"; }

# The package: exactly the .so and its manifest, whose sha256 is the .so's (checked by coreutils).
pkg=$WORK/myalgo-build/packages/speculators-plugin-myalgo-0.1.0.tar.gz
[ -f "$pkg" ] || { ls -R "$WORK/myalgo-build" | head -50; fail "the out-of-tree build made no $pkg"; }
[ "$(tar -tzf "$pkg" | sort | tr '\n' ' ')" = "myalgo.manifest.json myalgo.so " ] || { tar -tzf "$pkg"; fail "unexpected package contents"; }
mkdir "$WORK/unpacked" && tar -xzf "$pkg" -C "$WORK/unpacked"
sha=$(sha256sum "$WORK/unpacked/myalgo.so" | cut -c1-64)
grep -q "\"sha256\": \"$sha\"" "$WORK/unpacked/myalgo.manifest.json" || fail "manifest sha256 is not the .so's ($sha)"
grep -q "\"torch_major\": $TORCH_MAJOR" "$WORK/unpacked/myalgo.manifest.json" || fail "manifest lacks torch_major"
if command -v dpkg-deb >/dev/null; then
  deb=$(ls "$WORK"/myalgo-build/packages/speculators-plugin-myalgo_0.1.0_*.deb) || fail "no .deb was built"
  dpkg-deb -c "$deb" >"$WORK/deb-contents.txt"  # listed once: grep -q on a pipe would cut it short
  grep -q 'usr/lib/speculators/plugins/myalgo.so$' "$WORK/deb-contents.txt" || fail "the .deb lacks myalgo.so"
  grep -q 'usr/lib/speculators/plugins/myalgo.manifest.json$' "$WORK/deb-contents.txt" || fail "the .deb lacks the manifest"
fi

# Install into a fresh plugin directory, then list it.
"$HOST" plugins install "$pkg" --plugin-dir "$WORK/plugins" >"$WORK/install.txt" || fail "plugins install failed"
grep -q "^installed myalgo 0.1.0 into $WORK/plugins" "$WORK/install.txt" || { cat "$WORK/install.txt"; fail "no install message"; }
"$HOST" plugins list --plugin-dir "$WORK/plugins" >"$WORK/plist.txt"
grep -q -E "^  myalgo 0\.1\.0 .*LibTorch $TORCH_MAJOR\.$TORCH_MINOR\..* ok$" "$WORK/plist.txt" || { cat "$WORK/plist.txt"; fail "plugins list does not show myalgo ok"; }
"$HOST" --plugin-dir "$WORK/plugins" --list-plugins >"$WORK/list.txt"
grep -q -E "^myalgo .*$WORK/plugins/myalgo.so +ok" "$WORK/list.txt" || { cat "$WORK/list.txt"; fail "installed host does not load the installed package"; }

# The same package claiming the next LibTorch minor is refused before anything is copied, in one line.
sed -i -e "s/\"torch_minor\": [0-9]*/\"torch_minor\": $((TORCH_MINOR + 1))/" -e "s/\"torch_version\": \"[^\"]*\"/\"torch_version\": \"$NEXT.0\"/" \
  "$WORK/unpacked/myalgo.manifest.json"
tar -czf "$WORK/myalgo-torch114.tar.gz" -C "$WORK/unpacked" myalgo.so myalgo.manifest.json
set +e
"$HOST" plugins install "$WORK/myalgo-torch114.tar.gz" --plugin-dir "$WORK/plugins114" >/dev/null 2>"$WORK/refused.txt"
rc=$?
set -e
[ "$rc" = 3 ] || { cat "$WORK/refused.txt"; fail "a package for LibTorch $NEXT was not refused with exit code 3 (got $rc)"; }
[ "$(wc -l <"$WORK/refused.txt")" = 1 ] || { cat "$WORK/refused.txt"; fail "the refusal is not one line"; }
grep -q "does not fit this host: LibTorch $NEXT != host $TORCH_MAJOR.$TORCH_MINOR" "$WORK/refused.txt" || { cat "$WORK/refused.txt"; fail "wrong refusal reason"; }
[ ! -e "$WORK/plugins114" ] || fail "a refused package left files behind"

# The default directory is the user plugin directory, which the host searches.
XDG_DATA_HOME=$WORK/xdg "$HOST" plugins install "$pkg" >/dev/null || fail "plugins install to the user directory failed"
XDG_DATA_HOME=$WORK/xdg "$HOST" --list-plugins >"$WORK/list-user.txt" 2>/dev/null
grep -q -E "^myalgo .*$WORK/xdg/speculators/plugins/myalgo.so +ok" "$WORK/list-user.txt" || { cat "$WORK/list-user.txt"; fail "the user plugin directory is not searched"; }
XDG_DATA_HOME=$WORK/xdg "$HOST" plugins remove myalgo >/dev/null || fail "plugins remove failed"
[ ! -e "$WORK/xdg/speculators/plugins/myalgo.so" ] || fail "plugins remove left myalgo.so"

DATAGEN=$WORK/prefix/bin/speculators-datagen
"$DATAGEN" make-verifier --arch llama --hidden-size 32 --num-layers 2 --vocab-size 64 --out "$WORK/verifier" --seed 3 >/dev/null
"$DATAGEN" sample --verifier "$WORK/verifier" --num-samples 8 --seq-len 16 --prompt-len 4 --out "$WORK/data" --seed 3 >/dev/null
"$HOST" --plugin-dir "$WORK/plugins" --speculator-type myalgo --verifier-name-or-path "$WORK/verifier" \
  --data-path "$WORK/data" --save-path "$WORK/ckpt" --epochs 1 --max-steps 1 --total-seq-len 64 \
  --train-data-ratio 0.75 2>"$WORK/train.log" || { cat "$WORK/train.log"; fail "training one step failed"; }
grep -q '"global_step":0' "$WORK/ckpt/metrics.jsonl" || fail "no step was logged"
[ -s "$WORK/ckpt/0/model.safetensors" ] || fail "no checkpoint written"
# The example plugin: out-of-tree build and its own tests against the installed SDK.
cmake -S "$WORK/mlp-src" -B "$WORK/mlp-build" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$WORK/prefix" >"$WORK/mlp-configure.log" 2>&1 \
  || { cat "$WORK/mlp-configure.log"; fail "mlp_speculator: out-of-tree configure failed"; }
cmake --build "$WORK/mlp-build" -j"$(nproc)" >"$WORK/mlp-build.log" 2>&1 \
  || { cat "$WORK/mlp-build.log"; fail "mlp_speculator: out-of-tree build failed"; }
ctest --test-dir "$WORK/mlp-build" --output-on-failure >"$WORK/mlp-ctest.log" 2>&1 \
  || { tail -80 "$WORK/mlp-ctest.log"; fail "mlp_speculator: its own tests failed against the installed SDK"; }
grep -q "100% tests passed, 0 tests failed out of 1" "$WORK/mlp-ctest.log" || { cat "$WORK/mlp-ctest.log"; fail "mlp_speculator: ctest ran no test"; }
mpkg=$WORK/mlp-build/packages/speculators-plugin-mlp_speculator-0.1.0.tar.gz
[ -f "$mpkg" ] || fail "mlp_speculator: the out-of-tree build made no $mpkg"
"$HOST" plugins install "$mpkg" --plugin-dir "$WORK/plugins" >"$WORK/mlp-install.txt" \
  || { cat "$WORK/mlp-install.txt"; fail "mlp_speculator: plugins install failed"; }
grep -q "^installed mlp_speculator 0.1.0 into $WORK/plugins" "$WORK/mlp-install.txt" || { cat "$WORK/mlp-install.txt"; fail "mlp_speculator: no install message"; }
"$HOST" --plugin-dir "$WORK/plugins" --list-plugins >"$WORK/mlp-list.txt" 2>/dev/null
grep -q -E "^mlp_speculator .*$WORK/plugins/mlp_speculator.so +ok" "$WORK/mlp-list.txt" || { cat "$WORK/mlp-list.txt"; fail "mlp_speculator: the installed package does not load"; }
"$HOST" --plugin-dir "$WORK/plugins" --speculator-type mlp_speculator --verifier-name-or-path "$WORK/verifier" \
  --data-path "$WORK/data" --save-path "$WORK/mlp-ckpt" --n-predict 2 --epochs 2 --max-steps 3 --total-seq-len 64 \
  --train-data-ratio 0.75 2>"$WORK/mlp-train.log" || { cat "$WORK/mlp-train.log"; fail "mlp_speculator: training failed"; }
grep -q '"global_step":2' "$WORK/mlp-ckpt/metrics.jsonl" || { cat "$WORK/mlp-ckpt/metrics.jsonl"; fail "mlp_speculator: three steps were not logged"; }
ckpt=$(ls -d "$WORK"/mlp-ckpt/[0-9]* | tail -1)
[ -s "$ckpt/model.safetensors" ] || fail "mlp_speculator: no checkpoint written"
grep -q '"speculators_model_type": "mlp_speculator"' "$ckpt/config.json" || { cat "$ckpt/config.json"; fail "mlp_speculator: config.json is not the plugin's"; }

# The SDK archive made by CPack holds what a plugin author and a user need, and nothing private.
cpack -G TGZ --config "$BUILD/CPackConfig.cmake" -B "$WORK/cpack" >"$WORK/cpack.log" 2>&1 || { cat "$WORK/cpack.log"; fail "cpack -G TGZ failed"; }
sdk=$(ls "$WORK"/cpack/speculators-*-Linux.tar.gz) || fail "cpack made no .tar.gz"
tar -tzf "$sdk" | sed 's|^[^/]*/||' >"$WORK/sdk.txt"
for f in include/speculators/plugin/abi.h include/speculators/plugin/plugin.h include/speculators/build_config.h \
         lib/libspeculators_core.so lib/cmake/Speculators/SpeculatorsConfig.cmake \
         lib/cmake/Speculators/SpeculatorsPlugin.cmake lib/cmake/Speculators/SpeculatorsPluginPackage.cmake \
         lib/cmake/Speculators/SpeculatorsTargets.cmake lib/cmake/Speculators/SpeculatorsPluginTest.cmake \
         lib/cmake/Speculators/speculators_catch_main.cpp lib/libspeculators_testing.so \
         include/speculators/testing/plugin_test.h bin/speculators-train bin/speculators-datagen bin/speculators-eval bin/speculators-bench \
         lib/speculators/plugins/myalgo.so lib/speculators/plugins/myalgo.manifest.json \
         lib/speculators/plugins/eagle3.so lib/speculators/plugins/eagle3.manifest.json; do
  grep -q -x "$f" "$WORK/sdk.txt" || { cat "$WORK/sdk.txt"; fail "the SDK archive lacks $f"; }
done
if grep -q -E 'host_tests|core_tests|yaml|spdlog|nlohmann' "$WORK/sdk.txt"; then fail "the SDK archive holds test binaries or private headers"; fi
echo "PASS [install]"
