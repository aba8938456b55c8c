#!/usr/bin/env bash
# Database reset benchmark: every reset strategy on a fresh demo stack at several data sizes,
# median of several rounds, with `recreate` (the whole stack down -v / up / migrate / seed) as the
# peer every other strategy is compared with. Writes bench/results/reset.md.
# Usage: bench/reset.sh [rounds] [sizes, e.g. 1000,10000,100000]
set -euo pipefail

ROUNDS=${1:-5}
SIZES=${2:-1000,10000,100000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
cd "$ROOT"

command -v mmdebstrap >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >/dev/null
cargo build --release -q -p loadtest -p demo
LT="$ROOT/target/release/loadtest"
$LT images --build -q >/dev/null

# A project of its own so a stack under use is left alone.
export LOADTEST_PROJECT=ltbench-reset LOADTEST_DB_PORT=${LOADTEST_DB_PORT:-5453} LOADTEST_APP_PORT=${LOADTEST_APP_PORT:-8093}
export LOADTEST_PUSHGATEWAY_PORT=${LOADTEST_PUSHGATEWAY_PORT:-9193} LOADTEST_PROMETHEUS_PORT=${LOADTEST_PROMETHEUS_PORT:-9194}
trap '$LT down >/dev/null 2>&1 || true' EXIT
$LT up --fresh -q >/dev/null
$LT migrate --database-url "postgres://demo:demo@127.0.0.1:$LOADTEST_DB_PORT/demo" >/dev/null
$LT db reset-bench --rows "$SIZES" --rounds "$ROUNDS" --recreate --out "$HERE/results/reset.md"
