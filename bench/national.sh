#!/usr/bin/env bash
# The national suite's primitives against OpenSSL 3.0 on the same machine, in one run:
# `openssl speed` (SM2 sign/verify, SM4-CTR) and govtrust's criterion benchmarks
# (kms/benches/national.rs: SM2 sign/verify through the kms's national module, SM4-GCM seal of
# 16 KiB), alternating round by round, then the ratios against the targets: SM2 sign and verify
# >= 1.5x OpenSSL's rate, SM4-GCM >= 1x OpenSSL's SM4-CTR throughput (16 KiB blocks).
#
#   bench/national.sh [--rounds 3] [--seconds 3]
#
# Both run single-threaded. This machine's second core comes and goes, so only ratios within a
# round count; the median of the rounds' ratios is the verdict.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=3
seconds=3
while (($#)); do
  case $1 in
    --rounds) rounds=$2 ;;
    --seconds) seconds=$2 ;;
    *) echo "usage: bench/national.sh [--rounds N] [--seconds S]" >&2; exit 2 ;;
  esac
  shift 2
done
command -v openssl >/dev/null || { echo "missing: openssl" >&2; exit 1; }

cd "$root"
cargo bench -q -p govtrust-kms --bench national --no-run >/dev/null 2>&1 ||
  cargo bench -p govtrust-kms --bench national --no-run

results=$(mktemp)
trap 'rm -f "$results"' EXIT

# openssl_speed ROUND: appends "ROUND openssl sm2-sign|sm2-verify|sm4 VALUE" (ops/s, bytes/s).
openssl_speed() {
  local round=$1 line
  line=$(openssl speed -elapsed -seconds "$seconds" sm2 2>/dev/null | grep 'SM2 (CurveSM2)')
  # "256 bits SM2 (CurveSM2)   0.0004s   0.0004s   2470.5   2768.0"
  awk -v r="$round" '{print r, "openssl sm2-sign", $(NF-1); print r, "openssl sm2-verify", $NF}' \
    <<<"$line" >>"$results"
  line=$(openssl speed -elapsed -seconds "$seconds" -bytes 16384 -evp sm4-ctr 2>/dev/null |
    grep '^SM4-CTR')
  # "SM4-CTR  102776.83k": thousands of bytes per second.
  awk -v r="$round" '{v=$NF; sub(/k$/, "", v); print r, "openssl sm4", v * 1000}' \
    <<<"$line" >>"$results"
}

# govtrust_speed ROUND: the same from criterion's bencher output (ns per iteration).
govtrust_speed() {
  local round=$1
  cargo bench -q -p govtrust-kms --bench national -- --warm-up-time 1 \
    --measurement-time "$seconds" --output-format bencher 'sm2/sign|sm2/verify|sm4-gcm' \
    2>/dev/null |
    awk -v r="$round" '
      /^test / {
        name = $2; ns = $5; gsub(/,/, "", ns)
        if (name == "sm2/sign") print r, "govtrust sm2-sign", 1e9 / ns
        else if (name == "sm2/verify") print r, "govtrust sm2-verify", 1e9 / ns
        else if (name ~ /sm4-gcm/) print r, "govtrust sm4", 16384 * 1e9 / ns
      }' >>"$results"
}

for ((round = 1; round <= rounds; round++)); do
  if ((round % 2)); then
    openssl_speed "$round"
    govtrust_speed "$round"
  else
    govtrust_speed "$round"
    openssl_speed "$round"
  fi
done

awk -v rounds="$rounds" '
  { value[$1, $2, $3] = $4 }
  function median(list, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
      if (list[j] < list[i]) { t = list[i]; list[i] = list[j]; list[j] = t }
    return n % 2 ? list[(n + 1) / 2] : (list[n / 2] + list[n / 2 + 1]) / 2
  }
  END {
    printf "%-6s %-12s %14s %14s %8s\n", "round", "what", "openssl", "govtrust", "ratio"
    split("sm2-sign sm2-verify sm4", whats, " ")
    for (w = 1; w <= 3; w++) {
      what = whats[w]
      for (r = 1; r <= rounds; r++) {
        o = value[r, "openssl", what]; g = value[r, "govtrust", what]
        ratio[r] = o > 0 ? g / o : 0
        unit = what == "sm4" ? "MB/s" : "ops/s"
        scale = what == "sm4" ? 1e6 : 1
        printf "%-6d %-12s %9.1f %-4s %9.1f %-4s %8.2f\n", r, what, o / scale, unit, g / scale, unit, ratio[r]
      }
      m = median(ratio, rounds)
      target = what == "sm4" ? 1.0 : 1.5
      verdict[w] = sprintf("%s: median ratio %.2f (target >= %.1f: %s)", what, m, target, m >= target ? "met" : "MISSED")
    }
    for (w = 1; w <= 3; w++) print verdict[w]
  }' "$results"
