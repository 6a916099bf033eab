#!/usr/bin/env bash
# Benchmarks govtrust end to end: builds both binaries in release mode, starts a fresh
# development server on a temporary data directory, runs govtrust-bench against it, and stops
# the server. Arguments go to govtrust-bench, e.g. `bench/run.sh --seconds 5 --ops health,encrypt`.
# GOVTRUST_BENCH_PORT picks the port (default 8443).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port="${GOVTRUST_BENCH_PORT:-8443}"
work="$(mktemp -d "${TMPDIR:-/tmp}/gt-bench.XXXXXX")"
server_pid=""

cleanup() {
  local status=$?
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ $status -ne 0 && -f "$work/server.log" ]]; then
    echo "--- last lines of the server log ---" >&2
    tail -n 20 "$work/server.log" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$root"
cargo build --release -p govtrust -p govtrust-bench

target/release/govtrust serve --dev --data "$work/data" --listen "127.0.0.1:$port" --http-listen 127.0.0.1:0 \
  >"$work/server.log" 2>&1 &
server_pid=$!

# --wait-seconds: the bench retries until the dev server has written its credentials, answers
# the health check and is unsealed.
target/release/govtrust-bench \
  --server "https://127.0.0.1:$port" \
  --data "$work/data" \
  --clients 32 \
  --wait-seconds 60 \
  --server-pid "$server_pid" \
  "$@"
