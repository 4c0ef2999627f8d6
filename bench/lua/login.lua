-- Password login (form POST): each line of BENCH_DATA is "cookie<TAB>body" for a fresh
-- login page (session cookie + CSRF token), used once. Success is the 302 after login.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local pages, i

function init(args)
  pages = my_lines(os.getenv("BENCH_DATA"))
  i = 0
end

function request()
  i = i + 1
  local line = pages[i] or pages[#pages]
  local cookie, body = string.match(line, "^([^\t]*)\t(.*)$")
  return wrk.format("POST", "/login", {Cookie = cookie,
    ["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end

function response(status, headers, body)
  if status == 302 then ok = ok + 1; flows = flows + 1 else bad = bad + 1 end
end
