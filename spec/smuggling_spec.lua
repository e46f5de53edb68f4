local h = require "helper"

-- Request smuggling vectors (RFC 9112 sections 2.2, 3.2, 5, 6, 7): each is
-- rejected with a 4xx/5xx and the connection closed, so no second request
-- hides in the bytes.
describe("request smuggling defences", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  -- Sends raw bytes followed by a pipelined GET /status/418: the server must
  -- answer with `status` (a number or a set of numbers), close, and never
  -- answer 418.
  local function rejects(raw, status)
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    sock:send(raw .. h.req("GET", "/status/418"))
    local res, err = r:final_response()
    assert.is_table(res, err)
    if type(status) == "table" then
      local ok = false
      for _, s in ipairs(status) do ok = ok or s == res.status end
      assert.is_true(ok, res.status_line)
    else
      assert.equal(status, res.status, res.status_line)
    end
    local ok, extra = r:expect_close()
    assert.is_true(ok, "after the error: " .. tostring(extra))
    sock:close() -- a later finally() replaces this one's
  end

  it("rejects Transfer-Encoding before Content-Length (TE.CL)", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" ..
      "0\r\n\r\n", 400)
  end)

  it("rejects chunked applied twice", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", { 400, 501 })
  end)

  it("rejects a Transfer-Encoding line split over two fields ending in a non-chunked coding", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" ..
      "0\r\n\r\n", { 400, 501 })
  end)

  it("rejects an obfuscated coding name", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501)
  end)

  it("rejects a space before the colon of Transfer-Encoding", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400)
  end)

  it("rejects a Content-Length with a plus sign", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400)
  end)

  it("rejects a Content-Length too big for any integer", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400)
  end)

  it("rejects a Content-Length of 2^64 - 1 followed by body bytes, and keeps running", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\nabc", 400)
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)

  it("rejects a chunk size written as 0x5", function()
    rejects(h.req("POST", "/sink", { ["transfer-encoding"] = "chunked" }, "0x5\r\nhello\r\n0\r\n\r\n"), 400)
  end)

  it("rejects a chunk size line ended by a bare LF", function()
    rejects(h.req("POST", "/sink", { ["transfer-encoding"] = "chunked" }, "5\nhello\r\n0\r\n\r\n"), 400)
  end)

  it("rejects a NUL in a header value", function()
    rejects("GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400)
  end)

  it("rejects a header name with a separator character", function()
    rejects("GET /hello HTTP/1.1\r\nHost: x\r\nX<A>: b\r\n\r\n", 400)
  end)

  it("rejects a request target with a space in it", function()
    rejects("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400)
  end)

  it("rejects a header line that starts with whitespace right after the request line", function()
    rejects("GET /hello HTTP/1.1\r\n Host: x\r\n\r\n", 400)
  end)

  it("rejects an HTTP/1.1 request without Host (RFC 9112 3.2)", function()
    rejects("GET /hello HTTP/1.1\r\n\r\n", 400)
  end)

  it("rejects an HTTP/1.1 request with two Host fields (RFC 9112 3.2)", function()
    rejects("GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)
  end)

  it("treats a POST without Content-Length or Transfer-Encoding as having no body", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("POST /sink HTTP/1.1\r\nHost: x\r\n\r\n" .. h.req("GET", "/status/418")))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("0", res.body)
    assert.equal(418, assert(r:final_response()).status)
  end)

  it("reads a request after a chunked body as its own request", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("POST", "/echo", { ["transfer-encoding"] = "chunked" }, "3\r\nabc\r\n0\r\n\r\n") ..
      h.req("GET", "/status/418")))
    assert.equal("abc", assert(r:final_response()).body)
    assert.equal(418, assert(r:final_response()).status)
  end)

  it("accepts Chunked in any letter case and optional whitespace", function()
    local res = assert(h.raw_request(srv.port,
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tChunked \r\n\r\n2\r\nok\r\n0\r\n\r\n"))
    assert.equal(200, res.status)
    assert.equal("ok", res.body)
  end)

  it("closes after answering an HTTP/1.0 request that uses Transfer-Encoding (RFC 9112 6.1)", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("POST /sink HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" ..
      "3\r\nabc\r\n0\r\n\r\n" .. "GET /status/418 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
    local res = assert(r:final_response())
    assert.truthy(res.status == 200 or res.status == 400, res.status_line)
    assert.is_true(r:expect_close())
  end)
end)
