#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60), one after another, from seed
# corpora made fresh from real inputs. Prints executions and findings per target; exits
# non-zero if any target crashed (the inputs are in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh [SECONDS]
#
# Needs a nightly toolchain (FUZZ_TOOLCHAIN, default nightly), cargo-fuzz (`cargo install
# cargo-fuzz`) and the openssl CLI. Not part of CI: see fuzz/README.md.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac
fuzz="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$fuzz")"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
targets=(csr share_file ciphertext wrapped_key unwrapped_material ocsp_request)
# The fixture system of govtrust_ca::fuzzing.
system=ledger
dns=ledger.finance.gov.example
spiffe=spiffe://gov.example/org/finance/sys/ledger

# Seeds for the csr target: requests made by openssl, accepted ones and refused ones.
csr_seeds() {
	local out="$fuzz/corpus/csr" work
	work="$(mktemp -d)"
	mkdir -p "$out"
	local accepted="subjectAltName=DNS:$dns,URI:$spiffe"
	request p256.pem "$accepted" -newkey ec -pkeyopt ec_paramgen_curve:P-256
	request p256.der "$accepted" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -outform DER
	request p384.der "$accepted" -newkey ec -pkeyopt ec_paramgen_curve:P-384 -outform DER
	request ed25519.der "$accepted" -newkey ed25519 -outform DER
	request rsa2048.der "$accepted" -newkey rsa:2048 -outform DER
	request foreign-name.der "subjectAltName=DNS:other.example" -newkey ed25519 -outform DER
	request sha512.der "$accepted" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha512 -outform DER
	request rsa1024.der "$accepted" -newkey rsa:1024 -outform DER
	rm -rf "$work"
}

# request FILE EXTENSION OPENSSL-ARGS...: one openssl-made request for the fixture system,
# written to $out (the caller's), its key to $work.
request() {
	local file="$1" extension="$2"
	shift 2
	openssl req -new -nodes -keyout "$work/key.pem" -subj "/CN=$system" -addext "$extension" \
		"$@" -out "$out/seed-$file" 2>"$work/openssl.log" ||
		{ cat "$work/openssl.log" >&2 && return 1; }
}

# Seeds for the ocsp_request target: requests made by openssl for a CA of its own (SHA-1 and
# SHA-256 CertIDs, with and without a nonce, for one certificate and for two).
ocsp_seeds() {
	local out="$fuzz/corpus/ocsp_request" work
	work="$(mktemp -d)"
	mkdir -p "$out"
	(
		cd "$work"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
			-out ca.pem -subj /CN=ca -days 2
		for serial in 01aa 7f01; do
			openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
				-keyout "$serial.key" -subj "/CN=$serial" -out "$serial.csr"
			openssl x509 -req -in "$serial.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$serial" \
				-days 2 -out "$serial.pem"
		done
		openssl ocsp -issuer ca.pem -cert 01aa.pem -reqout "$out/seed-sha1-nonce.der"
		openssl ocsp -issuer ca.pem -cert 01aa.pem -no_nonce -reqout "$out/seed-sha1.der"
		openssl ocsp -sha256 -issuer ca.pem -cert 01aa.pem -reqout "$out/seed-sha256-nonce.der"
		openssl ocsp -issuer ca.pem -cert 01aa.pem -cert 7f01.pem -reqout "$out/seed-two.der"
		openssl ocsp -sha256 -issuer ca.pem -cert 01aa.pem -cert 7f01.pem -no_nonce \
			-reqout "$out/seed-two-sha256.der"
	) >"$work/openssl.log" 2>&1 || { cat "$work/openssl.log" >&2 && return 1; }
	rm -rf "$work"
}

# Seeds for the kms targets: share files, ciphertexts and wrapped keys made by the kms itself.
kms_seeds() {
	cargo run --locked --quiet --manifest-path "$root/Cargo.toml" -p govtrust-kms \
		--example fuzz_seeds -- "$fuzz/corpus"
}

# fuzz_cargo ARGS...: cargo-fuzz with its own target directory, whatever the caller exported.
fuzz_cargo() {
	(cd "$fuzz" && CARGO_TARGET_DIR="$fuzz/target" cargo "+$toolchain" fuzz "$@")
}

# run_target TARGET: runs one target; prints its line of the summary; true unless it crashed.
run_target() {
	local target="$1" log="$fuzz/logs/$1.log" artifacts="$fuzz/artifacts/$1"
	mkdir -p "$artifacts" "$fuzz/logs"
	local before status=0
	before="$(find "$artifacts" -type f | wc -l)"
	fuzz_cargo run --debug-assertions "$target" "corpus/$target" -- \
		-max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
		>"$log" 2>&1 || status=$?
	local executions corpus findings
	executions="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
	[ -n "$executions" ] || executions="$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#' || true)"
	corpus="$(find "$fuzz/corpus/$target" -type f | wc -l)"
	findings=$(($(find "$artifacts" -type f | wc -l) - before))
	printf '%-20s %12s %8s %9s\n' "$target" "${executions:-?}" "$corpus" "$findings"
	if [ "$status" -ne 0 ] || [ "$findings" -ne 0 ]; then
		grep -E '^(==[0-9]+==|SUMMARY|thread .* panicked)|artifact_prefix|Test unit written' "$log" |
			sed 's/^/    /' >&2 || true
		return 1
	fi
}

mkdir -p "$fuzz/logs"
csr_seeds
ocsp_seeds
kms_seeds
echo "building the fuzz targets ($toolchain)..."
fuzz_cargo build --debug-assertions >"$fuzz/logs/build.log" 2>&1 || {
	cat "$fuzz/logs/build.log" >&2
	exit 1
}
printf '%-20s %12s %8s %9s\n' target executions corpus findings
failed=0
for target in "${targets[@]}"; do
	run_target "$target" || failed=1
done
if [ "$failed" -ne 0 ]; then
	echo "crashes found: see the logs in fuzz/logs/ and the inputs in fuzz/artifacts/" >&2
fi
exit "$failed"
