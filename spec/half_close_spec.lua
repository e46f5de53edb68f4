local h = require "helper"

-- Issue 3. If the server lacks this option, mark the file pending with:
--   local it = function(name) pending(name .. " (not implemented yet)") end

describe("half_close = true", function()
  local srv
  setup(function() srv = h.start_server({ half_close = true }) end)
  teardown(function() if srv then srv:stop() end end)

  it("answers a client that shut down its write side after a full request", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/sleep?s=0.2")))
    sock:shutdown("send")
    local res = assert(r:final_response({ timeout = 3 }))
    assert.equal(200, res.status)
    assert.equal("slept", res.body)
    assert.is_true(r:expect_close(2))
  end)

  it("answers every pipelined request sent before the shutdown", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/hello") .. h.req("POST", "/echo", nil, "abc") .. h.req("GET", "/sleep?s=0.1")))
    sock:shutdown("send")
    assert.equal("Hello, World!", assert(r:final_response()).body)
    assert.equal("abc", assert(r:final_response()).body)
    assert.equal("slept", assert(r:final_response()).body)
    assert.is_true(r:expect_close(2))
  end)

  it("reports an EOF in the middle of a body as kind incomplete", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("POST /bodyerr HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"))
    h.sleep(0.05)
    sock:shutdown("send")
    local res, err = r:final_response({ timeout = 3 })
    if res then
      assert.equal("incomplete", res.headers.get("x-kind"))
      assert.equal("10", res.headers.get("x-read"))
    else
      -- the server may also just close; it must not hang
      assert.equal("status line: closed", err)
    end
  end)
end)

describe("half_close = false (default)", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("closes the connection when the client shuts down its write side", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/sleep?s=0.3")))
    h.sleep(0.05)
    sock:shutdown("send")
    local data, how = r:rest(3)
    assert.equal("closed", how)
    assert.equal("", data)
  end)

  it("still serves other connections", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)
end)
