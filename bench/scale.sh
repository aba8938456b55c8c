#!/usr/bin/env bash
# Past one machine, measured: one scenario split across 1, 2 and 4 shards, as processes
# (`loadtest distribute --on processes`) and as swarm tasks (`--on swarm`, a single-node swarm made here
# on 127.0.0.1 and left again if this script made it), against the same local nginx (installed here if
# missing). Two loads:
#   open    a fixed arrival rate (RATE/s for DUR s): the merged p99 against one plain process fed the
#           same schedule, and the time `loadtest merge` takes on the shards' files
#   closed  VUS closed-loop users for DUR s: total req/s (the machine's 2 cores are shared by every shard
#           and nginx, so this shows the cost of splitting on one machine, not the gain of more machines)
# Resumable: each measurement is appended to bench/results/raw/scale.tsv as it finishes, done ones are
# skipped. bench/results/scale.md is rewritten at the end.   Usage: bench/scale.sh   REPS (3) RATE (2000)
# VUS (32) DUR (10)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPS=${REPS:-3}
RATE=${RATE:-2000}
VUS=${VUS:-32}
DUR=${DUR:-10}
RAW="$HERE/results/raw/scale.tsv"
OUT="$HERE/results/scale.md"
PORT=18788
WORK=$(mktemp -d)
cd "$ROOT"
cargo build --release -q -p loadtest
LT="$ROOT/target/release/loadtest"

command -v nginx >/dev/null || { apt-get install -y -q nginx-light >/dev/null 2>&1 || apt-get install -y -q nginx >/dev/null; }
mkdir -p "$WORK/www" "$WORK/nginx"
echo ok > "$WORK/www/health"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server { listen 127.0.0.1:$PORT; root $WORK/www; keepalive_requests 1000000; }
}
EOF
nginx -c "$WORK/nginx/nginx.conf"
made_swarm=0
cleanup() {
  nginx -c "$WORK/nginx/nginx.conf" -s stop 2>/dev/null || true
  [ "$made_swarm" = 1 ] && docker swarm leave --force >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = inactive ]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null && made_swarm=1
fi

mkdir -p "$WORK/scenarios" "$(dirname "$RAW")"
cat > "$WORK/scenarios/open.toml" <<EOF
[options]
executor = "constant-arrival-rate"
rate = $RATE
time_unit = "1s"
duration = "${DUR}s"
pre_allocated_vus = 64
max_vus = 256

[[steps]]
name = "health"
method = "GET"
path = "/health"
EOF
cat > "$WORK/scenarios/closed.toml" <<EOF
[options]
executor = "constant-vus"
vus = $VUS
duration = "${DUR}s"

[[steps]]
name = "health"
method = "GET"
path = "/health"
EOF
[ -f "$RAW" ] || printf 'load\tmode\tshards\trep\trps\tp99_ms\trequests\tmerge_ms\n' > "$RAW"
target="http://127.0.0.1:$PORT"

one() { # load mode shards rep
  local load=$1 mode=$2 n=$3 rep=$4 out="$WORK/out-$1-$2-$3-$4" merge_ms=""
  grep -q "^$load	$mode	$n	$rep	" "$RAW" && return
  if [ "$mode" = single ]; then
    "$LT" run -s "$WORK/scenarios/$load.toml" -t "$target" -r m -o "$out" -q --no-html >/dev/null || true
  else
    "$LT" distribute -s "$WORK/scenarios/$load.toml" --shards "$n" --on "$mode" -t "$target" -r m \
      -o "$out" -q >/dev/null 2>"$out.err" || { echo "distribute failed: $(tail -3 "$out.err")" >&2; return; }
    if [ "$mode" = processes ]; then
      local t0 t1
      t0=$(date +%s%N)
      "$LT" merge "$out"/shards/m-shard*_"$load".json -o "$out/again.json" -s "$WORK/scenarios/$load.toml" -q >/dev/null || true
      t1=$(date +%s%N)
      merge_ms=$(( (t1 - t0) / 1000000 ))
    fi
  fi
  read -r rps p99 n_req < <(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(m["http_reqs"]["rate"], m["http_req_duration"]["p99"], m["http_reqs"]["count"])' "$out/m_$load.json")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$load" "$mode" "$n" "$rep" "$rps" "$p99" "$n_req" "$merge_ms" >> "$RAW"
  echo "$load $mode x$n #$rep: $rps req/s, p99 $p99 ms${merge_ms:+, merge $merge_ms ms}" >&2
}
for rep in $(seq 1 "$REPS"); do
  for load in open closed; do
    one "$load" single 1 "$rep"
    for n in 1 2 4; do
      one "$load" processes "$n" "$rep"
      one "$load" swarm "$n" "$rep"
    done
  done
done

python3 - "$RAW" "$OUT" "$RATE" "$VUS" "$DUR" <<'PY'
import csv, statistics, sys, os, datetime
raw, out, rate, vus, dur = sys.argv[1:]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
med = lambda xs: statistics.median(xs) if xs else float("nan")
def cell(load, mode, n, key):
    xs = [float(r[key]) for r in rows if r["load"] == load and r["mode"] == mode and r["shards"] == str(n) and r[key]]
    return med(xs), len(xs)
with open(out, "w") as f:
    f.write("# Past one machine: shards as processes and as swarm tasks\n\n")
    f.write(f"bench/scale.sh, {datetime.date.today()}, {os.cpu_count()} cores shared by every shard and the "
            f"target (nginx, one worker): medians of the repetitions. open = {rate}/s for {dur} s "
            f"(constant-arrival-rate); closed = {vus} VUs for {dur} s.\n\n")
    f.write("| load | how | shards | runs | req/s | p99 ms | merge ms |\n|---|---|---:|---:|---:|---:|---:|\n")
    for load in ("open", "closed"):
        for mode, ns in (("single", (1,)), ("processes", (1, 2, 4)), ("swarm", (1, 2, 4))):
            for n in ns:
                rps, k = cell(load, mode, n, "rps")
                if not k:
                    continue
                p99, _ = cell(load, mode, n, "p99_ms")
                mg, km = cell(load, mode, n, "merge_ms")
                f.write(f"| {load} | {mode} | {n} | {k} | {rps:.0f} | {p99:.2f} | {'%.0f' % mg if km else '-'} |\n")
    f.write("\nRaw: `bench/results/raw/scale.tsv`.\n")
print(open(out).read())
PY
