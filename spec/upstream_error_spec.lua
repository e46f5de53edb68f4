local h = require "helper"
local up = require "upstreams"

-- A handler that raises the error of an OUTBOUND exchange (an upstream that
-- closed mid-body, refused the connection or timed out) answers its own
-- client 502 (504 for a timeout) and reports it; only an error about the
-- request's own connection (the client gone) goes unanswered and unreported.

local function esc(s)
  return (s:gsub("[^%w%-_.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

describe("errors of an upstream raised by a handler", function()
  local srv, upstream
  setup(function()
    srv = h.start_server({ record_errors = true })
    upstream = h.start_server()
  end)
  teardown(function()
    if srv then srv:stop() end
    if upstream then upstream:stop() end
  end)

  -- on_error's reports whose target holds `key`, as tables
  local function reports(key)
    local res = assert(h.raw_request(srv.port, h.req("GET", "/reports")))
    local out = {}
    for line in res.body:gmatch("[^\n]+") do
      local r = {}
      for k, v in line:gmatch("([^=\t]+)=([^\t]*)") do r[k] = v end
      if r.target and r.target:find(key, 1, true) then out[#out + 1] = r end
    end
    return out
  end

  local function wait_report(key)
    local deadline = h.now() + 3
    repeat
      local r = reports(key)[1]
      if r then return r end
      h.sleep(0.05)
    until h.now() > deadline
  end

  local function proxy(key, path, extra)
    return "/proxy?key=" .. key .. "&up=" .. upstream.port .. "&path=" .. esc(path) .. (extra or "")
  end

  it("answers 502 when the upstream closes in the middle of the body read with read_all", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", proxy("midbody", "/length?n=10&declared=100&iter=1"))))
    assert.equal(502, res.status)
    local r = wait_report("midbody")
    assert.truthy(r, "not reported")
    assert.equal("incomplete", r.kind)
    assert.equal("true", r.upstream)
    assert.equal("502", r.status)
    assert.equal("handler", r.phase)
  end)

  it("answers 502 when a chunked upstream body breaks off", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", proxy("chunked", "/stream?n=300000&fail=65536"))))
    assert.equal(502, res.status)
    assert.equal("true", assert(wait_report("chunked"), "not reported").upstream)
  end)

  it("keeps the client's connection after a 502 for a request without a body", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", proxy("ka", "/length?n=10&declared=100&iter=1"))))
    assert.equal(502, assert(r:final_response()).status)
    assert(sock:send(h.req("GET", "/hello")))
    assert.equal("Hello, World!", assert(r:final_response()).body)
  end)

  it("answers 502 when the upstream refuses the connection", function()
    local port, holder = up.dead_port()
    finally(function() holder:close() end)
    local res = assert(h.raw_request(srv.port, h.req("GET", "/proxy?key=refused&up=" .. port)))
    assert.equal(502, res.status)
    local r = assert(wait_report("refused"), "not reported")
    assert.equal("io", r.kind)
    assert.equal("true", r.upstream)
  end)

  it("answers 504 when the upstream times out", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", proxy("slow", "/sleep?s=5", "&timeout=0.5"))))
    assert.equal(504, res.status)
    local r = assert(wait_report("slow"), "not reported")
    assert.equal("timeout", r.kind)
    assert.equal("true", r.upstream)
  end)

  it("closes a streamed response whose upstream breaks off, and reports it", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", proxy("streamed", "/stream?n=300000&fail=65536", "&mode=stream"))))
    local res = r:final_response()
    -- the head went out: the body is cut short (no last chunk) and the connection closed
    assert.is_true(res == nil or res.status == 200)
    assert.truthy(r:expect_close())
    local rep = assert(wait_report("streamed"), "not reported")
    assert.equal("body", rep.phase)
    assert.equal("true", rep.upstream)
  end)

  it("stays quiet when its own client goes away while the upstream is slow", function()
    local sock = assert(h.connect(srv))
    assert(sock:send(h.req("GET", proxy("gone", "/sleep?s=1"))))
    h.sleep(0.3)
    sock:close()
    h.sleep(1.2) -- the upstream would have answered by now
    assert.same({}, reports("gone"))
  end)

  it("answers 500 to a closed or canceled error that is not about the client, and reports it", function()
    for _, t in ipairs { "/raise/channel", "/raise/join" } do
      local res = assert(h.raw_request(srv.port, h.req("GET", t)))
      assert.equal(500, res.status, t)
      local r = assert(wait_report(t), "not reported: " .. t)
      assert.equal(t == "/raise/channel" and "closed" or "canceled", r.kind)
      assert.equal("nil", r.upstream)
    end
  end)
end)
