#!/usr/bin/env bash
# Every benchmark in its --quick mode (tiny sizes, the same code paths), so that none rots
# unnoticed: each prints its figures and exits non-zero if its own checks fail, and so does
# this script, at the first that fails. Ends with one line per benchmark with its wall time,
# and the total. From the repository root (CI runs it after `make test`):
#   bash benchmarks/run_quick.sh            PYTHON=/path/to/python to use another interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" LC_NUMERIC=C
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

benchmarks=(bench_likelihood bench_metrics bench_plan bench_ray bench_runner bench_scoring
  bench_validate bench_coverage bench_prefix)
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
lines=()
all_start=$EPOCHREALTIME
for name in "${benchmarks[@]}"; do
  echo "=== benchmarks/$name.py --quick"
  start=$EPOCHREALTIME
  if ! "$PYTHON" "benchmarks/$name.py" --quick; then
    echo "FAILED: benchmarks/$name.py --quick" >&2
    exit 1
  fi
  lines+=("$(printf '%-18s %6s s' "$name" "$(seconds "$start" "$EPOCHREALTIME")")")
done
echo "=== wall time of each benchmark's --quick"
printf '%s\n' "${lines[@]}"
printf '%-18s %6s s\n' total "$(seconds "$all_start" "$EPOCHREALTIME")"
