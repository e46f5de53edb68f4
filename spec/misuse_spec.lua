-- Issue 18, item 6: the smaller mistakes get a clear answer.
local h = require "helper"

describe("smaller mistakes", function()
  local srv
  setup(function() srv = h.start_server({ record_errors = true }) end)
  teardown(function() if srv then srv:stop() end end)

  local function record(k)
    local deadline = h.now() + 3
    repeat
      local res = assert(h.raw_request(srv.port, h.req("GET", "/record?key=" .. k)))
      if res.status == 200 then
        local rec = h.parse_info(res.body)
        if rec.done then return rec end
      end
      h.sleep(0.05)
    until h.now() > deadline
  end

  it("answers req:upgrade() without headers with the protocol the request asked for", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("GET /misuse/upgrade-bare HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"))
    local res = assert(r:final_response())
    assert.equal(101, res.status)
    assert.equal("echo", res.headers.get("upgrade"))
    assert.equal("upgrade", (res.headers.get("connection") or ""):lower())
    assert.equal("up", r:bytes(2))
  end)

  it("refuses req:upgrade() without headers when the request offers several protocols", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("GET /misuse/upgrade-bare HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c, echo\r\n\r\n"))
    local res = assert(r:final_response())
    assert.equal(500, res.status)
  end)

  it("raises the same error for a second req:upgrade(), whether or not the stream slept since", function()
    -- LHYPER_DOZE=0: a quiet stream gives back its dispatcher at once
    for _, launch in ipairs({ false, "env LHYPER_DOZE=0" }) do
      local s = launch and h.start_server({}, launch) or srv
      local sock, r = h.connect(s)
      local ok, err = pcall(function()
        assert(sock:send("GET /misuse/upgrade-twice HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"))
        local res = assert(r:final_response())
        assert.equal(101, res.status)
        local lines = {}
        for line in assert(r:rest()):gmatch("[^\n]+") do lines[#lines + 1] = line end
        assert.equal(2, #lines, table.concat(lines, "\n"))
        for i = 1, 2 do
          assert.truthy(lines[i]:find("^false|.*req:upgrade: a response was already sent$"),
            (launch or "doze on") .. ": " .. lines[i])
        end
      end)
      sock:close()
      if launch then s:stop() end
      assert(ok, err)
    end
  end)

  it("raises a clear error when a task uses req:body() or req:upgrade() after the handler returned", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/misuse/after?key=after1", nil, "abc")))
    assert.equal(200, res.status)
    local rec = assert(record("after1"), "the task did not finish")
    assert.truthy(rec.body:find("^false|.*req:body%(%): the request is over %(its handler returned%)"), rec.body)
    assert.truthy(rec.upgrade:find("^false|.*req:upgrade%(%): the request is over"), rec.upgrade)
  end)

  it("raises on a second read_all instead of returning an empty string", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/misuse/readall-twice", nil, "payload")))
    assert.equal(200, res.status)
    assert.truthy(res.body:find("^payload|false|.*the body was already read to its end"), res.body)
  end)
end)

describe("lhyper.server host", function()
  it("resolves a name, and takes '*' and '::' for every interface", function()
    local out = h.lua([[
      local lhyper = require "lhyper"
      local socket = require "socket"
      local function try(host)
        local s, err = lhyper.server { host = host, port = 0, handler = function() return 200, nil, "ok" end }
        if not s then print(host, "fail", tostring(err)) return end
        local c = socket.tcp()
        c:settimeout(2)
        local ok = c:connect("127.0.0.1", s.port)
        c:close()
        print(host, "listening", ok and "v4ok" or "v4no")
        s:close(0)
      end
      try("localhost")
      try("*")
      try("::")
      try("0.0.0.0")
      local s, err, kind = lhyper.server { host = "no-such-host.invalid", port = 0, handler = function() end }
      print("invalid", tostring(s), kind, tostring(err))
      lhyper.run()
    ]])
    assert.truthy(out:find("localhost\tlistening\tv4ok", 1, true), out)
    assert.truthy(out:find("*\tlistening\tv4ok", 1, true), out)
    assert.truthy(out:find("::\tlistening\tv4ok", 1, true), out)
    assert.truthy(out:find("0.0.0.0\tlistening\tv4ok", 1, true), out)
    assert.truthy(out:find("invalid\tnil\tio\t", 1, true), out)
  end)
end)

describe("lhyper.request mistakes", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  -- a script file, so that error positions name its lines
  local function script(src)
    local file = h.tmpname(".lua")
    h.write_file(file, "local lhyper = require 'lhyper'\nlocal base = 'http://127.0.0.1:" .. srv.port .. "'\n" .. src)
    local out = h.run(string.format("cd %s && LUA_PATH=%s LUA_CPATH=%s %stimeout -s KILL 20 %s%s %s 2>&1",
      h.shell_quote(h.ROOT), h.shell_quote(h.LUA_PATH), h.shell_quote(h.LUA_CPATH), h.CLIENT_ENV,
      h.PRELOAD_ENV, h.LUA, h.shell_quote(file)))
    os.remove(file)
    return out, file:match("[^/]+$")
  end

  it("points argument errors at the caller's line", function()
    local out, name = script([[
lhyper.spawn(function()
  local c = lhyper.client()
  local function try(f) local ok, err = pcall(f) print(ok and "no error" or err) end
  try(function() lhyper.request { url = base, colour = "red" } end) -- line 6
  try(function() lhyper.request { url = "ftp://x/" } end) -- line 7
  try(function() lhyper.request { url = base, headers = { ["x-a"] = true } } end) -- line 8
  try(function() lhyper.request { url = base, headers = { ["x-a"] = "a\nb" } } end) -- line 9
  try(function() c:request { url = base, headers = { { "x-a", { b = 1 } } } } end) -- line 10
  try(function() c:request { url = base, body = "abc", headers = { ["content-length"] = "4" } } end) -- line 11
  try(function() lhyper.client { pool_idle_timeout = "x" } end) -- line 12
  try(function() c:request { url = base, headers = { ["Content-Type"] = "a", ["content-type"] = "b" } } end) -- line 13
  try(function() c:request { url = base, method = "GE T" } end) -- line 14
end)
lhyper.run()
]])
    for line = 6, 14 do
      assert.truthy(out:find(name .. ":" .. line .. ": lhyper.", 1, true), "line " .. line .. ":\n" .. out)
    end
    assert.truthy(out:find("header 'x-a': value must be a string, a number or an array of them, not a boolean", 1, true), out)
    assert.truthy(out:find("header 'x-a': value holds CR, LF or NUL", 1, true), out)
    assert.truthy(out:find("same field", 1, true), out)
  end)

  it("sends the method upper-case", function()
    local out = script([[
lhyper.spawn(function()
  local res = assert(lhyper.request { method = "post", url = base .. "/echo", body = "x" })
  print("method=" .. res.headers["x-method"])
  res = assert(lhyper.request { method = "Get", url = base .. "/hello" })
  print("get=" .. res:read_all())
end)
lhyper.run()
]])
    assert.truthy(out:find("method=POST", 1, true), out)
    assert.truthy(out:find("get=Hello, World!", 1, true), out)
  end)

  it("has a default read timeout of 60 s and none for the whole exchange; false turns it off", function()
    local out = script([[
local defaults = require("lhyper.client").defaults_
local c = lhyper.client()
print("read=" .. defaults[c].read_timeout .. " total=" .. defaults[c].timeout .. " connect=" .. defaults[c].connect_timeout)
local off = lhyper.client { read_timeout = false }
print("off=" .. defaults[off].read_timeout)
]])
    assert.truthy(out:find("read=60 total=0 connect=10", 1, true), out)
    assert.truthy(out:find("off=0", 1, true), out)
  end)

  it("raises on a second res:body() after the body was read", function()
    local out = script([[
lhyper.spawn(function()
  local res = assert(lhyper.request { url = base .. "/hello" })
  print("first=" .. res:read_all())
  print("second=" .. tostring(select(2, pcall(res.read_all, res))))
  local empty = assert(lhyper.request { url = base .. "/status/204" })
  print("empty=[" .. empty:read_all() .. "]")
end)
lhyper.run()
]])
    assert.truthy(out:find("first=Hello, World!", 1, true), out)
    assert.truthy(out:find("second=.*the body was already read to its end"), out)
    assert.truthy(out:find("empty=[]", 1, true), out)
  end)
end)
