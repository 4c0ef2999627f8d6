-- Refresh with rotation: each thread holds a queue of live refresh tokens (its slice of
-- BENCH_DATA); every answer's new refresh token goes back into the queue.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local tokens, head

function init(args)
  tokens = my_lines(os.getenv("BENCH_DATA"))
  head = {Authorization = os.getenv("BENCH_AUTH"),
          ["Content-Type"] = "application/x-www-form-urlencoded"}
end

function request()
  local t = table.remove(tokens, 1) or "exhausted"
  return wrk.format("POST", "/token", head, "grant_type=refresh_token&refresh_token=" .. t)
end

function response(status, headers, body)
  local t = string.match(body or "", '"refresh_token"%s*:%s*"([^"]+)"')
  if status == 200 and t then
    table.insert(tokens, t)
    ok = ok + 1
  else
    bad = bad + 1
  end
end
