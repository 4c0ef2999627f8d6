-- GET or POST one fixed request; BENCH_METHOD, BENCH_PATH, BENCH_BODY, BENCH_AUTH (header
-- value for Authorization), BENCH_EXPECT (status, default 200).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local expect = tonumber(os.getenv("BENCH_EXPECT") or "200")
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
local headers = {}
if os.getenv("BENCH_AUTH") then headers["Authorization"] = os.getenv("BENCH_AUTH") end
if body then headers["Content-Type"] = "application/x-www-form-urlencoded" end
local prepared

function init(args)
  prepared = wrk.format(method, path, headers, body)
end

function request()
  return prepared
end

function response(status, hdrs, resp_body)
  if status == expect then ok = ok + 1 else bad = bad + 1 end
end
