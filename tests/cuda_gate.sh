#!/usr/bin/env bash
# Runs a test command that needs a CUDA GPU (ctest label cuda), or prints why it cannot and exits
# 77, which ctest (SKIP_RETURN_CODE 77) reports as skipped.
#   tests/cuda_gate.sh <requirement>... -- <command> [args...]
# Requirements: nccl=0|1 (whether the NCCL backend is built).
set -euo pipefail
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case "$1" in
    nccl=0) echo "SKIPPED: this build has no NCCL backend (configure with -DSPECULATORS_WITH_NCCL=ON)"; exit 77 ;;
    nccl=1) ;;
    *) echo "cuda_gate.sh: unknown requirement '$1'" >&2; exit 2 ;;
  esac
  shift
done
[ "${1:-}" = "--" ] || { echo "cuda_gate.sh: missing -- before the command" >&2; exit 2; }
shift
if ! compgen -G "/dev/nvidia[0-9]*" >/dev/null; then
  echo "SKIPPED: no CUDA device on this machine (no /dev/nvidia0); tests labelled cuda need a GPU"
  exit 77
fi
exec "$@"
