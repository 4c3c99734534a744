# e2e cases: plugin discovery, rejection and packages.
# Sourced by e2e.sh, which defines the helpers and variables used here (BIN, SRC, WORK,
# expect_code, expect_text, ...); one function case_<name> a case.

case_list_and_describe() {
  expect_code 0 "$BIN/speculators-train" --list-plugins
  expect_text "$WORK/out.txt" '^myalgo +0\.1\.0 +.*myalgo\.so +ok'
  expect_text "$WORK/out.txt" '^eagle3 +0\.1\.0 +.*eagle3\.so +ok'
  expect_code 0 "$BIN/speculators-train" --describe myalgo
  expect_text "$WORK/out.txt" '--block-size'
  expect_code 0 "$BIN/speculators-train" --describe eagle3
  expect_text "$WORK/out.txt" '--ttt-steps'
  expect_text "$WORK/out.txt" '--no-norm-before-residual'
}

case_rejected_plugins() {
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
  # With the probe results kept (docs/plugins.md), a second listing reads the same.
  export SPECULATORS_PLUGIN_PROBE_CACHE=$WORK/probes.json
  expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/plugins" --list-plugins
  cp "$WORK/out.txt" "$WORK/list-first.txt"
  expect_text "$WORK/probes.json" '"outcome": "crashed in registration \(signal 11\)"'
  expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/plugins" --list-plugins
  diff "$WORK/list-first.txt" "$WORK/out.txt" >&2 || fail "the listing from kept probe results differs"
  expect_code 0 "$BIN/speculators-train" --plugin-dir "$WORK/plugins" --speculator-type myalgo \
    --verifier-name-or-path "$VERIFIER" --data-path "$DATA" --save-path "$WORK/ckpt" --epochs 1
  [ -s "$WORK/ckpt/0/model.safetensors" ] || fail "no checkpoint after training with rejected plugins around"
}

case_plugin_packages() {
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
}

case_other_build_plugins() {
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
}
