#!/usr/bin/env bash
# What pg_stat_statements costs the service: payment-confirm at full speed (VUS closed-loop users, DUR
# seconds a run) against two copies of the demo stack that differ only in the database's
# shared_preload_libraries: "on" is the demo's compose file (the library preloaded, as `ab` uses it),
# "off" adds bench/no-statements.yml (plain Postgres). Both stacks stay up; runs interleave, each round
# in the order on/off or off/on by turns, so drift of the shared machine falls on both. Per run: req/s
# and p95; the table gives the medians and the median over rounds of off/on within a round.
# The harness reads the statements only between trials, so this is the whole of sampling's cost to the
# database (the containers' cgroup files are read between trials too).
# Resumable: each run is appended to bench/results/raw/statements-cost.tsv as it finishes, done ones are
# skipped (delete the file to start over). Usage: bench/statements-cost.sh   ROUNDS (8), DUR (15), VUS (25).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ROUNDS=${ROUNDS:-8}
DUR=${DUR:-15}
VUS=${VUS:-25}
RAW="$HERE/results/raw/statements-cost.tsv"
OUT="$HERE/results/statements-cost.md"
WORK=$(mktemp -d)
cd "$ROOT"

# side -> its project and ports (none of the demo's defaults, so a stack left up is untouched)
port() { case "$1:$2" in on:app) echo 18581 ;; on:db) echo 15581 ;; on:push) echo 19581 ;; on:prom) echo 19582 ;;
  off:app) echo 18591 ;; off:db) echo 15591 ;; off:push) echo 19591 ;; off:prom) echo 19592 ;; esac; }
side_env() { # side -> env assignments for the harness
  local files=compose/docker-compose.yml
  [ "$1" = off ] && files="$files:bench/no-statements.yml"
  echo "LOADTEST_PROJECT=ltstmt-$1 LOADTEST_COMPOSE_FILE=$files LOADTEST_APP_PORT=$(port "$1" app)" \
    "LOADTEST_DB_PORT=$(port "$1" db) LOADTEST_PUSHGATEWAY_PORT=$(port "$1" push)" \
    "LOADTEST_PROMETHEUS_PORT=$(port "$1" prom) LOADTEST_PUSH_URL=http://127.0.0.1:$(port "$1" push)" \
    "LOADTEST_PROMETHEUS_URL=http://127.0.0.1:$(port "$1" prom) LOADTEST_RESULTS_DIR=$WORK/$1"
}
harness() { local side=$1; shift; env $(side_env "$side") target/release/loadtest "$@"; }
cleanup() {
  for s in on off; do harness "$s" down >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release -q -p loadtest -p demo
mkdir -p "$(dirname "$RAW")"
[ -f "$RAW" ] || printf 'round\tside\trps\tp95_ms\trequests\tpreloaded\n' > "$RAW"
for s in on off; do
  echo "statements-cost: bringing up the '$s' stack (full cycle of the health scenario)" >&2
  harness "$s" bench -s health -q >/dev/null
done
preloaded() { psql "postgres://demo:demo@127.0.0.1:$(port "$1" db)/demo" -Atc 'SHOW shared_preload_libraries'; }
[ "$(preloaded on)" = pg_stat_statements ] || { echo "the 'on' stack does not preload pg_stat_statements" >&2; exit 1; }
[ -z "$(preloaded off)" ] || { echo "the 'off' stack preloads '$(preloaded off)'" >&2; exit 1; }

one() { # round side
  local r=$1 s=$2
  if grep -q "^$r	$s	" "$RAW"; then return; fi
  harness "$s" run -s payment-confirm -t "http://127.0.0.1:$(port "$s" app)" --vus "$VUS" \
    --duration "${DUR}s" -r "r$r-$s" -o "$WORK/$s" -q --no-html >/dev/null
  read -r rps p95 n < <(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(m["http_reqs"]["rate"], m["http_req_duration"]["p95"], m["http_reqs"]["count"])' \
    "$WORK/$s/r$r-${s}_payment-confirm.json")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$s" "$rps" "$p95" "$n" "$(preloaded "$s")" >> "$RAW"
  echo "round $r $s: $rps req/s, p95 $p95 ms" >&2
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="on off"; else order="off on"; fi
  for s in $order; do one "$r" "$s"; done
done

python3 - "$RAW" "$OUT" "$VUS" "$DUR" <<'PY'
import csv, statistics, sys, os, datetime
raw, out, vus, dur = sys.argv[1:]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(r["round"], {})[r["side"]] = r
rounds = [v for v in by.values() if "on" in v and "off" in v]
med = lambda xs: statistics.median(xs) if xs else float("nan")
rps = {s: [float(v[s]["rps"]) for v in rounds] for s in ("on", "off")}
p95 = {s: [float(v[s]["p95_ms"]) for v in rounds] for s in ("on", "off")}
ratio = [float(v["on"]["rps"]) / float(v["off"]["rps"]) for v in rounds]
p95r = [float(v["on"]["p95_ms"]) / float(v["off"]["p95_ms"]) for v in rounds]
with open(out, "w") as f:
    f.write("# What pg_stat_statements costs the demo service\n\n")
    f.write(f"bench/statements-cost.sh, {datetime.date.today()}, {os.cpu_count()} cores (shared machine): "
            f"payment-confirm, {vus} VUs closed-loop, {dur} s a run, {len(rounds)} rounds, order alternating; "
            "two demo stacks that differ only in `shared_preload_libraries`.\n\n")
    f.write("| | req/s (median) | p95 ms (median) |\n|---|---:|---:|\n")
    for s, name in (("off", "plain Postgres"), ("on", "pg_stat_statements preloaded")):
        f.write(f"| {name} | {med(rps[s]):.0f} | {med(p95[s]):.2f} |\n")
    lo, hi = (min(ratio), max(ratio)) if ratio else (float("nan"),) * 2
    f.write(f"\nWithin a round, on/off req/s: median **{med(ratio):.3f}** (range {lo:.3f}-{hi:.3f}); "
            f"p95 on/off median {med(p95r):.3f}.\n\nRaw runs: `bench/results/raw/statements-cost.tsv`.\n")
print(open(out).read())
PY
