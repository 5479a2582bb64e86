#!/usr/bin/env bash
# CLI start-up: whole-process wall time of `pyctl --help`, `pyctl validate --env prod` and
# `pyctl render --env prod`, against `python -c "import click"` (the floor any click CLI pays).
# The four run interleaved (one of each per round, so load changes hit them alike); prints the median
# and best of ROUNDS per command, and each median over import click's.
# Usage: benchmarks/cli_startup.sh [ROUNDS]   (default 15; run from the repo root, after make install)
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS="${1:-15}"
BIN="${BIN:-.venv/bin}"

names=("import click" "pyctl --help" "pyctl validate --env prod" "pyctl render --env prod")
run() {
  case "$1" in
    0) "$BIN/python" -c "import click" ;;
    1) "$BIN/pyctl" --help ;;
    2) "$BIN/pyctl" validate --env prod ;;
    3) "$BIN/pyctl" render --env prod ;;
  esac
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for i in 0 1 2 3; do run "$i" >/dev/null 2>&1; done # warm the file cache and .pyc files; not timed
for ((round = 0; round < ROUNDS; round++)); do
  for i in 0 1 2 3; do
    start=$(date +%s%N)
    run "$i" >/dev/null 2>&1
    end=$(date +%s%N)
    echo $(((end - start) / 1000)) >>"$tmp/$i"
  done
done

median() { sort -n "$1" | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
floor=$(median "$tmp/0")
printf '%-28s %10s %10s %12s\n' "command ($ROUNDS rounds)" "median ms" "best ms" "median/click"
for i in 0 1 2 3; do
  med=$(median "$tmp/$i")
  best=$(sort -n "$tmp/$i" | head -1)
  awk -v n="${names[$i]}" -v m="$med" -v b="$best" -v f="$floor" \
    'BEGIN {printf "%-28s %10.1f %10.1f %12.2f\n", n, m / 1000, b / 1000, m / f}'
done
