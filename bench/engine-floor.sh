#!/usr/bin/env bash
# The floor under the engine: loadtest against a bare hyper client of the same shape (bench/floor: one
# thread per core, one kept-alive connection per VU, nothing recorded) and wrk, on the same local nginx,
# in interleaved rounds (the order rotates). Client CPU per request (user + sys over requests completed)
# and req/s, medians and min-max. What loadtest spends above the bare client is its own work (timing,
# histograms, checks, timeouts, windows); what the bare client spends above wrk is hyper and tokio.
# Usage: bench/engine-floor.sh [rounds] [seconds]        Writes bench/results/engine-floor.md.
set -euo pipefail

ROUNDS=${1:-5}
DUR=${2:-5}
CONNS=32
PORT=${BENCH_PORT:-18091}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT="$HERE/results/engine-floor.md"
WORK=$(mktemp -d)
NGINX_PID=""
. "$HERE/nginx.sh"
cleanup() {
  nginx_stop
  rm -rf "$WORK"
}
trap cleanup EXIT
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null || [ ! -x /usr/bin/time ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx wrk time >/dev/null
fi
echo "building loadtest and the bare client (release)" >&2
(cd "$ROOT" && cargo build --release -q -p loadtest)
(cd "$HERE/floor" && cargo build --release -q)
LT="$ROOT/target/release/loadtest"
FLOOR="$HERE/floor/target/release/hyper-floor"
nginx_start
URL="http://127.0.0.1:$PORT"
RAW="$WORK/rounds.tsv"

row() { # round tool requests cpu_s
  python3 -c "import sys; r, t, n, c = sys.argv[1:]; n = int(n); print(f'{r}\t{t}\t{n / $DUR:.0f}\t{float(c) * 1e6 / max(n, 1):.2f}')" "$@" >>"$RAW"
}
run_loadtest() {
  /usr/bin/time -v -o "$WORK/t" "$LT" run -s health --scenarios-dir "$ROOT/scenarios" -t "$URL" \
    --vus $CONNS --duration "${DUR}s" -r "r$1" -o "$WORK" -q >/dev/null 2>&1 || true
  row "$1" loadtest "$(python3 -c "import json; print(json.load(open('$WORK/r$1_health.json'))['metrics']['http_reqs']['count'])")" "$(cpu_of "$WORK/t")"
}
run_floor() {
  /usr/bin/time -v -o "$WORK/t" "$FLOOR" "127.0.0.1:$PORT" /health $CONNS "$DUR" >"$WORK/floor.txt"
  row "$1" hyper-floor "$(cat "$WORK/floor.txt")" "$(cpu_of "$WORK/t")"
}
run_wrk() {
  /usr/bin/time -v -o "$WORK/t" wrk -t2 -c$CONNS -d${DUR}s "$URL/health" >"$WORK/wrk.txt"
  row "$1" wrk "$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")" "$(cpu_of "$WORK/t")"
}

wrk -t2 -c$CONNS -d3s "$URL/health" >/dev/null
for r in $(seq "$ROUNDS"); do
  case $((r % 3)) in
    1) order="loadtest floor wrk" ;; 2) order="floor wrk loadtest" ;; 0) order="wrk loadtest floor" ;;
  esac
  echo "round $r/$ROUNDS: $order (${DUR}s each)" >&2
  for t in $order; do "run_$t" "$r"; done
done

python3 - "$RAW" "$ROUNDS" "$DUR" >"$OUT" <<'PY'
import statistics as st, sys, datetime
raw, rounds, dur = sys.argv[1:]
rows = [l.split("\t") for l in open(raw).read().split("\n") if l]
by = {}
for rnd, tool, rate, us in rows:
    by.setdefault(tool, []).append((rnd, float(rate), float(us)))
def med(t, i): return st.median(x[i] for x in by[t])
def rng(t, i): return min(x[i] for x in by[t]), max(x[i] for x in by[t])
def per_round(t, other, i):
    o = {x[0]: x[i] for x in by[other]}
    return [x[i] / o[x[0]] for x in by[t]]
print("# The floor under the engine: loadtest, a bare hyper client, wrk")
print()
print(f"`bench/engine-floor.sh {rounds} {dur}` on {datetime.date.today()}: nginx (1 worker) on 127.0.0.1, 32 connections,")
print(f"{dur} s per run, {rounds} interleaved rounds (order rotates). loadtest runs scenarios/health.toml (status check,")
print("per-request HDR, 1 s timeline); hyper-floor (bench/floor) is the same shape of client with nothing recorded.")
print("CPU = user + sys of the generator process over the requests it completed.")
print()
print("| tool | req/s median | req/s min-max | CPU us/request median | CPU min-max |")
print("|---|---:|---:|---:|---:|")
for t in ("loadtest", "hyper-floor", "wrk"):
    lo, hi = rng(t, 1); clo, chi = rng(t, 2)
    print(f"| {t} | {med(t, 1):.0f} | {lo:.0f}-{hi:.0f} | {med(t, 2):.2f} | {clo:.2f}-{chi:.2f} |")
print()
a = per_round("loadtest", "hyper-floor", 2); b = per_round("hyper-floor", "wrk", 2); c = per_round("loadtest", "wrk", 2)
print(f"CPU per request, per round: loadtest / hyper-floor = {st.median(a):.2f} ({min(a):.2f}-{max(a):.2f}); "
      f"hyper-floor / wrk = {st.median(b):.2f} ({min(b):.2f}-{max(b):.2f}); loadtest / wrk = {st.median(c):.2f} "
      f"({min(c):.2f}-{max(c):.2f}).")
PY
cat "$OUT"
