#!/usr/bin/env bash
# The explain study: what the A/B report's "where" section names, through the full stack on this machine.
# Each verdict is a `loadtest ab` of the verdict study (bench/verdict.sh), with its own files:
#   aa      A/A: nothing should be named (N_AA verdicts, default 20)
#   cpuN    B spins the CPU N us per authenticated request: the app's CPU per request should be named
#   regX    B adds one database round trip of X ms: the app's network bytes per request should be named
#           (the extra query's bytes to and from Postgres)
#
#   bench/explain.sh [PART...]     default: aa cpu50 reg1
#
# Resumable like the verdict study (every verdict appended to bench/results/explain-runs.csv as it finishes,
# done ones skipped); bench/results/explain.md (the findings) and explain-verdicts.md (the verdicts) are
# rewritten after each. Works in its own clone (STUDY_DIR, default target/explain-study).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export STUDY_NAME=explain
export STUDY_DIR=${STUDY_DIR:-$ROOT/target/explain-study}
[ $# -eq 0 ] && set -- aa cpu50 reg1
exec "$HERE/verdict.sh" "$@"
