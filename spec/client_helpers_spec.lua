local h = require "helper"

-- Client conveniences: following redirects (opt-in) and res:json(). The
-- servers and the client run in one lhyper process; it prints what it saw.

local function run(body)
  local out, code = h.lua([[
local lhyper = require "lhyper"
local hops = 0
local function echo(req)
  local h = {}
  for _, n in ipairs { "authorization", "cookie", "content-type", "content-length", "host", "x-keep" } do
    h[n] = req.headers[n] or false
  end
  return lhyper.json(200, { method = req.method, path = req.target, body = req:read_all(), h = h })
end
local other
local function handler(req)
  local code, rest = req.path:match("^/r(%d+)(.*)$")
  if code then
    local to = req.query and req.query:match("^to=(.*)$")
    to = to and to:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end)
    req:read_all()
    return tonumber(code), { location = to or ("/echo" .. rest) }, "moved"
  elseif req.path == "/loop" then
    hops = hops + 1
    return 302, { location = "/loop" }, ""
  elseif req.path == "/json" then
    return lhyper.json(200, { list = { 1, 2, 3 }, name = "x/y" })
  elseif req.path == "/notjson" then
    return 200, nil, "{oops"
  end
  return echo(req)
end
local a = assert(lhyper.server { host = "127.0.0.1", port = 0, handler = handler })
other = assert(lhyper.server { host = "127.0.0.1", port = 0, handler = handler })
local A = "http://127.0.0.1:" .. a.port
local B = "http://127.0.0.1:" .. other.port
local function show(res, err)
  if not res then return print("error", tostring(err)) end
  local j = res.status == 200 and assert(res:json()) or nil
  if not j then return print(res.status, res.headers.location) end
  local hs = {}
  for k, v in pairs(j.h) do if v and k ~= "host" and k ~= "content-length" then hs[#hs + 1] = k .. "=" .. v end end
  table.sort(hs)
  print(res.status, j.method, j.path, j.body, table.concat(hs, ","))
end
lhyper.spawn(function()
]] .. body .. [[
  a:close(0)
  other:close(0)
end)
lhyper.run()
]])
  assert.equal(0, code, out)
  return out
end

describe("lhyper.request follow_redirects", function()
  it("is off by default: the redirect comes back", function()
    local out = run([[
show(lhyper.request { url = A .. "/r302" })
]])
    assert.equal("302\t/echo\n", out)
  end)

  it("turns 301/302 POST and 303 into GET without the body, and keeps other headers", function()
    local out = run([[
local hdr = { ["content-type"] = "text/plain", ["x-keep"] = "1", authorization = "Bearer t" }
for _, c in ipairs { 301, 302, 303 } do
  show(lhyper.request { method = "POST", url = A .. "/r" .. c, body = "payload", headers = hdr, follow_redirects = 5 })
end
show(lhyper.request { method = "PUT", url = A .. "/r303", body = "payload", headers = hdr, follow_redirects = 5 })
show(lhyper.request { method = "PUT", url = A .. "/r302", body = "payload", headers = hdr, follow_redirects = 5 })
]])
    assert.equal(table.concat({
      "200\tGET\t/echo\t\tauthorization=Bearer t,x-keep=1",
      "200\tGET\t/echo\t\tauthorization=Bearer t,x-keep=1",
      "200\tGET\t/echo\t\tauthorization=Bearer t,x-keep=1",
      "200\tGET\t/echo\t\tauthorization=Bearer t,x-keep=1",
      "200\tPUT\t/echo\tpayload\tauthorization=Bearer t,content-type=text/plain,x-keep=1",
      "" }, "\n"), out)
  end)

  it("keeps method and body on 307 and 308 when the body is a string", function()
    local out = run([[
for _, c in ipairs { 307, 308 } do
  show(lhyper.request { method = "POST", url = A .. "/r" .. c, body = "data", follow_redirects = 1 })
end
local n = 0
show(lhyper.request { method = "POST", url = A .. "/r307", follow_redirects = 1,
  body = function() n = n + 1; if n == 1 then return "streamed" end end })
]])
    assert.equal(table.concat({
      "200\tPOST\t/echo\tdata\t",
      "200\tPOST\t/echo\tdata\t",
      "307\t/echo", -- an iterator body cannot be sent again
      "" }, "\n"), out)
  end)

  it("strips authorization and cookie on a redirect to another origin", function()
    local out = run([[
local hdr = { authorization = "Basic x", cookie = "sid=1", ["x-keep"] = "k" }
show(lhyper.request { url = A .. "/r302?to=" .. B:gsub(":", "%%3A") .. "/echo/there", headers = hdr, follow_redirects = 2 })
show(lhyper.request { url = A .. "/r302?to=/echo/here", headers = hdr, follow_redirects = 2 })
]])
    assert.equal(table.concat({
      "200\tGET\t/echo/there\t\tx-keep=k",
      "200\tGET\t/echo/here\t\tauthorization=Basic x,cookie=sid=1,x-keep=k",
      "" }, "\n"), out)
  end)

  it("resolves relative locations and stops at the limit", function()
    local out = run([[
show(lhyper.request { url = A .. "/r301/sub?to=../echo/rel%3Fq%3D1", follow_redirects = 1 })
show(lhyper.request { url = A .. "/loop", follow_redirects = 3 })
print("hops", hops)
show(lhyper.request { url = A .. "/r302?to=ftp%3A//example.invalid/", follow_redirects = 3 })
]])
    assert.equal(table.concat({
      "200\tGET\t/echo/rel?q=1\t\t",
      "302\t/loop",
      "hops\t4",
      "302\tftp://example.invalid/",
      "" }, "\n"), out)
  end)

  it("raises on a follow_redirects that is not an integer", function()
    local out = run([[
print(pcall(lhyper.request, { url = A .. "/r302", follow_redirects = 1.5 }))
print(pcall(lhyper.request, { url = A .. "/r302", follow_redirects = "yes" }))
]])
    assert.equal(2, select(2, out:gsub("false\t[^\n]*follow_redirects", "")), out)
  end)

  it("can be a client's default", function()
    local out = run([[
local c = lhyper.client { follow_redirects = 2 }
show(c:request { url = A .. "/r303" })
show(c:request { url = A .. "/r303", follow_redirects = false })
]])
    assert.equal("200\tGET\t/echo\t\t\n303\t/echo\n", out)
  end)
end)

describe("res:json()", function()
  it("decodes a JSON response, and returns nil, err, kind for invalid JSON or over max", function()
    local out = run([[
local j = assert(assert(lhyper.request { url = A .. "/json" }):json())
print(#j.list, math.type(j.list[1]), j.name)
print(assert(lhyper.request { url = A .. "/notjson" }):json())
local v, err, kind = assert(lhyper.request { url = A .. "/json" }):json(5)
print(v, kind, err.message, err.status)
]])
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("3\tinteger\tx/y", lines[1])
    assert.matches("^nil\tinvalid JSON: .*\tparse$", lines[2])
    assert.equal("nil\tuser_body\tbody too large\t413", lines[3])
  end)
end)
