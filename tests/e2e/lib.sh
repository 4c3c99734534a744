# Helpers shared by the e2e scripts (e2e.sh, job_contract.sh, hostile_inputs.sh), which set CASE
# and WORK before sourcing this file.
fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
expect_code() {  # expect_code CODE command...: its stdout and stderr land in $WORK/{out,err}.txt
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
