-- wrk script for bench/compare.sh and bench/ocsp.sh: sends pre-built requests read from a
-- file, cycling through them, and prints one machine-readable summary line at the end.
--
--   wrk ... -s requests.lua URL -- post FILE   POST each line of FILE as a JSON body to URL's path
--   wrk ... -s requests.lua URL -- get FILE    GET each line of FILE as a path
--
-- Every request is formatted once in init(), so a call costs wrk no Lua allocation. Each
-- thread starts at its own place in the list. No response() hook: defining one makes wrk
-- hand every body to Lua; failures show as non-2xx statuses in the summary instead.

-- wrk's own resolve() opens and closes a probe connection to each address first; the
-- reference OCSP responder (`openssl ocsp -port`, OpenSSL 3.0) then spins for ever on that
-- empty connection and answers nobody. Take the addresses without probing.
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

local requests = {}
local next_request = 1
local thread_count = 0

function setup(thread)
  thread:set("thread_id", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  local mode, file = args[1], args[2]
  if (mode ~= "post" and mode ~= "get") or file == nil then
    error("usage: wrk ... -s requests.lua URL -- post|get FILE")
  end
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(file) do
    if line ~= "" then
      if mode == "post" then
        requests[#requests + 1] = wrk.format("POST", wrk.path, headers, line)
      else
        requests[#requests + 1] = wrk.format("GET", line)
      end
    end
  end
  if #requests == 0 then
    error(file .. " holds no request")
  end
  next_request = ((thread_id or 0) * 7919) % #requests + 1
end

function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "wrk-summary requests=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
