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
