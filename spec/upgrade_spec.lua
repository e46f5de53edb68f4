local h = require "helper"


describe("upgrade", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  local UPGRADE = "GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"

  it("sends 101 and then echoes raw bytes both ways", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(UPGRADE))
    local res = assert(r:response())
    assert.equal(101, res.status)
    assert.equal("echo", (res.headers.get("upgrade") or ""):lower())
    assert.equal("upgrade", (res.headers.get("connection") or ""):lower())
    for _, msg in ipairs({ "ping", "\0\1binary\255", string.rep("big", 100000) }) do
      assert(sock:send(msg))
      assert.equal(msg, r:bytes(#msg))
    end
  end)

  it("delivers bytes sent right after the head first", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(UPGRADE .. "EARLY BYTES"))
    assert.equal(101, assert(r:response()).status)
    assert.equal("EARLY BYTES", r:bytes(11))
    assert(sock:send("later"))
    assert.equal("later", r:bytes(5))
  end)

  it("ends the stream when the client shuts down its side", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(UPGRADE .. "bye"))
    assert.equal(101, assert(r:response()).status)
    assert.equal("bye", r:bytes(3))
    sock:shutdown("send")
    assert.is_true(r:expect_close(2))
  end)

  it("refuses CONNECT with 501 when the handler does not upgrade", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"))
    local res = assert(r:final_response())
    assert.equal(501, res.status)
  end)

  it("keeps serving normal requests", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)
end)
