-- Authorization-code flow of a signed-in citizen with consent: GET /authorize (session
-- cookie) -> 302 with code -> POST /token. Codes wait in a per-thread queue; a connection
-- that finds one redeems it, otherwise it starts a new flow. flows = token responses with 200.
-- Env: BENCH_AUTHZ_PATH (query included), BENCH_COOKIE, BENCH_AUTH (Basic header),
-- BENCH_REDIRECT_URI (urlencoded), BENCH_VERIFIER.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local codes = {}
local authz, token_head, redirect, verifier

function init(args)
  authz = wrk.format("GET", os.getenv("BENCH_AUTHZ_PATH"), {Cookie = os.getenv("BENCH_COOKIE")})
  token_head = {Authorization = os.getenv("BENCH_AUTH"),
                ["Content-Type"] = "application/x-www-form-urlencoded"}
  redirect = os.getenv("BENCH_REDIRECT_URI")
  verifier = os.getenv("BENCH_VERIFIER")
end

function request()
  local code = table.remove(codes)
  if code then
    return wrk.format("POST", "/token", token_head,
      "grant_type=authorization_code&code=" .. code .. "&redirect_uri=" .. redirect ..
      "&code_verifier=" .. verifier)
  end
  return authz
end

function response(status, headers, body)
  if status == 302 then
    local location = headers["Location"] or headers["location"] or ""  -- granian: lower case
    local code = string.match(location, "[?&]code=([^&]+)")
    if code then table.insert(codes, code); ok = ok + 1 else bad = bad + 1 end
  elseif status == 200 and string.find(body, '"id_token"', 1, true) then
    ok = ok + 1
    flows = flows + 1
  else
    bad = bad + 1
    if not first_bad then
      first_bad = status .. " " .. (headers["Location"] or "") .. " " .. string.sub(body or "", 1, 200)
    end
  end
end
