#!/usr/bin/env bash
# Written by `loadtest init --script`: the familiar entry point, for this repository.
# It calls the installed harness (`cargo install --path harness` in the loadtest
# repository; LOADTEST_BIN names another binary).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: ./loadtest.sh [-r NAME] [-s SCENARIO] [-c] [-a] [-h]

  -r NAME      run name, the prefix of the result files (default: baseline)
  -s SCENARIO  a k6 script of the [k6] folder (NAME.js) or a TOML scenario (default: LOADTEST_SCENARIO)
  -c           the pre-merge check against benchmark/baseline_<scenario>.json: `loadtest ab` against
               the baseline's commit (exit 0 pass, 98 regressed, 97 undecided)
  -a           every scenario (with -c, every baseline must exist first)

Each scenario goes through `loadtest bench`: down -v, up (images built from this checkout),
migrate, seed, run, results in benchmark/. Exit codes: 0 ok, 1 runtime error, 2 usage or
config error, 97 undecided, 98 regressed, 99 thresholds crossed.
USAGE
}

cd "$(dirname "$0")"
lt=${LOADTEST_BIN:-loadtest}
command -v "$lt" >/dev/null 2>&1 || { echo "error: $lt is not installed: cargo install --path harness (in the loadtest repository)" >&2; exit 2; }
run_name="" scenario="" compare=0 all=0
while getopts ":r:s:cah" opt; do
  case "$opt" in
    r) run_name=$OPTARG ;;
    s) scenario=$OPTARG ;;
    c) compare=1 ;;
    a) all=1 ;;
    h) usage; exit 0 ;;
    :) echo "error: -$OPTARG needs a value" >&2; usage >&2; exit 2 ;;
    *) echo "error: unknown flag -$OPTARG" >&2; usage >&2; exit 2 ;;
  esac
done
if [ "$all" = 1 ]; then
  mapfile -t scenarios < <("$lt" scenarios --names)
else
  scenarios=("${scenario:-${LOADTEST_SCENARIO:-}}")
fi
if [ -z "${scenarios[0]:-}" ]; then echo "error: name a scenario with -s (or -a for all)" >&2; exit 2; fi
if [ "$compare" = 1 ]; then
  for s in "${scenarios[@]}"; do
    [ -f "benchmark/baseline_$s.json" ] || { echo "error: benchmark/baseline_$s.json is missing: record it first with ./loadtest.sh -s $s" >&2; exit 2; }
  done
fi
worst=0
for s in "${scenarios[@]}"; do
  args=(bench -s "$s")
  [ -n "$run_name" ] && args+=(-r "$run_name")
  if [ "$compare" = 1 ]; then
    base=$(sed -n 's/^ *"commit": *"\([0-9a-f]\{7,40\}\)\(-dirty\)\{0,1\}".*/\1/p' "benchmark/baseline_$s.json" | head -n1)
    if [ -n "$base" ] && git cat-file -e "$base^{commit}" 2>/dev/null; then
      args=(ab --base "$base" -s "$s" --report "benchmark/ab_$s.txt")
    else
      commit=$(git show -s --format=%h 2>/dev/null || echo run)
      args=(bench -s "$s" -r "$commit" --compare)
    fi
  fi
  set +e
  "$lt" "${args[@]}"
  code=$?
  set -e
  echo "loadtest.sh: scenario $s finished with exit code $code" >&2
  if [ "$code" = 2 ]; then exit 2; fi
  if [ "$code" -gt "$worst" ]; then worst=$code; fi
done
exit "$worst"
