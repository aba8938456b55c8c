#!/usr/bin/env bash
# The explain study: what the A/B report's "where" section names, through the full stack on this machine.
# Each verdict is a `loadtest ab` of the verdict study (bench/verdict.sh), with its own files:
#   regX    B adds one database round trip of X ms (`SELECT pg_sleep(..)`): that statement should be named,
#           about +1 call per request (in duet mode, where statements are not counted: the app's network
#           bytes per request, the extra query's bytes to and from Postgres)
#   cpuN    B spins the CPU N us per authenticated request: the app's CPU per request, and no statement
#   memN    B holds N MB more: the app's memory, and no statement
#   aa      A/A: nothing should be named (N_AA verdicts, default 20)
#
#   bench/explain.sh [PART...]     default: reg1 cpu50 mem50 aa
#
# AB_ARGS defaults to 16 trials of 5 s after a 2 s warm-up (8 pairs, the fewest at which a container's
# figure, alpha shared by three, can be named), one side at a time (statements are counted only then),
# except for cpuN: both sides at once (duet), where a container's CPU is least noisy.
# explain-duet-runs.csv keeps the first rows, run in duet mode (app figures only).
#
# Resumable like the verdict study (every verdict appended to bench/results/explain-runs.csv as it finishes,
# done ones skipped); bench/results/explain.md (the findings) and explain-verdicts.md (the verdicts) are
# rewritten after each. Works in its own clone (STUDY_DIR, default target/explain-study).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export STUDY_NAME=explain
export STUDY_DIR=${STUDY_DIR:-$ROOT/target/explain-study}
[ $# -eq 0 ] && set -- reg1 cpu50 mem50 aa
# Each part in the mode that shows its expected figure: statements are counted one side at a time
# (alternate); a CPU spin is a container figure, whose noise is smaller with both sides at once (duet).
# AB_ARGS set by the caller applies to every part.
for part in "$@"; do
  case "$part" in
    cpu*) mode=duet ;;
    *) mode=alternate ;;
  esac
  AB_ARGS=${AB_ARGS:---mode $mode --trials 16 --max-trials 16 --duration 5s --warmup 2s} \
    "$HERE/verdict.sh" "$part"
done
