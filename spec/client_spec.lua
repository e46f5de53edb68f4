-- lhyper.request / lhyper.client against lhyper's own server, both in one
-- subprocess: the client script starts a server with the routes below.
local up = require "upstreams"

-- a server with test routes; `SERVER_OPTS` may be set before this runs
local PRELUDE = [[
local stats = { produced = 0, consumed = 0 }
local base
local function q(req, k) return (req.query or ""):match(k .. "=([^&]*)") end
local routes = {}
routes["/info"] = function(req)
  local n, first = 0, nil
  for chunk in req:body() do n = n + #chunk; first = first or chunk:sub(1, 32) end
  local h = req.headers
  return 200, { ["content-type"] = "text/plain" }, table.concat({
    "port=" .. req.remote_port, "method=" .. req.method, "target=" .. req.target,
    "host=" .. tostring(h.host), "length=" .. tostring(h["content-length"]),
    "te=" .. tostring(h["transfer-encoding"]), "expect=" .. tostring(h.expect),
    "ua=" .. tostring(h["user-agent"]), "x_a=" .. table.concat(h:get_all("x-a"), ","),
    "received=" .. n, "first=" .. tostring(first),
    "trailer=" .. tostring(req:trailers() and req:trailers()["x-sum"]), "" }, "\n")
end
routes["/echo"] = function(req)
  local it = req:body()
  return 200, { ["x-te"] = tostring(req.headers["transfer-encoding"]) }, function() return it() end
end
routes["/len"] = function(req)
  return 200, nil, string.rep("L", tonumber(q(req, "n")))
end
routes["/chunked"] = function(req)
  local n, k = tonumber(q(req, "n")), tonumber(q(req, "k"))
  return 200, nil, function()
    if n == 0 then return nil, { ["x-trailer"] = "done" } end
    n = n - 1
    return string.rep("c", k)
  end
end
routes["/status"] = function(req)
  return tonumber(q(req, "code")), { etag = '"v1"' }, nil
end
routes["/slow"] = function(req)
  lhyper.sleep(tonumber(q(req, "s")))
  return 200, nil, "late"
end
routes["/stall"] = function(req)
  local sent = false
  return 200, { ["content-length"] = 100 }, function()
    if not sent then sent = true; return "part" end
    lhyper.sleep(5)
    return nil
  end
end
routes["/infinite"] = function(req)
  local block = string.rep("i", 65536)
  return 200, nil, function()
    stats.produced = stats.produced + #block
    return block
  end
end
routes["/sink"] = function(req)
  lhyper.sleep(tonumber(q(req, "s") or 0.5))
  local n = 0
  for chunk in req:body() do n = n + #chunk; stats.consumed = n end
  return 200, nil, "got " .. n
end
routes["/via"] = function(req)
  local res = assert(lhyper.request{ url = base .. "/slow?s=" .. q(req, "s") })
  stats.via_done = (stats.via_done or 0) + 1
  return res.status, nil, res:read_all()
end
routes["/reject"] = function(req)
  return 413, { connection = "close" }, "too big"
end
local opts = SERVER_OPTS or {}
opts.host = opts.host or "127.0.0.1"
opts.port = 0
opts.handler = function(req)
  local r = routes[req.path]
  if not r then return 404 end
  return r(req)
end
local server = assert(lhyper.server(opts))
local host = opts.host:find(":") and "[" .. opts.host .. "]" or opts.host
base = "http://" .. host .. ":" .. server.port
local function info(res)
  local t = {}
  for k, v in res:read_all():gmatch("([%w_]+)=([^\n]*)") do t[k] = v end
  return t
end
]]

local function run(src, server_opts)
  local out, code = up.client("local SERVER_OPTS = " .. (server_opts or "nil") .. "\n" .. PRELUDE ..
    src .. "\nserver:close(0)")
  assert.equal(0, code, out)
  assert.is_nil(out:find("ERROR", 1, true), out)
  return up.parse(out), out
end

describe("lhyper.request against lhyper's server", function()
  it("returns status, version, case-insensitive headers and the body", function()
    local r = run [[
local res = assert(lhyper.request{ url = base .. "/len?n=5" })
say("status=" .. res.status)
say("version=" .. res.version)
say("reason=" .. res.reason)
say("len=" .. res.headers["Content-Length"])
say("get=" .. res.headers:get("CONTENT-LENGTH"))
local names = {}
for name in res.headers:each() do names[#names + 1] = name end
say("names=" .. table.concat(names, ","))
say("body=" .. res:read_all())
local res2 = assert(lhyper.request{ url = base .. "/nope" })
say("status2=" .. res2.status)
local big = assert(lhyper.request{ url = base .. "/len?n=100000" })
local body, err, kind = big:read_all(1000)
say("too_large=" .. tostring(body) .. ":" .. kind .. ":" .. tostring(err))
]]
    assert.equal("200", r.status)
    assert.equal("1.1", r.version)
    assert.equal("OK", r.reason)
    assert.equal("5", r.len)
    assert.equal("5", r.get)
    assert.equal("content-length,date", r.names)
    assert.equal("LLLLL", r.body)
    assert.equal("404", r.status2)
    assert.equal("nil:user_body:body too large", r.too_large)
  end)

  it("reuses a keep-alive connection (the server sees one client port)", function()
    local r = run [[
local ports, reused = {}, {}
for i = 1, 5 do
  local res = assert(lhyper.request{ url = base .. "/info" })
  local t = info(res)
  ports[t.port] = true
  reused[#reused + 1] = tostring(res.reused)
  assert(tonumber(t.port) == res.local_port)
end
local n = 0
for _ in pairs(ports) do n = n + 1 end
say("ports=" .. n)
say("reused=" .. table.concat(reused, ","))
]]
    assert.equal("1", r.ports)
    assert.equal("false,true,true,true,true", r.reused)
  end)

  it("sets Host from the URL unless one is given, and passes headers through", function()
    local r = run [[
local t = info(assert(lhyper.request{ url = base .. "/info?x=1#frag", headers = { ["x-a"] = { "1", "2" } } }))
say("host=" .. t.host)
say("port_ok=" .. tostring(t.host == "127.0.0.1:" .. server.port))
say("target=" .. t.target)
say("x_a=" .. t.x_a)
t = info(assert(lhyper.request{ url = base .. "/info", headers = { { "Host", "example.org" }, { "X-A", "3" } } }))
say("host2=" .. t.host)
say("x_a2=" .. t.x_a)
]]
    assert.equal("true", r.port_ok)
    assert.equal("/info?x=1", r.target)
    assert.equal("1,2", r.x_a)
    assert.equal("example.org", r.host2)
    assert.equal("3", r.x_a2)
  end)

  it("sends a string body with Content-Length and no body for a bare GET", function()
    local r = run [[
local t = info(assert(lhyper.request{ method = "POST", url = base .. "/info", body = "hello" }))
say("length=" .. t.length)
say("te=" .. t.te)
say("received=" .. t.received)
say("first=" .. t.first)
t = info(assert(lhyper.request{ url = base .. "/info" }))
say("get_length=" .. t.length)
t = info(assert(lhyper.request{ method = "POST", url = base .. "/info" }))
say("post_length=" .. t.length)
]]
    assert.equal("5", r.length)
    assert.equal("nil", r.te)
    assert.equal("5", r.received)
    assert.equal("hello", r.first)
    assert.equal("nil", r.get_length)
    assert.equal("0", r.post_length)
  end)

  it("streams an iterator body chunked and reads a chunked response back", function()
    local r = run [[
local n = 0
local res = assert(lhyper.request{ method = "PUT", url = base .. "/echo", body = function()
  n = n + 1
  if n > 100 then return nil end
  return string.rep(string.char(64 + n % 26), 1000)
end })
say("te=" .. res.headers["x-te"])
say("resp_te=" .. tostring(res.headers["transfer-encoding"]))
local body = res:read_all()
say("len=" .. #body)
say("head=" .. body:sub(1, 3))
local k = 0
local t = info(assert(lhyper.request{ method = "POST", url = base .. "/info", body = function()
  k = k + 1
  if k > 3 then return nil, { ["x-sum"] = "3 parts" } end
  return "part" .. k
end }))
say("trailer=" .. t.trailer)
say("received=" .. t.received)
]]
    assert.equal("chunked", r.te)
    assert.equal("chunked", r.resp_te)
    assert.equal("100000", r.len)
    assert.equal("AAA", r.head)
    assert.equal("3 parts", r.trailer)
    assert.equal("15", r.received)
  end)

  it("pulls the request body only while the socket takes more", function()
    local r = run [[
local produced = 0
local block = string.rep("u", 65536)
lhyper.spawn(function()
  lhyper.sleep(0.3) -- the server has not read anything yet
  say("produced_mib=" .. produced // (1024 * 1024))
end)
local res = assert(lhyper.request{ method = "POST", url = base .. "/sink?s=0.5", body = function()
  if produced >= 64 * 1024 * 1024 then return nil end
  produced = produced + #block
  return block
end })
say("answer=" .. res:read_all())
]]
    assert.is_true(tonumber(r.produced_mib) < 16, "pulled " .. r.produced_mib .. " MiB ahead of the server")
    assert.equal("got " .. 64 * 1024 * 1024, r.answer)
  end)

  it("reads the response body from the socket only while the caller iterates", function()
    local r = run [[
local res = assert(lhyper.request{ url = base .. "/infinite" })
local it = res:body()
for i = 1, 3 do assert(it()) end
lhyper.sleep(0.3)
local before = stats.produced
lhyper.sleep(0.3)
say("stalled=" .. tostring(stats.produced == before))
say("bounded=" .. tostring(stats.produced < 32 * 1024 * 1024))
res:close()
]]
    assert.equal("true", r.stalled)
    assert.equal("true", r.bounded)
  end)

  it("HEAD has no body and keeps the connection", function()
    local r = run [[
local res = assert(lhyper.request{ method = "HEAD", url = base .. "/len?n=1000" })
say("status=" .. res.status)
say("length=" .. res.headers["content-length"])
say("body=[" .. res:read_all() .. "]")
local res2 = assert(lhyper.request{ url = base .. "/len?n=3" })
say("next=" .. res2:read_all())
say("reused=" .. tostring(res2.reused))
]]
    assert.equal("200", r.status)
    assert.equal("1000", r.length)
    assert.equal("[]", r.body)
    assert.equal("LLL", r.next)
    assert.equal("true", r.reused)
  end)

  it("204 and 304 have no body and keep the connection", function()
    local r = run [[
for _, code in ipairs { 204, 304, 204 } do
  local res = assert(lhyper.request{ url = base .. "/status?code=" .. code })
  say("s" .. code .. "=" .. res.status .. ":" .. #res:read_all() .. ":" .. tostring(res.reused))
end
]]
    assert.equal("204:0:true", r.s204)
    assert.equal("304:0:true", r.s304)
  end)

  it("reads trailers after a chunked body (asked for with TE: trailers)", function()
    local r = run [[
local res = assert(lhyper.request{ url = base .. "/chunked?n=4&k=10", headers = { te = "trailers" } })
say("before=" .. tostring(res:trailers()))
say("len=" .. #res:read_all())
say("trailer=" .. res:trailers():get("X-Trailer"))
]]
    assert.equal("nil", r.before)
    assert.equal("40", r.len)
    assert.equal("done", r.trailer)
  end)

  it("sends the body after 100 Continue when asked to expect it", function()
    local r = run [[
local t = info(assert(lhyper.request{ method = "PUT", url = base .. "/info", body = "payload",
  expect_continue = true }))
say("expect=" .. t.expect)
say("received=" .. t.received)
local res = assert(lhyper.request{ method = "PUT", url = base .. "/reject", body = string.rep("x", 100000),
  headers = { expect = "100-continue" } })
say("rejected=" .. res.status)
say("body=" .. res:read_all())
local t2 = info(assert(lhyper.request{ url = base .. "/info" }))
say("after=" .. t2.method)
]]
    assert.equal("100-continue", r.expect)
    assert.equal("7", r.received)
    assert.equal("413", r.rejected)
    assert.equal("too big", r.body)
    assert.equal("GET", r.after)
  end)

  it("closes a connection whose response was not read to its end", function()
    local r = run [[
local c = lhyper.client{}
local res = assert(c:request{ url = base .. "/len?n=1000000" })
local first = res:body()()
local p1 = res.local_port
res:close()
say("idle_after_close=" .. c:stats().idle)
local res2 = assert(c:request{ url = base .. "/len?n=10" })
say("reused=" .. tostring(res2.reused))
say("new_port=" .. tostring(res2.local_port ~= p1))
say("body=" .. res2:read_all())
say("idle=" .. c:stats().idle)
local ok, err = pcall(function() for _ in res:body() do end end)
say("closed_iter=" .. tostring(ok) .. ":" .. tostring(type(err) == "table" and err.kind))
]]
    assert.equal("0", r.idle_after_close)
    assert.equal("false", r.reused)
    assert.equal("true", r.new_port)
    assert.equal("LLLLLLLLLL", r.body)
    assert.equal("1", r.idle)
    assert.equal("false:closed", r.closed_iter)
  end)

  it("times out a slow server (timeout) and a stalled body (read_timeout)", function()
    local r = run [[
local t0 = lhyper.now()
local res, err, kind = lhyper.request{ url = base .. "/slow?s=2", timeout = 0.3 }
say("res=" .. tostring(res))
say("kind=" .. kind .. ":" .. tostring(err:is_timeout()))
say("fast=" .. tostring(lhyper.now() - t0 < 1.5))
local c = lhyper.client{ read_timeout = 0.3 }
local res2 = assert(c:request{ url = base .. "/stall" })
local body, err2, kind2 = res2:read_all()
say("body=" .. tostring(body))
say("kind2=" .. tostring(kind2) .. ":" .. tostring(err2))
local ok = assert(lhyper.request{ url = base .. "/slow?s=0.1", timeout = 2 })
say("ok=" .. ok.status)
]]
    assert.equal("nil", r.res)
    assert.equal("timeout:true", r.kind)
    assert.equal("true", r.fast)
    assert.equal("nil", r.body)
    assert.equal("timeout:read timed out", r.kind2)
    assert.equal("200", r.ok)
  end)

  it("reports refused connections and unknown hosts as kind io", function()
    local r = run [[
local port = server.port
server:close(0)
lhyper.sleep(0.05)
local res, err, kind = lhyper.request{ url = "http://127.0.0.1:" .. port .. "/" }
say("refused=" .. tostring(res) .. ":" .. kind .. ":" .. tostring(err))
local res2, err2, kind2 = lhyper.request{ url = "http://no-such-host.invalid/" }
say("unknown=" .. tostring(res2) .. ":" .. kind2)
]]
    assert.equal("nil:io:connection refused", r.refused)
    assert.equal("nil:io", r.unknown)
  end)

  it("refuses bad URLs and bad options with clear errors (https is a URL it takes)", function()
    local r = run [[
local function e(t) local ok, err = pcall(lhyper.request, t); return ok and "no error" or tostring(err) end
say("https=" .. e{ url = "https://127.0.0.1:1/" })
say("ftp=" .. e{ url = "ftp://example.org/" })
say("bad=" .. e{ url = "example.org/x" })
say("noarg=" .. e{})
say("opt=" .. e{ url = base, colour = "red" })
say("creds=" .. e{ url = "http://u:p@127.0.0.1/" })
say("crlf=" .. e{ url = base .. "/", headers = { ["x-a"] = "1\r\nx-b: 2" } })
say("port=" .. e{ url = "http://127.0.0.1:99999/" })
]]
    assert.equal("no error", r.https) -- a refused connection is returned, not raised
    assert.matches("unsupported URL scheme", r.ftp, 1, true)
    assert.matches("invalid URL", r.bad, 1, true)
    assert.matches("'url'", r.noarg, 1, true)
    assert.matches("unknown option 'colour'", r.opt, 1, true)
    assert.matches("credentials", r.creds, 1, true)
    assert.matches("header 'x-a': value holds CR, LF or NUL", r.crlf, 1, true)
    assert.matches("invalid port", r.port, 1, true)
  end)

  it("raises a clear error outside an lhyper handler or task", function()
    local h = require "helper"
    local out, code = h.lua([[
local lhyper = require "lhyper"
local ok, err = pcall(lhyper.request, { url = "http://127.0.0.1:1/" })
print(ok, err)
local ok2, err2 = pcall(function()
  local co = coroutine.wrap(function() return lhyper.request{ url = "http://127.0.0.1:1/" } end)
  lhyper.spawn(function() print("in_coroutine", pcall(co)) end)
  lhyper.run()
end)
]])
    assert.equal(0, code, out)
    assert.matches("false\t.*not inside an lhyper handler or task", out)
    assert.matches("in_coroutine\tfalse\t.*not inside an lhyper handler or task", out)
  end)

  it("talks to an IPv6 literal URL", function()
    local r = run([[
local t = info(assert(lhyper.request{ url = base .. "/info" }))
say("host=" .. t.host)
say("ok=" .. tostring(t.host == "[::1]:" .. server.port))
]], '{ host = "::1" }')
    assert.equal("true", r.ok)
  end)

  it("keeps at most pool_max_idle_per_host idle connections", function()
    local r = run [[
local c = lhyper.client{ pool_max_idle_per_host = 2 }
local done, ports = 0, {}
for i = 1, 5 do
  lhyper.spawn(function()
    assert(c:request{ url = base .. "/slow?s=0.1" }):read_all()
    local t = info(assert(c:request{ url = base .. "/info" }))
    ports[t.port] = true
    done = done + 1
  end)
end
while done < 5 do lhyper.sleep(0.02) end
local s = c:stats()
say("idle=" .. s.idle)
say("connections=" .. s.connections)
local none = lhyper.client{ pool_max_idle_per_host = 0 }
assert(none:request{ url = base .. "/len?n=1" }):read_all()
local r2 = assert(none:request{ url = base .. "/len?n=1" })
say("no_pool_reused=" .. tostring(r2.reused))
say("no_pool_idle=" .. none:stats().idle)
]]
    assert.equal("2", r.idle)
    assert.equal("2", r.connections)
    assert.equal("false", r.no_pool_reused)
    assert.equal("0", r.no_pool_idle)
  end)

  it("closes idle connections after pool_idle_timeout", function()
    local r = run [[
local c = lhyper.client{ pool_idle_timeout = 0.2 }
assert(c:request{ url = base .. "/len?n=1" }):read_all()
say("idle_before=" .. c:stats().idle)
lhyper.sleep(0.5)
say("idle_after=" .. c:stats().idle)
local res = assert(c:request{ url = base .. "/len?n=1" })
say("reused=" .. tostring(res.reused))
]]
    assert.equal("1", r.idle_before)
    assert.equal("0", r.idle_after)
    assert.equal("false", r.reused)
  end)

  it("never hands out a connection the server closed while it was idle", function()
    local r = run([[
local ok, reused = 0, 0
for i = 1, 6 do
  local res, err = lhyper.request{ url = base .. "/len?n=2" }
  if res and res:read_all() == "LL" then ok = ok + 1 end
  if res and res.reused then reused = reused + 1 end
  lhyper.sleep(0.25) -- the server's idle_timeout is 0.2
end
say("ok=" .. ok)
say("reused=" .. reused)
]], "{ idle_timeout = 0.2 }")
    assert.equal("6", r.ok)
    assert.equal("0", r.reused)
  end)

  it("a handler cancelled while it waits on a request does not disturb the tasks that reuse its thread", function()
    local r = run [[
local res, err, kind = lhyper.request{ url = base .. "/via?s=0.4", timeout = 0.1 }
say("first=" .. tostring(kind))
local good, done = 0, 0
for i = 1, 20 do
  lhyper.spawn(function()
    local r = lhyper.request{ url = base .. "/slow?s=0.5" }
    if r and r:read_all() == "late" then good = good + 1 end
    done = done + 1
  end)
end
while done < 20 do lhyper.sleep(0.02) end
say("good=" .. good)
say("via_done=" .. tostring(stats.via_done))
]]
    assert.equal("timeout", r.first)
    assert.equal("20", r.good)
    assert.equal("nil", r.via_done)
  end)

  it("serves 50 concurrent tasks from one pool", function()
    local r = run [[
local c = lhyper.client{ pool_max_idle_per_host = 64 }
local done, good = 0, 0
for i = 1, 50 do
  lhyper.spawn(function()
    for j = 1, 10 do
      local res = c:request{ url = base .. "/len?n=" .. j }
      if res and #res:read_all() == j then good = good + 1 end
    end
    done = done + 1
  end)
end
while done < 50 do lhyper.sleep(0.01) end
say("good=" .. good)
say("connections=" .. c:stats().connections)
]]
    assert.equal("500", r.good)
    assert.is_true(tonumber(r.connections) <= 50)
  end)
end)
