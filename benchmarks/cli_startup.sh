#!/usr/bin/env bash
# CLI start-up: whole-process wall time of `pyctl --help`, `pyctl validate --env prod` and
# `pyctl render --env prod`, against `python -c "import click"` (the floor any click CLI pays).
#
# Usage: benchmarks/cli_startup.sh [ROUNDS]   (default 15; any directory)
#   BIN=DIR   the virtualenv's bin directory holding python and pyctl (default: <checkout>/.venv/bin;
#             in a git worktree without its own venv, e.g. BIN=/work/main/.venv/bin)
#
# What runs: the venv's `python` and `pyctl` console script, with PYTHONPATH set to this checkout so its
# code is measured (not whatever the venv's editable install points at), from a temporary copy of the
# checkout's infra/ (render writes files; the checkout is never touched). One untimed warm-up run of each
# command, then ROUNDS rounds; each round runs all four once, in an order rotated every round, so load
# changes hit them alike. A command that fails stops the script with its output. Prints the median, the
# best and the worst of the rounds per command, and each median over import click's median.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROUNDS="${1:-15}"
BIN="${BIN:-$ROOT/.venv/bin}"
if ! [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]]; then
  echo "cli_startup.sh: ROUNDS must be a positive integer, got '$ROUNDS'" >&2
  exit 2
fi
for exe in python pyctl; do
  if [[ ! -x "$BIN/$exe" ]]; then
    echo "cli_startup.sh: $BIN/$exe not found: run make install, or set BIN to a venv's bin directory" >&2
    exit 2
  fi
done
BIN="$(cd "$BIN" && pwd)" # absolute: the commands run from a temporary directory

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -R "$ROOT/infra" "$tmp/infra"
mkdir "$tmp/times"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

names=('python -c "import click"' "pyctl --help" "pyctl validate --env prod" "pyctl render --env prod")
run() {
  case "$1" in
    0) "$BIN/python" -c "import click" ;;
    1) "$BIN/pyctl" --help ;;
    2) "$BIN/pyctl" validate --env prod ;;
    3) "$BIN/pyctl" render --env prod ;;
  esac
}
checked() { # run $1 in the infra copy; on failure print what it said and stop
  if ! (cd "$tmp" && run "$1") >"$tmp/out" 2>&1; then
    echo "cli_startup.sh: '${names[$1]}' failed:" >&2
    cat "$tmp/out" >&2
    exit 1
  fi
}

for i in 0 1 2 3; do checked "$i"; done # warm the file cache and .pyc files; not timed
for ((round = 0; round < ROUNDS; round++)); do
  for k in 0 1 2 3; do
    i=$(((round + k) % 4))
    start=$(date +%s%N)
    checked "$i"
    end=$(date +%s%N)
    echo $(((end - start) / 1000)) >>"$tmp/times/$i"
  done
done

median() { sort -n "$1" | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
floor=$(median "$tmp/times/0")
printf '%-28s %10s %10s %10s %13s\n' "command ($ROUNDS rounds)" "median ms" "best ms" "worst ms" "median/click"
for i in 0 1 2 3; do
  med=$(median "$tmp/times/$i")
  best=$(sort -n "$tmp/times/$i" | head -1)
  worst=$(sort -n "$tmp/times/$i" | tail -1)
  awk -v n="${names[$i]}" -v m="$med" -v b="$best" -v w="$worst" -v f="$floor" \
    'BEGIN {printf "%-28s %10.1f %10.1f %10.1f %13.2f\n", n, m / 1000, b / 1000, w / 1000, m / f}'
done
