-- POST one MCP `tools/call` (~1 KiB JSON-RPC body) per request.
-- BENCH_TOKEN (environment): sent as `Authorization: Bearer ...` when set.
-- BENCH_FORGE=1: every request's token is a distinct forgery of BENCH_TOKEN (the first four
--   characters of its signature replaced by a per-thread counter: `r` changes, `s` and its
--   low-S form do not), so the gateway's full signature check runs and fails on each one.
-- done() prints one machine-readable line that bench/run.sh collects:
--   RESULT requests=N duration_us=N rps=N p50_us=N p99_us=N p999_us=N max_us=N non2xx=N errors=N

local pad = string.rep("x", 900)  -- body: 1,024 bytes
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo",'
  .. '"arguments":{"text":"' .. pad .. '"},"_meta":{"progressToken":7}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

if os.getenv("BENCH_FORGE") == "1" and token ~= nil and token ~= "" then
  local threads = 0
  function setup(thread)
    threads = threads + 1
    thread:set("thread_id", threads)
  end
  local digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  local signed, signature = token:match("^(.*%.)([^.]*)$")
  local tail = signature:sub(5)
  local n = 0
  function init(args)
    n = (thread_id or 1) * 4194304  -- 2^22 forgeries per thread before they meet
  end
  function request()
    n = n + 1
    local x, s = n, ""
    for _ = 1, 4 do
      local d = x % 64
      s = s .. digits:sub(d + 1, d + 1)
      x = (x - d) / 64
    end
    wrk.headers["Authorization"] = "Bearer " .. signed .. s .. tail
    return wrk.format()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d p999_us=%d max_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end
