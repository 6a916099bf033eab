#!/usr/bin/env bash
# Compares govtrust's OCSP responder (pre-signed responses served from memory on its HTTP
# port) with the reference responder `openssl ocsp -port`, on the same certificates, in one
# run: wrk with 32 connections sends RFC 6960 GET requests (the same few requests, cycled) to
# each in turn, alternating round by round, and prints rates, p50/p99, server CPU per answer
# and the ratio against the target (>= 10x openssl's rate, p99 under 5 ms).
#
#   bench/ocsp.sh [--seconds 5] [--rounds 4] [--certificates 4]
#
# govtrust: `govtrust serve --dev`; its certificates are issued through the CLI (register +
# enroll), and the first GET of each request signs the response that later ones are served
# from. openssl: `openssl ocsp -port` with an index.txt (openssl ca format) listing the same
# certificates as valid, the same issuing CA, and a P-256 responder certificate of its own (it
# cannot sign as govtrust's delegated responder: that key is in govtrust's kms; the signing
# cost is the same). openssl signs every answer anew and serves one connection at a time,
# closing it after each answer (HTTP/1.0); it is started anew for each run because it spins
# for ever on a connection closed before sending a request, which every wrk run leaves
# behind at its end. Ports: GOVTRUST_OCSP_PORT (18543, gRPC), OPENSSL_OCSP_PORT (18900).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

seconds=5
rounds=4
certificates=4
while (($#)); do
  case $1 in
    --seconds) seconds=$2 ;;
    --rounds) rounds=$2 ;;
    --certificates) certificates=$2 ;;
    *) echo "usage: $0 [--seconds S] [--rounds R] [--certificates N]" >&2; exit 2 ;;
  esac
  shift 2
done
connections=32
gt_port=${GOVTRUST_OCSP_PORT:-18543}
ossl_port=${OPENSSL_OCSP_PORT:-18900}
need_tools wrk openssl curl ss
for port in "$gt_port" "$ossl_port"; do need_free_port "$port"; done

bench_work="$(mktemp -d "${TMPDIR:-/tmp}/gt-ocsp.XXXXXX")"
cleanup() {
  stop_servers
  rm -rf "$bench_work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$root"
cargo build --release -p govtrust
govtrust="${CARGO_TARGET_DIR:-$root/target}/release/govtrust"
data="$bench_work/data"

echo "== starting govtrust serve --dev" >&2
start_server "$bench_work/govtrust.log" "$govtrust" serve --dev --data "$data" \
  --listen "127.0.0.1:$gt_port" --http-listen 127.0.0.1:0
gt_pid=$started_pid
wait_until 60 grep -q '^govtrust listening' "$bench_work/govtrust.log"
http=$(sed -n 's/^HTTP for relying parties on \(http:\/\/[^ ]*\).*/\1/p' "$bench_work/govtrust.log")
export GOVTRUST_SERVER="https://127.0.0.1:$gt_port"

# base64 of a DER file, URL-encoded (RFC 6960 Appendix A.1).
url_base64() { base64 -w0 "$1" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g'; }

echo "== issuing $certificates certificates and building their OCSP requests" >&2
: >"$bench_work/index.txt"
: >"$bench_work/govtrust-paths"
: >"$bench_work/openssl-paths"
for ((i = 1; i <= certificates; i++)); do
  system="$bench_work/system-$i"
  token=$("$govtrust" system register --identity "$data/admin/system-admin" --ca "$data/ca/root.pem" \
    --name "ocsp-bench-$i" --org bench --level 2 --network intranet --json |
    sed -n 's/.*"enrollment_token": "\(.*\)".*/\1/p')
  GOVTRUST_TOKEN="$token" "$govtrust" enroll --ca "$data/ca/root.pem" --out "$system" >/dev/null
  openssl x509 -in "$system/chain.pem" -out "$bench_work/issuer.pem"
  openssl ocsp -issuer "$bench_work/issuer.pem" -cert "$system/cert.pem" -no_nonce \
    -reqout "$system/request.der"
  request=$(url_base64 "$system/request.der")
  echo "/ocsp/$request" >>"$bench_work/govtrust-paths"
  echo "/$request" >>"$bench_work/openssl-paths"
  serial=$(openssl x509 -in "$system/cert.pem" -noout -serial | cut -d= -f2)
  expiry=$(date -u -d "$(openssl x509 -in "$system/cert.pem" -noout -enddate | cut -d= -f2)" +%y%m%d%H%M%SZ)
  subject=$(openssl x509 -in "$system/cert.pem" -noout -subject -nameopt compat | sed 's/^subject=//')
  printf 'V\t%s\t\t%s\tunknown\t%s\n' "$expiry" "$serial" "$subject" >>"$bench_work/index.txt"
done

# The reference responder's own signing certificate (P-256, like govtrust's responder key).
openssl ecparam -genkey -name prime256v1 -noout -out "$bench_work/responder-key.pem"
openssl req -x509 -new -key "$bench_work/responder-key.pem" -sha256 -days 30 \
  -subj "/CN=openssl bench OCSP responder" -addext "extendedKeyUsage=OCSPSigning" \
  -out "$bench_work/responder.pem" 2>/dev/null

start_openssl() {
  start_server "$bench_work/openssl.log" openssl ocsp -port "$ossl_port" \
    -index "$bench_work/index.txt" -CA "$bench_work/issuer.pem" \
    -rsigner "$bench_work/responder.pem" -rkey "$bench_work/responder-key.pem" -ndays 1
  ossl_pid=$started_pid
  wait_until 10 ss -ltnH "sport = :$ossl_port"
}

stop_openssl() {
  kill "$ossl_pid" 2>/dev/null || true
  wait "$ossl_pid" 2>/dev/null || true
}

# Each responder answers "good" for the first certificate (govtrust's answer also verifies
# against its CA bundle); this first GET also makes govtrust sign the response it then serves.
check_good() {
  local name=$1 url=$2 answer="$bench_work/answer-$1.der"
  curl -sf -o "$answer" "$url"
  if ! openssl ocsp -respin "$answer" -resp_text -noverify 2>/dev/null | grep -q 'Cert Status: good'; then
    echo "$name did not answer good for $url" >&2
    exit 1
  fi
}
while read -r path; do check_good govtrust "$http$path"; done <"$bench_work/govtrust-paths"
openssl ocsp -respin "$bench_work/answer-govtrust.der" -CAfile "$data/ca/bundle.pem" \
  -issuer "$bench_work/issuer.pem" -cert "$bench_work/system-$certificates/cert.pem" >/dev/null 2>&1 ||
  { echo "govtrust's OCSP answer does not verify" >&2; exit 1; }
start_openssl
check_good openssl "http://127.0.0.1:$ossl_port$(head -n 1 "$bench_work/openssl-paths")"
stop_openssl

results="$bench_work/results"
: >"$results"
run_govtrust() {
  printf '%s\t' "$1" >>"$results"
  run_wrk govtrust "$gt_pid" "$seconds" "$connections" "$http" get "$bench_work/govtrust-paths" |
    tr ' ' '\t' >>"$results"
}
run_openssl() {
  start_openssl
  printf '%s\t' "$1" >>"$results"
  WRK_WARMUP=0 run_wrk openssl "$ossl_pid" "$seconds" "$connections" "http://127.0.0.1:$ossl_port" \
    get "$bench_work/openssl-paths" | tr ' ' '\t' >>"$results"
  stop_openssl
}

for ((round = 1; round <= rounds; round++)); do
  peers=(govtrust openssl)
  if ((round % 2 == 0)); then peers=(openssl govtrust); fi
  for peer in "${peers[@]}"; do
    echo "== round $round: $peer ($seconds s, $connections connections)" >&2
    "run_$peer" "$round"
  done
done
stop_servers

echo
printf '%-5s %-9s %9s %10s %8s %8s %13s %7s %13s %6s\n' round responder answers answers/s "p50 ms" \
  "p99 ms" "server µs/op" kernel "client µs/op" errors
sort -s -k1,1n "$results" | awk -F'\t' '{
  printf "%-5s %-9s %9d %10.1f %8.2f %8.2f %13.1f %6.0f%% %13.1f %6d\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }'
echo
echo "server µs/op: the responder's utime+stime over the run / answers (kernel: the stime share);"
echo "client µs/op: wrk's."
report_wrk_errors
echo
awk -F'\t' "$awk_targets"'
  { ops[$1, $2] = $4; p99[$1, $2] = $6; cpu[$1, $2] = $7; if ($1 > n) n = $1 }
  END {
    print "Targets, per round:"
    for (r = 1; r <= n; r++) {
      if (ops[r, "openssl"] == 0 || ops[r, "govtrust"] == 0) continue
      m++; ratio[m] = ops[r, "govtrust"] / ops[r, "openssl"]; p[m] = p99[r, "govtrust"]
      c[m] = cpu[r, "openssl"] / cpu[r, "govtrust"]
      printf "  round %d: govtrust/openssl %.1f (>= 10 %s), govtrust p99 %.2f ms (< 5 %s), server CPU per answer openssl/govtrust %.1f\n",
        r, ratio[m], verdict(ratio[m] >= 10), p[m], verdict(p[m] < 5), c[m]
    }
    if (!m) exit
    a = median(ratio, m); b = median(p, m)
    printf "Median of %d rounds: govtrust/openssl %.1f (>= 10 %s), govtrust p99 %.2f ms (< 5 %s), server CPU per answer openssl/govtrust %.1f\n",
      m, a, verdict(a >= 10), b, verdict(b < 5), median(c, m)
  }' "$results"
