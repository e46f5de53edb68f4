local h = require "helper"

describe("handler errors", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("answers 500 when the handler raises, and keeps the connection", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/error") .. h.req("GET", "/hello")))
    local res = assert(r:final_response())
    assert.equal(500, res.status)
    assert.is_true(res.complete)
    res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("Hello, World!", res.body)
  end)

  it("keeps serving after many handler errors", function()
    for _ = 1, 20 do
      local res = assert(h.raw_request(srv.port, h.req("GET", "/error")))
      assert.equal(500, res.status)
    end
    local out, code = h.curl(string.format("http://127.0.0.1:%d/hello", srv.port))
    assert.equal(0, code, out)
    assert.equal("Hello, World!", out)
  end)

  it("answers 500 to a header value with CRLF and never splits the response", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/badheader") .. h.req("GET", "/hello")))
    local res = assert(r:final_response())
    assert.equal(500, res.status)
    assert.is_nil(res.headers.get("x-injected"))
    assert.is_nil(res.headers.get("x-bad"))
    assert.falsy(res.body:find("nope", 1, true))
    local nxt = r:final_response()
    if nxt then assert.equal("Hello, World!", nxt.body) end
    assert.falsy(r:raw_string():lower():find("x-injected", 1, true))
  end)

  it("answers 500 to a header name with CRLF", function()
    local res, r = assert(h.raw_request(srv.port, h.req("GET", "/badheader?name=1")))
    assert.equal(500, res.status)
    assert.falsy(r:raw_string():lower():find("x-injected", 1, true))
  end)

  it("answers 500 to a header value with NUL", function()
    local res, r = assert(h.raw_request(srv.port, h.req("GET", "/badheader?nul=1")))
    assert.equal(500, res.status)
    assert.falsy(r:raw_string():find("\0", 1, true))
  end)

  for _, s in ipairs({ "102", "100", "1000", "99", "0" }) do
    it("answers 500 when the handler returns status " .. s, function()
      local res = assert(h.raw_request(srv.port, h.req("GET", "/badstatus?s=" .. s)))
      assert.equal(500, res.status)
    end)
  end

  it("answers 500 when the handler returns a non-integer status", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/badstatus?str=1")))
    assert.equal(500, res.status)
    res = assert(h.raw_request(srv.port, h.req("GET", "/badstatus?s=200.5")))
    assert.equal(500, res.status)
  end)

  it("answers 500 when the handler returns 101 without upgrading", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/badstatus?s=101")))
    assert.equal(500, res.status)
  end)

  it("keeps the server alive after all of the above", function()
    assert.is_true(srv:alive())
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)
end)
