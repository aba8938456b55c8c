#!/usr/bin/env bash
# Two builds of loadtest against the same local nginx, with wrk as the
# yardstick, in interleaved rounds (the order rotates every round): req/s and
# client CPU per request, medians and the spread over rounds. For "did this
# change slow the engine?" on a shared, noisy machine.
# Usage: bench/engine-ab.sh OLD_BINARY NEW_BINARY [rounds] [seconds]
# Writes bench/results/engine-ab.md.
set -euo pipefail

OLD=${1:?usage: bench/engine-ab.sh OLD_BINARY NEW_BINARY [rounds] [seconds]}
NEW=${2:?usage: bench/engine-ab.sh OLD_BINARY NEW_BINARY [rounds] [seconds]}
ROUNDS=${3:-5}
DUR=${4:-5}
CONNS=32
PORT=${BENCH_PORT:-18090}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${BENCH_OUT:-$HERE/results/engine-ab.md}
WORK=$(mktemp -d)
NGINX_PID=""
. "$HERE/nginx.sh"
cleanup() {
  nginx_stop
  rm -rf "$WORK"
}
trap cleanup EXIT
for b in "$OLD" "$NEW"; do
  [ -x "$b" ] || { echo "error: $b is not an executable loadtest binary" >&2; exit 2; }
done
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null || [ ! -x /usr/bin/time ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx wrk time >/dev/null
fi
nginx_start
URL="http://127.0.0.1:$PORT"
RAW="$WORK/rounds.tsv"

run_lt() { # label binary
  local label=$1 bin=$2
  /usr/bin/time -v -o "$WORK/t" "$bin" run -s health --scenarios-dir "$ROOT/scenarios" -t "$URL" \
    --vus $CONNS --duration "${DUR}s" -r "$label" -o "$WORK" -q >/dev/null 2>&1 || true
  python3 - "$WORK/${label}_health.json" "$(cpu_of "$WORK/t")" "$label" >>"$RAW" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n = r["metrics"]["http_reqs"]["count"]
rate = r["metrics"]["http_reqs"]["rate"]
print(f"{sys.argv[3]}\t{rate:.0f}\t{float(sys.argv[2]) * 1e6 / max(n, 1):.2f}")
PY
}

run_wrk() {
  /usr/bin/time -v -o "$WORK/t" wrk -t2 -c$CONNS -d${DUR}s "$URL/health" >"$WORK/wrk.txt"
  local n rate
  n=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  rate=$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/wrk.txt")
  printf 'wrk\t%s\t%s\n' "$rate" "$(python3 -c "print(f'{$(cpu_of "$WORK/t")*1e6/max($n,1):.2f}')")" >>"$RAW"
}

echo "warm-up (3 s)" >&2
wrk -t2 -c$CONNS -d3s "$URL/health" >/dev/null
for r in $(seq "$ROUNDS"); do
  case $(( r % 3 )) in
    1) order="old new wrk" ;;
    2) order="new wrk old" ;;
    0) order="wrk old new" ;;
  esac
  echo "round $r/$ROUNDS: $order (${DUR}s each)" >&2
  for t in $order; do
    case $t in
      old) run_lt old "$OLD" ;;
      new) run_lt new "$NEW" ;;
      wrk) run_wrk ;;
    esac
  done
done

python3 - "$RAW" "$ROUNDS" "$DUR" "$OLD" "$NEW" >"$OUT" <<'PY'
import statistics as st, sys, datetime
raw, rounds, dur, old, new = sys.argv[1:]
rows = [l.split("\t") for l in open(raw).read().split("\n") if l]
by = {}
for label, rate, cpu in rows:
    by.setdefault(label, []).append((float(rate), float(cpu)))
def med(label, i): return st.median(x[i] for x in by[label])
def rng(label, i): return min(x[i] for x in by[label]), max(x[i] for x in by[label])
# Ratios within a round: each build against the wrk run of the same round.
def per_round(label, i=0, other="wrk"):
    return [a[i] / w[i] for a, w in zip(by[label], by[other])]
print("# Engine A/B: two builds of loadtest against wrk")
print()
print(f"`bench/engine-ab.sh OLD NEW {rounds} {dur}` on {datetime.date.today()}: old = `{old}`, new = `{new}`.")
print(f"nginx (1 worker) on 127.0.0.1, 32 connections, {dur} s per run, {rounds} interleaved rounds (order rotates).")
print("loadtest runs scenarios/health.toml (status check, per-request HDR, 1 s timeline). CPU = user + sys of")
print("the generator process over requests sent.")
print()
print("| tool | req/s median | req/s min-max | CPU us/request median | CPU min-max |")
print("|---|---:|---:|---:|---:|")
for label in ("old", "new", "wrk"):
    lo, hi = rng(label, 0); clo, chi = rng(label, 1)
    print(f"| {label} | {med(label, 0):.0f} | {lo:.0f}-{hi:.0f} | {med(label, 1):.2f} | {clo:.2f}-{chi:.2f} |")
print()
o, n = per_round("old"), per_round("new")
print(f"Per round, req/s over wrk's in the same round: old {st.median(o):.3f} (min-max {min(o):.3f}-{max(o):.3f}), "
      f"new {st.median(n):.3f} ({min(n):.3f}-{max(n):.3f}); new/old = {st.median(n) / st.median(o):.3f}.")
print()
co, cn, cr = per_round("old", 1), per_round("new", 1), per_round("new", 1, "old")
print(f"Per round, CPU per request over wrk's: old {st.median(co):.3f} ({min(co):.3f}-{max(co):.3f}), "
      f"new {st.median(cn):.3f} ({min(cn):.3f}-{max(cn):.3f}); new over old in the same round "
      f"{st.median(cr):.3f} ({min(cr):.3f}-{max(cr):.3f}).")
PY
cat "$OUT"
