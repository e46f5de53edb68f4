local h = require "helper"

-- The server enforces a handler's content-length: a body of another size
-- aborts that connection and never bleeds into the next response.
describe("content-length enforcement", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  local function still_serves()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
    assert.equal("Hello, World!", res.body)
  end

  -- After the head of a mismatched response: at most `declared` body bytes,
  -- then the connection closes with nothing else on it.
  local function check_aborted(target)
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", target) .. h.req("GET", "/hello")))
    local res = assert(r:final_response())
    if res.status == 500 then
      -- the server noticed before sending the head; the connection may go on
      local nxt = r:final_response()
      if nxt then assert.equal("Hello, World!", nxt.body) end
      return
    end
    assert.equal(200, res.status)
    local declared = tonumber(res.headers.get("content-length"))
    assert.is_true(#res.body <= declared)
    local ok, extra = r:expect_close()
    assert.is_true(ok, "bytes after the declared body: " .. tostring(extra))
  end

  it("aborts the connection when an iterator body is longer than declared", function()
    check_aborted("/length?iter=1&n=150&declared=100")
    still_serves()
  end)

  it("aborts the connection when an iterator body is shorter than declared", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/length?iter=1&n=50&declared=100") .. h.req("GET", "/hello")))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("100", res.headers.get("content-length"))
    assert.is_false(res.complete)
    assert.equal(50, #res.body)
    assert.equal("closed", res.err)
    still_serves()
  end)

  it("never sends more than declared for a string body that is too long", function()
    check_aborted("/length?n=150&declared=100")
    still_serves()
  end)

  it("never leaves the client waiting for a string body that is too short", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/length?n=50&declared=100") .. h.req("GET", "/hello")))
    local res = assert(r:final_response())
    if res.status == 500 then
      local nxt = r:final_response()
      if nxt then assert.equal("Hello, World!", nxt.body) end
    else
      assert.equal(200, res.status)
      assert.is_false(res.complete)
      assert.equal("closed", res.err)
    end
    still_serves()
  end)

  it("aborts a streamed body whose iterator raises after the head went out", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/stream?n=1000000&fail=131072") .. h.req("GET", "/hello")))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.is_false(res.complete)
    assert.is_true(#res.body >= 131072 and #res.body < 1000000)
    still_serves()
  end)

  it("accepts a correct declared length for an iterator body", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/length?iter=1&n=100&declared=100") .. h.req("GET", "/hello")))
    local res = assert(r:final_response())
    assert.equal(100, #res.body)
    assert.equal("Hello, World!", assert(r:final_response()).body)
  end)
end)
