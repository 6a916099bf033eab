#!/usr/bin/env bash
# Counts the instructions the server spends per call of one operation, with callgrind
# (repeatable whatever else the machine runs, unlike time): builds govtrust with line tables
# into target/prof/ (or $CARGO_TARGET_DIR/prof), runs `govtrust serve --dev` under callgrind, lets govtrust-bench prepare
# (register the systems, connect), zeroes the counters when the measured phase starts, dumps
# them when it ends, and prints the instructions per call and the top functions (inclusive
# and self). Kernel work (syscalls, fsync, networking) is not counted: callgrind sees user
# space only.
#
#   bench/profile.sh [enroll|renew] [N]
#
# enroll: N enrollments (default 2000); renew: renews for N seconds (default 60).
#
# The callgrind file is kept as profile-OP.callgrind in the current directory, for
# callgrind_annotate or kcachegrind. GOVTRUST_PROFILE_PORT picks the port (18643).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

op=${1:-enroll}
case $op in
  enroll) calls=${2:-2000} seconds=900 ;;
  renew) calls=100 seconds=${2:-60} ;;
  *) echo "usage: $0 [enroll|renew] [N]" >&2; exit 2 ;;
esac
port=${GOVTRUST_PROFILE_PORT:-18643}
out="$PWD/profile-$op.callgrind"
need_tools valgrind callgrind_control callgrind_annotate jq ss
need_free_port "$port"

bench_work="$(mktemp -d "${TMPDIR:-/tmp}/gt-profile.XXXXXX")"
cleanup() {
  stop_servers
  rm -rf "$bench_work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
CARGO_TARGET_DIR="$target/prof" CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  cargo build --release -p govtrust
cargo build --release -p govtrust-bench
bench="$target/release/govtrust-bench"

start_server "$bench_work/server.log" valgrind --tool=callgrind --callgrind-out-file="$bench_work/cg.%p" \
  "$target/prof/release/govtrust" serve --dev --data "$bench_work/data" \
  --listen "127.0.0.1:$port" --http-listen 127.0.0.1:0
server_pid=$started_pid

# Under callgrind the server is ~50x slower: long windows, no warm-up, a count for enroll.
"$bench" --server "https://127.0.0.1:$port" --data "$bench_work/data" --wait-seconds 600 \
  --ops "$op" --clients 32 --enroll-count "$calls" --seconds "$seconds" --warmup-seconds 0 \
  --server-pid "$server_pid" --json >"$bench_work/bench.json" 2>"$bench_work/bench.err" &
bench_pid=$!
# The measured phase starts when the bench says so ("enroll: N enrollments ...", "renew: 0 s
# warm-up ...").
marker="^$op: [0-9]"
[[ $op == renew ]] && marker="^renew: 0 s warm-up"
wait_until 900 grep -q "$marker" "$bench_work/bench.err"
callgrind_control -z "$server_pid" >/dev/null
echo "== counting from here ($op)" >&2
wait "$bench_pid" || true
callgrind_control -d "$server_pid" >/dev/null
sleep 1
dump=$(ls -t "$bench_work"/cg.*.* 2>/dev/null | head -n 1)
cp "$dump" "$out"
ops=$(jq '.operations[0].ops' "$bench_work/bench.json")
total=$(sed -n 's/^summary: //p; s/^totals: //p' "$out" | head -n 1 | awk '{ print $1 }')
echo
echo "$op: $ops calls, $total instructions in the server = $((total / ops)) per call"
echo "profile: $out"
echo
echo "-- inclusive, top 60 --"
callgrind_annotate --auto=no --inclusive=yes "$out" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n '3,62p' |
  cut -c1-200
echo
echo "-- what the top domain calls spend (callees of Ca::$op) --"
callgrind_annotate --auto=no --inclusive=yes --tree=calling --threshold=100 "$out" 2>/dev/null |
  awk -v f="enrollment.rs:govtrust_ca::Ca::$op" 'index($0, f) && / \* /{p=1} p{print} p && /^ *$/{exit}' |
  cut -c1-200
