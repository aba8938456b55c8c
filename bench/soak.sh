#!/usr/bin/env bash
# Soak: one long run at a fixed arrival rate against the demo stack while faults are injected, to show that
# the harness holds up: memory flat, every error counted, the results complete.
#
#   bench/soak.sh                       1 hour at 40 payments/s, a fault every 5 minutes
#   SOAK_DURATION=10m SOAK_RATE=20 SOAK_FAULT_EVERY=1m bench/soak.sh
#
# Faults alternate: the app container restarted, then Postgres paused for 5 s (through the Docker Engine API
# on /var/run/docker.sock). The loadtest process's RSS is sampled every 10 s. Writes bench/results/soak.md
# (and the samples and faults to bench/results/raw/soak-*.csv). Uses its own compose project and ports.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DURATION=${SOAK_DURATION:-1h}
RATE=${SOAK_RATE:-40}
FAULT_EVERY=${SOAK_FAULT_EVERY:-5m}
PAUSE_S=${SOAK_PAUSE_S:-5}
OUT="$HERE/results/soak.md"
RAW="$HERE/results/raw"
WORK="$ROOT/target/soak"
SOCK=${DOCKER_SOCK:-/var/run/docker.sock}

say() { printf '== %s\n' "$*" >&2; }
secs() { # 90s | 5m | 1h -> seconds
  case "$1" in
    *h) echo $((${1%h} * 3600)) ;; *m) echo $((${1%m} * 60)) ;; *s) echo "${1%s}" ;; *) echo "$1" ;;
  esac
}
DUR_S=$(secs "$DURATION")
EVERY_S=$(secs "$FAULT_EVERY")
for v in DUR_S EVERY_S RATE PAUSE_S; do
  [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || { echo "soak: $v must be a positive whole number (got '${!v}')" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "soak: curl is needed to reach the Docker Engine API" >&2; exit 2; }
[ -S "$SOCK" ] || { echo "soak: no Docker Engine socket at $SOCK (set DOCKER_SOCK)" >&2; exit 2; }

export LOADTEST_PROJECT=ltsoak LOADTEST_DB_PORT=5544 LOADTEST_APP_PORT=8190
export LOADTEST_PUSHGATEWAY_PORT=9291 LOADTEST_PROMETHEUS_PORT=9290
export LOADTEST_RESULTS_DIR="$WORK/benchmark"
mkdir -p "$WORK" "$RAW"
rm -rf "$LOADTEST_RESULTS_DIR"

cd "$ROOT"
say "building loadtest and the demo (release)"
cargo build --release -q -p loadtest -p demo
LT="$ROOT/target/release/loadtest"
"$LT" images --build -q >/dev/null

# payment-confirm's requests (its setup and steps, as they are) at a fixed rate: an open model, so a stalled
# server shows as errors and dropped iterations, never as a quietly lower rate.
SC="$WORK/soak.toml"
{
  printf 'description = "Soak: payment-confirm requests at a fixed rate while faults are injected"\n\n'
  printf '[options]\nexecutor = "constant-arrival-rate"\nrate = %s\nduration = "%ss"\n' "$RATE" "$DUR_S"
  printf 'pre_allocated_vus = 20\nmax_vus = 200\ntimeout = "10s"\n\n'
  # Its [[setup]] and [[steps]] tables; its own options, A/B settings and thresholds left out.
  awk '/^\[/ { keep = ($0 ~ /^\[\[(setup|steps)\]\]/) } keep' "$ROOT/scenarios/payment-confirm.toml"
} >"$SC"

engine() { # METHOD PATH
  curl -sf --unix-socket "$SOCK" -X "$1" "http://localhost/v1.41$2" -o /dev/null
}
container() { # service -> container name of this project
  curl -sf --unix-socket "$SOCK" -G "http://localhost/v1.41/containers/json" \
    --data-urlencode "filters={\"label\":[\"com.docker.compose.project=$LOADTEST_PROJECT\",\"com.docker.compose.service=$1\"]}" |
    python3 -c 'import json,sys; c=json.load(sys.stdin); print(c[0]["Names"][0].lstrip("/") if c else "")'
}

SAMPLES="$RAW/soak-rss.csv"
FAULTS="$RAW/soak-faults.csv"
echo "t_s,rss_kb" >"$SAMPLES"
echo "t_s,fault" >"$FAULTS"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  db=$(container db 2>/dev/null || true)
  [ -n "$db" ] && engine POST "/containers/$db/unpause" 2>/dev/null || true
  "$LT" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "soak: $DURATION at $RATE/s, a fault every $FAULT_EVERY (project $LOADTEST_PROJECT)"
T0=$(date +%s)
"$LT" bench -s "$SC" -r soak -q >"$WORK/bench.out" 2>"$WORK/bench.err" &
LTPID=$!

# Memory of the loadtest process, every 10 s.
(
  while kill -0 "$LTPID" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$LTPID/status" 2>/dev/null || true)
    [ -n "$rss" ] && echo "$(($(date +%s) - T0)),$rss" >>"$SAMPLES"
    sleep 10
  done
) &
pids+=($!)

# Faults, once the load is running (the app answers), alternating restart and pause.
(
  until curl -sf "http://127.0.0.1:$LOADTEST_APP_PORT/health" >/dev/null 2>&1; do
    kill -0 "$LTPID" 2>/dev/null || exit 0
    sleep 1
  done
  n=0
  while sleep "$EVERY_S" && kill -0 "$LTPID" 2>/dev/null; do
    n=$((n + 1))
    if [ $((n % 2)) -eq 1 ]; then
      app=$(container app)
      echo "$(($(date +%s) - T0)),app restarted" >>"$FAULTS"
      engine POST "/containers/$app/restart?t=1" || echo "$(($(date +%s) - T0)),restart failed" >>"$FAULTS"
    else
      db=$(container db)
      echo "$(($(date +%s) - T0)),postgres paused ${PAUSE_S}s" >>"$FAULTS"
      engine POST "/containers/$db/pause" || echo "$(($(date +%s) - T0)),pause failed" >>"$FAULTS"
      sleep "$PAUSE_S"
      engine POST "/containers/$db/unpause" || true
    fi
  done
) &
pids+=($!)

set +e
wait "$LTPID"
rc=$?
set -e
WALL=$(($(date +%s) - T0))
say "loadtest bench exited $rc after ${WALL}s"
[ "$rc" -eq 0 ] || { tail -20 "$WORK/bench.err" >&2; }

python3 - "$LOADTEST_RESULTS_DIR/soak_soak.json" "$SAMPLES" "$FAULTS" "$OUT" "$rc" "$WALL" "$RATE" "$DUR_S" "$EVERY_S" "$PAUSE_S" <<'EOF'
import csv, json, os, statistics, sys
res, samples, faults, out, rc, wall, rate, dur, every, pause = sys.argv[1:]
rate, dur, wall = int(rate), int(dur), int(wall)
o = ["# Soak: one long run with faults", "",
     "Written by `bench/soak.sh`: the demo stack (`loadtest bench`: down -v, up, migrate, seed, run), a",
     f"constant-arrival-rate run of payment confirmations at {rate}/s for {dur} s, and a fault every {every} s,",
     f"alternating: the app container restarted, then Postgres paused for {pause} s. RSS of the loadtest",
     "process sampled every 10 s.", ""]
ok = True
if not os.path.exists(res):
    o += [f"**No result file** (`loadtest bench` exited {rc}).", ""]
    ok = False
    r = None
else:
    r = json.load(open(res))
m = r["metrics"] if r else {}
fl = list(csv.DictReader(open(faults)))
ss = [(int(x["t_s"]), int(x["rss_kb"])) for x in csv.DictReader(open(samples))]
if r:
    tl = r["timeline"]
    done = m["iterations"]["count"]
    dropped = m["dropped_iterations"]["count"]
    cut = m.get("interrupted_iterations", 0) or 0
    expected = rate * dur
    reqs = m["http_reqs"]["count"]
    failed = round(m["http_req_failed"]["rate"] * reqs)
    err_total = sum(e["count"] for e in r["errors"])
    seconds_with_failures = sum(1 for t in tl if t["failures"] > 0)
    o += ["| figure | value |", "|---|---:|",
          f"| exit code of `loadtest bench` | {rc} |",
          f"| result marked interrupted | {r['interrupted']} |",
          f"| run length (s) / planned | {r['duration_s']:.0f} / {dur} |",
          f"| timeline entries (one per second) | {len(tl)} |",
          f"| arrivals planned | {expected} |",
          f"| iterations done + dropped + cut | {done} + {dropped} + {cut} = {done + dropped + cut} |",
          f"| requests / failed | {reqs} / {failed} |",
          f"| failed: transport errors (in `errors`, {len(r['errors'])} groups) + a failing status | {err_total} + {failed - err_total} |",
          f"| seconds with failures | {seconds_with_failures} |",
          f"| faults injected | {len(fl)} |",
          f"| p50 / p95 / p99 (ms) | {m['http_req_duration']['med']:.1f} / {m['http_req_duration']['p95']:.1f} / {m['http_req_duration']['p99']:.1f} |"]
    steps = len(r["requests"])
    if r["interrupted"] or abs(done + dropped + cut - expected) > rate or len(tl) < dur - 2 or failed < err_total \
            or reqs < done * steps:
        ok = False
    o += ["", "Error groups:", ""] + [f"- {e['count']} x {e['error'][:160]}" for e in r["errors"][:12]] + [""]
# Memory: the load phase's first and last windows, after a settling part; and, because a stall makes the
# arrival-rate executor start VUs (each with its connection and buffers, kept to the end as k6 keeps them),
# the same once the busy VUs set their last record (the pool cannot have grown after it).
if len(ss) >= 12:
    load_start = wall - dur
    load = [s for s in ss if s[0] >= load_start]
    span = max(1, len(load))
    settle = max(1, span // 10)
    win = max(1, min(60, span // 5))
    early = [k for _, k in load[settle:settle + win]]
    late = [k for _, k in load[-win:]]
    if early and late:
        e, l = statistics.median(early), statistics.median(late)
        change = 100 * (l - e) / e
        o += [f"RSS: median {e / 1024:.1f} MiB early in the load (samples {settle}-{settle + win}), {l / 1024:.1f} MiB at the end "
              f"(last {win}): {change:+.1f}%; highest {max(k for _, k in ss) / 1024:.1f} MiB over {len(ss)} samples.", ""]
        held = abs(change) <= 10
        if r:
            best, last_peak = -1, 0
            for t in r["timeline"]:
                if t["vus"] > best:
                    best, last_peak = t["vus"], t["t"]
            after = [k for ts, k in load if ts >= load_start + last_peak + 30]
            if len(after) >= 2 * min(win, len(after) // 2) and len(after) >= 4:
                w2 = max(1, min(win, len(after) // 3))
                a0, a1 = statistics.median(after[:w2]), statistics.median(after[-w2:])
                c2 = 100 * (a1 - a0) / a0
                before = [k for ts, k in load if ts < load_start + last_peak - 5][-6:]
                grown = (a0 - statistics.median(before)) / 1024 if before else float("nan")
                o += [f"VUs: the pool grew to {m['vus_max']} during the stalls (busy VUs peaked at {best}, last new peak "
                      f"{last_peak} s into the load; RSS {grown:+.1f} MiB across it). From 30 s after that peak to the end: "
                      f"{a0 / 1024:.1f} -> {a1 / 1024:.1f} MiB ({c2:+.1f}%, medians of {w2} samples).", ""]
                calm = [k for ts, k in load if fl and ts < int(fl[0]["t_s"])]
                if calm:
                    c0 = statistics.median(calm)
                    o += [f"Before the first fault RSS was {c0 / 1024:.1f} MiB: the {(a1 - c0) / 1024:.1f} MiB more at the end is the "
                          f"pool's growth to {m['vus_max']} VUs, each kept with its connection (as k6 keeps its VUs), "
                          f"about {(a0 - c0) / max(1, m['vus_max']) :.0f} KiB a VU.", ""]
                held = held or abs(c2) <= 10
        if not held:
            ok = False
o += ["Faults (seconds from the start of `loadtest bench`): " + ", ".join(f"{f['t_s']} {f['fault']}" for f in fl), "",
      f"**{'Held' if ok else 'Did not hold'}**: " + ("results complete, every arrival accounted for, RSS within 10% once the VU pool stopped growing." if ok
      else "see the figures above."), ""]
open(out, "w").write("\n".join(o) + "\n")
print("\n".join(o))
sys.exit(0 if ok else 1)
EOF
