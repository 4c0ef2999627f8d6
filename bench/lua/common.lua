-- Shared by every scenario: per-thread counters and a JSON summary printed by done().
-- Scenario scripts define request()/response(); counters: ok (expected answers), bad
-- (unexpected status), flows (completed multi-step flows, if any).
threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
  table.insert(threads, thread)
end

ok, bad, flows = 0, 0, 0

local function lines(path)
  local out = {}
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    if #line > 0 then table.insert(out, line) end
  end
  f:close()
  return out
end

-- The slice of a data file (one item per line) that belongs to this thread.
function my_lines(path)
  local all = lines(path)
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local mine = {}
  for i, line in ipairs(all) do
    if (i - 1) % nthreads == (thread_no - 1) then table.insert(mine, line) end
  end
  return mine
end

function done(summary, latency, requests)
  local t_ok, t_bad, t_flows = 0, 0, 0
  for _, thread in ipairs(threads) do
    local first = thread:get("first_bad")
    if first then io.write("BENCH_FIRST_BAD " .. first .. "\n") end
    t_ok = t_ok + (thread:get("ok") or 0)
    t_bad = t_bad + (thread:get("bad") or 0)
    t_flows = t_flows + (thread:get("flows") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"ok":%d,"bad":%d,"flows":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,' ..
    '"timeouts":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.duration, summary.requests, t_ok, t_bad, t_flows,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
