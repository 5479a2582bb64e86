#!/usr/bin/env bash
# `make bench`: every benchmark in this folder, one after another, each printing its own table.
#
# Usage: benchmarks/bench_all.sh   (any directory; BIN=DIR as in cli_startup.sh, default <checkout>/.venv/bin)
#
# Runs idle_reclaim.py, spot_goodput.py, gcp_watchdog.py and cli_startup.sh at their defaults, and
# watchdog_scale.py and model_fetch.py with --quick: each of those two only if the file exists and its
# --help offers --quick, else it says so and goes on. A benchmark that fails does not stop the others; the
# exit status is 1 if any failed. Figures and what they mean: benchmarks/RESULTS.md.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:-$ROOT/.venv/bin}"
if [[ ! -x "$BIN/python" ]]; then
  echo "bench_all.sh: $BIN/python not found: run make install, or set BIN to a venv's bin directory" >&2
  exit 2
fi
BIN="$(cd "$BIN" && pwd)"
export BIN
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT" || exit 2

failed=()
started=$SECONDS
bench() { # title, command...
  local title="$1" t0=$SECONDS
  shift
  printf '\n=== %s: %s\n' "$title" "$*"
  if "$@"; then
    printf '=== %s: %d s\n' "$title" $((SECONDS - t0))
  else
    printf '=== %s: FAILED (exit %d)\n' "$title" $?
    failed+=("$title")
  fi
}
quick() { # title, script: run it with --quick if it exists and offers --quick
  local title="$1" script="$2"
  if [[ ! -f "$script" ]]; then
    printf '\n=== %s: %s is missing: skipped\n' "$title" "$script"
  elif ! "$BIN/python" "$script" --help 2>/dev/null | grep -q -- '--quick'; then
    printf '\n=== %s: %s does not offer --quick: skipped\n' "$title" "$script"
  else
    bench "$title" "$BIN/python" "$script" --quick
  fi
}

bench "idle reclaim" "$BIN/python" benchmarks/idle_reclaim.py
bench "spot goodput" "$BIN/python" benchmarks/spot_goodput.py
quick "watchdog scale" benchmarks/watchdog_scale.py
quick "model fetch" benchmarks/model_fetch.py
bench "gcp watchdog" "$BIN/python" benchmarks/gcp_watchdog.py
bench "cli start-up" benchmarks/cli_startup.sh

printf '\nall benchmarks: %d s\n' $((SECONDS - started))
if ((${#failed[@]})); then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
