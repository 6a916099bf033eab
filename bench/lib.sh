# Helpers shared by bench/compare.sh and bench/ocsp.sh (sourced, not run).
#
# Servers started with start_server are stopped (by pid) when the sourcing script exits; CPU
# time is read from /proc/<pid>/stat (utime + stime, in USER_HZ = 100 ticks per second).

bench_pids=()

# Stops every server this script started, by pid.
stop_servers() {
  local pid
  for pid in "${bench_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${bench_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  bench_pids=()
}

# start_server LOG COMMAND...: starts COMMAND in the background with its output in LOG; the
# pid is in $started_pid.
start_server() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  started_pid=$!
  bench_pids+=("$started_pid")
}

# Fails with an install hint unless every named command exists.
need_tools() {
  local tool missing=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    echo "missing: ${missing[*]} (Debian: apt-get install -y golang-cfssl wrk sqlite3 openssl jq)" >&2
    exit 1
  fi
}

# Fails unless the TCP port is free on 127.0.0.1.
need_free_port() {
  if ss -ltnH "sport = :$1" | grep -q .; then
    echo "port $1 is in use: choose another with the environment variable named in $0" >&2
    exit 1
  fi
}

# CPU ticks (1/100 s) used so far by process PID: "user system".
cpu_ticks() {
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  awk '{ print $12, $13 }' <<<"$stat"
}

# wait_until SECONDS COMMAND...: retries COMMAND every 0.2 s until it succeeds.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "gave up waiting for: $*" >&2
      return 1
    fi
    sleep 0.2
  done
}

# run_wrk NAME SERVER_PID SECONDS CONNECTIONS URL MODE FILE: one wrk run against URL (a
# 1-second unmeasured warm-up first, unless WRK_WARMUP=0); prints one result line:
#   NAME ops ops/s p50_ms p99_ms server_us_per_op server_kernel_percent client_us_per_op errors
run_wrk() {
  local name=$1 pid=$2 seconds=$3 connections=$4 url=$5 mode=$6 file=$7
  local script
  script="$(dirname "${BASH_SOURCE[0]}")/wrk/requests.lua"
  if [[ ${WRK_WARMUP:-1} != 0 ]]; then
    wrk -t2 -c"$connections" -d1s -s "$script" "$url" -- "$mode" "$file" >/dev/null
  fi
  local before after out cpu
  before=$(cpu_ticks "$pid")
  cpu=$({ TIMEFORMAT='%U %S'; time wrk -t2 -c"$connections" -d"${seconds}s" -s "$script" \
    "$url" -- "$mode" "$file" >"$bench_work/wrk.out"; } 2>&1)
  after=$(cpu_ticks "$pid")
  out=$(grep '^wrk-summary' "$bench_work/wrk.out")
  echo "$name $out" >>"$bench_work/wrk-summaries"
  awk -v name="$name" -v before="$before" -v after="$after" -v cpu="$cpu" '
    {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      split(cpu, c, " "); split(before, b, " "); split(after, a, " ")
      user = a[1] - b[1]; sys = a[2] - b[2]; ticks = user + sys
      n = v["requests"]; errors = v["non2xx"] + v["connect"] + v["read"] + v["write"] + v["timeout"]
      printf "%s %d %.1f %.3f %.3f %.1f %.0f %.1f %d\n", name, n, n / (v["duration_us"] / 1e6),
        v["p50_us"] / 1000, v["p99_us"] / 1000, ticks * 1e4 / n, ticks ? 100 * sys / ticks : 0,
        (c[1] + c[2]) * 1e6 / n, errors
    }' <<<"$out"
}

# Prints the wrk runs that had errors (non-2xx, connect, read, write, timeout), if any.
report_wrk_errors() {
  grep -v 'non2xx=0 connect=0 read=0 write=0 timeout=0' "$bench_work/wrk-summaries" |
    sed 's/^/wrk errors: /' || true
}

# awk functions the target reports share: verdict(ok) and median(array, count).
# shellcheck disable=SC2034 # used by the sourcing scripts
awk_targets='
  function verdict(ok) { return ok ? "met" : "MISSED" }
  function median(a, k,   i, j, t) {
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
'
