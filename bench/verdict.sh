#!/usr/bin/env bash
# The verdict study: how often `loadtest ab` says "regressed" when nothing changed (false alarms) and when the
# demo was made slower (power), through the full stack, on this machine; and the same for `loadtest compare`
# of stored single runs.
#
#   bench/verdict.sh [PART...]      PART: aa | reg2 | reg1 | reg05 | cpuN | cmp     (default: aa reg2)
#   bench/verdict.sh render          rewrite the tables from the CSVs only
#
#   aa     A/A: --base HEAD against the same commit's clean working tree (N_AA verdicts, default 20)
#   regX   the working tree adds one database round trip of X ms (2, 1, 0.5) per authenticated request
#          (N_REG verdicts, default 10)
#   cpuN   the working tree spins the CPU for N us per authenticated request instead (a slowdown with
#          no extra query, sized by N; N_REG verdicts)
#   memN   the working tree holds N MB more memory in the app (allocated and touched at start; N_REG verdicts)
#   cmp    the stored-baseline path: N_CMP_A (default 8) full cycles (`loadtest bench`: down -v, up, migrate,
#          seed, run) of the clean commit and N_CMP_B (default 6) with the 2 ms round trip, interleaved; then
#          `loadtest compare` on every ordered pair of clean runs (A/A) and every clean/slow pair, once with the
#          runs' history.jsonl (between-run noise known) and once with the two files alone
#
# STUDY_REF=<commit> studies that commit instead of HEAD. STUDY_NAME (default verdict) names the files under
# bench/results/ (NAME.md, NAME-runs.csv, ...): a re-check of a later build beside the main study, with a
# STUDY_DIR of its own.
# Resumable: every verdict (and every full-cycle run) is appended to its CSV as it finishes and done ones are
# skipped, so the study can run in pieces (AB_ARGS adds flags to every `loadtest ab`; the rows record them).
# The full-cycle results are kept in bench/results/raw/compare-runs/ so that the judging can be redone.
# bench/results/verdict.md is rewritten from the CSVs after every verdict.
# The study works in its own clone (STUDY_DIR, default target/verdict-study) of this checkout's HEAD, with its
# own compose project and ports, so a developer's stack and working tree are left alone.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY="$HERE/verdict.py"
NAME=${STUDY_NAME:-verdict}
CSV="$HERE/results/$NAME-runs.csv"
OUT="$HERE/results/$NAME.md"
# The explain study keeps its verdict table beside its own (explain.md, from the findings).
[ "$NAME" = explain ] && OUT="$HERE/results/explain-verdicts.md"
CMP_RUNS="$HERE/results/$NAME-compare-runs.csv"
CMP_CSV="$HERE/results/$NAME-compare.csv"
CMP_RAW="$HERE/results/raw/compare-runs"
STUDY=${STUDY_DIR:-$ROOT/target/verdict-study}
N_AA=${N_AA:-20}
N_REG=${N_REG:-10}
N_CMP_A=${N_CMP_A:-8}
N_CMP_B=${N_CMP_B:-6}
AB_ARGS=${AB_ARGS:-}
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=(aa reg2)

say() { printf '== %s\n' "$*" >&2; }
for p in "${PARTS[@]}"; do
  case "$p" in aa | reg2 | reg1 | reg05 | cmp | render) ;; cpu[0-9]* | mem[0-9]*) ;; *) echo "unknown part '$p' (aa, reg2, reg1, reg05, cpuN, memN, cmp, render)" >&2; exit 2 ;; esac
done
command -v python3 >/dev/null || { echo "python3 is needed to read the verdicts" >&2; exit 2; }

render() {
  python3 "$PY" render "$CSV" "$OUT" "$CMP_RUNS" "$CMP_CSV"
  if [ "$NAME" = explain ]; then python3 "$PY" explain "$CSV" "$HERE/results/explain.md"; fi
}

if [ "${PARTS[*]}" = render ]; then render; exit 0; fi

# The study's own project and ports.
export LOADTEST_PROJECT=ltverdict LOADTEST_DB_PORT=5533 LOADTEST_APP_PORT=8180
export LOADTEST_PUSHGATEWAY_PORT=9191 LOADTEST_PROMETHEUS_PORT=9190
export LOADTEST_RESULTS_DIR="$STUDY/benchmark"

# The commit studied: HEAD, or STUDY_REF (to go on with the build an interrupted study used).
REF=$(git -C "$ROOT" rev-parse "${STUDY_REF:-HEAD}")
if [ ! -d "$STUDY/.git" ]; then
  say "cloning this checkout into $STUDY"
  git clone -q "$ROOT" "$STUDY"
  # Build caches: the dependencies compiled here serve the clone too.
  if [ -d "$ROOT/target/release" ] && [ ! -d "$STUDY/target/release" ]; then
    mkdir -p "$STUDY/target" && cp -a "$ROOT/target/release" "$STUDY/target/release"
  fi
fi
git -C "$STUDY" fetch -q "$ROOT" "$REF"
git -C "$STUDY" checkout -q --force --detach "$REF"
say "building loadtest and the demo in the study clone"
(cd "$STUDY" && cargo build --release -q -p loadtest -p demo)
LT="$STUDY/target/release/loadtest"
(cd "$STUDY" && "$LT" images --build -q >/dev/null)

# One extra database round trip of $1 ms per authenticated request (0: none).
set_delay() {
  git -C "$STUDY" checkout -q -- demo/src/api.rs
  [ "$1" = 0 ] && return 0
  local secs
  secs=$(python3 -c "print($1/1000)")
  perl -0pi -e 's/(\n    let row = sqlx::query\("SELECT merchant_id FROM api_keys)/\n    sqlx::query("SELECT pg_sleep('"$secs"')").execute(&app.db).await.ok();$1/' \
    "$STUDY/demo/src/api.rs"
  grep -q "pg_sleep($secs)" "$STUDY/demo/src/api.rs" || { echo "could not apply the delay to demo/src/api.rs" >&2; exit 1; }
}

# A busy spin of $1 us per authenticated request: CPU work, no extra query.
set_spin() {
  git -C "$STUDY" checkout -q -- demo/src/api.rs
  perl -0pi -e 's/(\n    let row = sqlx::query\("SELECT merchant_id FROM api_keys)/\n    { let t0 = std::time::Instant::now(); while t0.elapsed() < std::time::Duration::from_micros('"$1"') { std::hint::spin_loop(); } }$1/' \
    "$STUDY/demo/src/api.rs"
  grep -q "from_micros($1)" "$STUDY/demo/src/api.rs" || { echo "could not apply the spin to demo/src/api.rs" >&2; exit 1; }
}

# N MB allocated, touched and kept at the app's start: memory, no extra work per request.
set_hold() {
  git -C "$STUDY" checkout -q -- demo/src/api.rs
  perl -0pi -e 's/(pub fn new\(db: PgPool, admin_key: String\) -> App \{\n)/$1        std::hint::black_box(Box::leak(vec![1u8; '"$1"' << 20].into_boxed_slice()));\n/' \
    "$STUDY/demo/src/api.rs"
  grep -q "vec!\[1u8; $1 << 20\]" "$STUDY/demo/src/api.rs" || { echo "could not apply the memory hold to demo/src/api.rs" >&2; exit 1; }
}

# As a user would: measure the noise once, so that `ab` takes its tolerances from it.
if [ ! -f "$STUDY/benchmark/calibration_payment-confirm.json" ]; then
  say "calibrating (A/A trials of the study's build)"
  (cd "$STUDY" && "$LT" calibrate -s payment-confirm -q) >"$HERE/results/$NAME-calibration.txt"
fi

[ -f "$CSV" ] || echo "part,n,exit,trials,wall_s,rps_change,p95_change,p99_change,decided_by,commit,ab_args,finished_at,findings,examined" >"$CSV"

# One full cycle, as `./loadtest.sh` runs it: the demo built from the clone, then `loadtest bench`.
cmp_run() {
  local side=$1 n=$2 name="cmp-$1$2" delay=0 log rc figures=","
  [ "$side" = b ] && delay=2
  if [ -f "$CMP_RUNS" ] && grep -q "^$name," "$CMP_RUNS"; then return 0; fi
  say "compare part: full cycle $name"
  set_delay "$delay"
  (cd "$STUDY" && cargo build --release -q -p demo)
  log=$(mktemp)
  set +e
  (cd "$STUDY" && timeout 900 "$LT" bench -s payment-confirm -r "$name" -q) >"$log" 2>&1
  rc=$?
  set -e
  local file="$STUDY/benchmark/${name}_payment-confirm.json"
  if [ "$rc" -eq 0 ] && [ -f "$file" ]; then
    mkdir -p "$CMP_RAW"
    cp "$file" "$CMP_RAW/"
    python3 "$PY" history-line "$STUDY/benchmark/history.jsonl" "$name" >>"$CMP_RAW/history.jsonl"
    figures=$(python3 "$PY" run-figures "$CMP_RAW/history.jsonl")
  else
    say "exit $rc; last lines:"; tail -5 "$log" >&2
  fi
  [ -f "$CMP_RUNS" ] || echo "name,side,exit,rps,p95,commit,finished_at" >"$CMP_RUNS"
  echo "$name,$side,$rc,$figures,$REF,$(date -Is)" >>"$CMP_RUNS"
  rm -f "$log"
}

for part in "${PARTS[@]}"; do
  if [ "$part" = cmp ]; then
    for n in $(seq 1 "$N_CMP_A"); do
      cmp_run a "$n"
      if [ "$n" -le "$N_CMP_B" ]; then cmp_run b "$n"; fi
    done
    set_delay 0
    python3 "$PY" judge "$CMP_RUNS" "$CMP_RAW" "$LT" "$STUDY" >"$CMP_CSV.tmp"
    mv "$CMP_CSV.tmp" "$CMP_CSV"
    render
    continue
  fi
  case "$part" in
    aa) count=$N_AA; delay=0 ;;
    reg2) count=$N_REG; delay=2 ;;
    reg1) count=$N_REG; delay=1 ;;
    reg05) count=$N_REG; delay=0.5 ;;
    cpu* | mem*) count=$N_REG; delay=0 ;;
  esac
  set_delay "$delay"
  case "$part" in cpu*) set_spin "${part#cpu}" ;; mem*) set_hold "${part#mem}" ;; esac
  for n in $(seq 1 "$count"); do
    # Done when a verdict of this part, number and flags is recorded (a part may be studied in
    # both modes).
    if grep -F ",$AB_ARGS," "$CSV" | grep -q "^$part,$n,"; then continue; fi
    say "$part verdict $n/$count"
    json=$(mktemp)
    set +e
    # shellcheck disable=SC2086
    (cd "$STUDY" && timeout 1800 "$LT" ab --base HEAD -s payment-confirm -f json -q $AB_ARGS) >"$json" 2>"$json.err"
    rc=$?
    set -e
    line=$(python3 "$PY" ab-row "$json")
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 97 ] && [ "$rc" -ne 98 ]; then
      say "exit $rc; last lines:"; tail -5 "$json.err" >&2
    fi
    echo "$part,$n,$rc,$line,$REF,$AB_ARGS,$(date -Is),$(python3 "$PY" ab-findings "$json")" >>"$CSV"
    rm -f "$json" "$json.err"
    render
  done
done
set_delay 0
render
say "table: $OUT"
