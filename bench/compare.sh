#!/usr/bin/env bash
# Compares govtrust issuance with `cfssl serve` on this machine, in one run: the same P-256
# CSRs (pre-generated once), the same ECDSA P-256 CA key type, 32 concurrent clients, a fixed
# time each, alternating the peers round by round (govtrust, cfssl, cfssl+SQLite, then the
# reverse order, ...), so only ratios measured back to back are compared.
#
#   bench/compare.sh [--seconds 5] [--rounds 4] [--csrs 20000] [--enroll-count N]
#
# - govtrust: `govtrust serve --dev` (redb, durable commits, audit log on), its own P-256
#   issuing CA; govtrust-bench measures Enroll (one registered system and one-time token each;
#   registering is setup, not measured) and then Renew over mTLS (each client its own system,
#   renewing again and again), with its own and the server's CPU over each measured window.
# - cfssl: `cfssl serve` with a P-256 CA made here, without storage (its default) and with its
#   SQLite certificate database (-db-config); wrk POSTs the sign requests (bench/wrk).
#
# Prints ops/s, p50, p99, server CPU per issuance and client CPU per call side by side, and
# the ratios against the targets, per round and their median: another tenant's load on this
# machine comes and goes within a minute, so short windows in several rounds beat one long
# one. The server CPU per issuance (from /proc) is the steadier comparison. Ports: GOVTRUST_COMPARE_PORT (18443), CFSSL_PORT (18888),
# CFSSL_DB_PORT (18889). Needs cfssl, wrk, sqlite3, openssl and jq (Debian: golang-cfssl wrk
# sqlite3 openssl jq).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

seconds=5
rounds=4
csr_count=20000
enroll_count=""
clients=32
while (($#)); do
  case $1 in
    --seconds) seconds=$2 ;;
    --rounds) rounds=$2 ;;
    --csrs) csr_count=$2 ;;
    --enroll-count) enroll_count=$2 ;;
    *) echo "usage: $0 [--seconds S] [--rounds R] [--csrs N] [--enroll-count N]" >&2; exit 2 ;;
  esac
  shift 2
done
# Enroll stops after --seconds; register enough systems that it never runs out first.
enroll_count=${enroll_count:-$((seconds * 7000))}

gt_port=${GOVTRUST_COMPARE_PORT:-18443}
cf_port=${CFSSL_PORT:-18888}
cfdb_port=${CFSSL_DB_PORT:-18889}
need_tools cfssl wrk sqlite3 openssl jq ss
for port in "$gt_port" "$cf_port" "$cfdb_port"; do need_free_port "$port"; done

bench_work="$(mktemp -d "${TMPDIR:-/tmp}/gt-compare.XXXXXX")"
cleanup() {
  stop_servers
  rm -rf "$bench_work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$root"
cargo build --release -p govtrust -p govtrust-bench
bin="${CARGO_TARGET_DIR:-$root/target}/release"

echo "== generating $csr_count P-256 CSRs (once, for every peer)" >&2
"$bin/govtrust-csrs" --count "$csr_count" --out "$bench_work/csrs" >&2

# cfssl's CA: a P-256 key and a self-signed CA certificate; a profile like govtrust's leaves.
cf="$bench_work/cfssl"
mkdir -p "$cf"
openssl ecparam -genkey -name prime256v1 -noout -out "$cf/ca-key.pem"
openssl req -x509 -new -key "$cf/ca-key.pem" -sha256 -days 3650 -subj "/CN=cfssl bench CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$cf/ca.pem" 2>/dev/null
cat >"$cf/config.json" <<'JSON'
{"signing": {"default": {"expiry": "8760h",
  "usages": ["digital signature", "key agreement", "client auth", "server auth"]}}}
JSON
# cfssl's certificate database: the schema of its SQLite migration (certdb/sqlite), which the
# Debian package does not ship; SQLite's defaults (rollback journal, synchronous=FULL).
sqlite3 "$cf/certs.db" <"$root/bench/cfssl/certdb-sqlite.sql"
printf '{"driver": "sqlite3", "data_source": "%s"}\n' "$cf/certs.db" >"$cf/db.json"

echo "== starting govtrust serve --dev, cfssl serve, cfssl serve -db-config" >&2
start_server "$bench_work/govtrust.log" "$bin/govtrust" serve --dev --data "$bench_work/gt" \
  --listen "127.0.0.1:$gt_port" --http-listen 127.0.0.1:0
gt_pid=$started_pid
# -loglevel 2: no log line per request (cfssl's fastest setting).
cfssl_args=(serve -address 127.0.0.1 -ca "$cf/ca.pem" -ca-key "$cf/ca-key.pem"
  -config "$cf/config.json" -loglevel 2)
start_server "$bench_work/cfssl.log" cfssl "${cfssl_args[@]}" -port "$cf_port"
cf_pid=$started_pid
start_server "$bench_work/cfssl-db.log" cfssl "${cfssl_args[@]}" -port "$cfdb_port" \
  -db-config "$cf/db.json"
cfdb_pid=$started_pid

first_body="$bench_work/first-body.json"
head -n 1 "$bench_work/csrs/cfssl-sign.jsonl" >"$first_body"
cfssl_signs() {
  curl -sf -X POST --data @"$first_body" "http://127.0.0.1:$1/api/v1/cfssl/sign" |
    grep -q '"success":true'
}
wait_until 30 cfssl_signs "$cf_port"
wait_until 30 cfssl_signs "$cfdb_port"

results="$bench_work/results"
: >"$results"

run_govtrust() {
  local round=$1 json="$bench_work/govtrust-$1.json"
  "$bin/govtrust-bench" --server "https://127.0.0.1:$gt_port" --data "$bench_work/gt" \
    --wait-seconds 60 --clients "$clients" --ops enroll,renew --seconds "$seconds" \
    --warmup-seconds 1 --enroll-count "$enroll_count" --server-pid "$gt_pid" \
    --csrs "$bench_work/csrs/csrs.pem" --keys "$bench_work/csrs/keys.pem" --json >"$json"
  jq -r --arg round "$round" '.operations[] | [$round, "govtrust-" + .op, .ops, .ops_per_sec,
    .p50_ms, .p99_ms, (.server_cpu_us_per_op // 0),
    (if (.server_cpu_seconds // 0) > 0 then 100 * .server_system_cpu_seconds / .server_cpu_seconds else 0 end),
    (.client_cpu_us_per_op // 0), (if .error then 1 else 0 end)] | @tsv' "$json" >>"$results"
}

run_cfssl() {
  local round=$1 name=$2 pid=$3 port=$4
  printf '%s\t' "$round" >>"$results"
  run_wrk "$name" "$pid" "$seconds" "$clients" "http://127.0.0.1:$port/api/v1/cfssl/sign" \
    post "$bench_work/csrs/cfssl-sign.jsonl" | tr ' ' '\t' >>"$results"
}

for ((round = 1; round <= rounds; round++)); do
  peers=(govtrust cfssl cfssl-sqlite)
  if ((round % 2 == 0)); then peers=(cfssl-sqlite cfssl govtrust); fi
  for peer in "${peers[@]}"; do
    echo "== round $round: $peer ($seconds s, $clients clients)" >&2
    case $peer in
      govtrust) run_govtrust "$round" ;;
      cfssl) run_cfssl "$round" cfssl "$cf_pid" "$cf_port" ;;
      cfssl-sqlite) run_cfssl "$round" cfssl-sqlite "$cfdb_pid" "$cfdb_port" ;;
    esac
  done
done

stop_servers
stored=$(sqlite3 "$cf/certs.db" 'select count(*) from certificates')

echo
printf '%-5s %-16s %9s %9s %8s %8s %13s %7s %13s %6s\n' round peer ops ops/s "p50 ms" "p99 ms" \
  "server µs/op" kernel "client µs/op" errors
sort -s -k1,1n "$results" | awk -F'\t' '{
  printf "%-5s %-16s %9d %9.1f %8.2f %8.2f %13.1f %6.0f%% %13.1f %6d\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }'
echo
echo "cfssl+SQLite stored $stored certificates (warm-ups included)."
report_wrk_errors
echo "server µs/op: the server's utime+stime over the measured window / calls (kernel: the stime"
echo "share); client µs/op: the load generator's (govtrust-bench for govtrust, wrk for cfssl)."
echo
awk -F'\t' "$awk_targets"'
  { ops[$1, $2] = $4; p99[$1, $2] = $6; cpu[$1, $2] = $7; if ($1 > n) n = $1 }
  END {
    print "Targets, per round (ratios of rates measured back to back):"
    for (r = 1; r <= n; r++) {
      e = ops[r, "govtrust-enroll"]; w = ops[r, "govtrust-renew"]
      c = ops[r, "cfssl"]; s = ops[r, "cfssl-sqlite"]
      if (c == 0 || s == 0 || e == 0) continue
      m++; rc[m] = e / c; rs[m] = e / s; wc[m] = w / c; ws[m] = w / s
      ce[m] = cpu[r, "cfssl"] / cpu[r, "govtrust-enroll"]
      lower[m] = p99[r, "govtrust-enroll"] < p99[r, "cfssl"] && p99[r, "govtrust-enroll"] < p99[r, "cfssl-sqlite"]
      if (lower[m]) lows++
      printf "  round %d: enroll/cfssl %.2f (>= 1.5 %s), enroll/cfssl+SQLite %.1f (>= 15 %s); renew/cfssl %.2f, renew/cfssl+SQLite %.1f\n",
        r, e / c, verdict(e / c >= 1.5), e / s, verdict(e / s >= 15), w / c, w / s
      printf "           enroll p99 %.1f ms vs cfssl %.1f ms, cfssl+SQLite %.1f ms: lower than both %s; server CPU per issuance cfssl/govtrust %.2f\n",
        p99[r, "govtrust-enroll"], p99[r, "cfssl"], p99[r, "cfssl-sqlite"], verdict(lower[m]), ce[m]
    }
    if (!m) exit
    a = median(rc, m); b = median(rs, m)
    printf "Median of %d rounds: enroll/cfssl %.2f (>= 1.5 %s), enroll/cfssl+SQLite %.1f (>= 15 %s), renew/cfssl %.2f, renew/cfssl+SQLite %.1f;\n",
      m, a, verdict(a >= 1.5), b, verdict(b >= 15), median(wc, m), median(ws, m)
    printf "  enroll p99 lower than both in %d of %d rounds; server CPU per issuance cfssl/govtrust %.2f\n", lows, m, median(ce, m)
  }' "$results"
