local h = require "helper"

describe("request bodies", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("reads a Content-Length body", function()
    local body = string.rep("0123456789", 1000)
    local res = assert(h.raw_request(srv.port, h.req("POST", "/echo", nil, body)))
    assert.equal(200, res.status)
    assert.equal(body, res.body)
  end)

  it("reads a Content-Length body that arrives in pieces", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhel"))
    h.sleep(0.05)
    assert(sock:send("lo wo"))
    h.sleep(0.05)
    assert(sock:send("rld"))
    local res = assert(r:final_response())
    assert.equal("hello world", res.body)
  end)

  it("reads a chunked body with chunk extensions and trailers, then the next request", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local body = "5;name=value\r\nhello\r\n6;a;b=\"q\"\r\n world\r\n0\r\nX-Trailer: t1\r\n\r\n"
    assert(sock:send(h.req("POST", "/echo", { ["transfer-encoding"] = "chunked" }, body) .. h.req("GET", "/hello")))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("hello world", res.body)
    res = assert(r:final_response())
    assert.equal("Hello, World!", res.body)
  end)

  it("reads a chunked body sent byte by byte", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local msg = h.req("POST", "/echo", { ["transfer-encoding"] = "chunked" }, h.chunked({ "abc", "defgh", "i" }))
    for i = 1, #msg do assert(sock:send(msg:sub(i, i))) end
    local res = assert(r:final_response())
    assert.equal("abcdefghi", res.body)
  end)

  it("accepts upper-case hex chunk sizes", function()
    local body = string.rep("z", 26)
    local res = assert(h.raw_request(srv.port, h.req("POST", "/echo", { ["transfer-encoding"] = "chunked" },
      "1A\r\n" .. body .. "\r\n0\r\n\r\n")))
    assert.equal(body, res.body)
  end)

  it("gives a GET without a body an empty body", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/sink")))
    assert.equal(200, res.status)
    assert.equal("0", res.body)
  end)

  it("returns the whole body from read_all under the limit", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/readall?max=100", nil, "small body")))
    assert.equal(200, res.status)
    assert.equal("small body", res.body)
  end)

  it("returns nil and 'body too large' from read_all over the limit", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/readall?max=10", nil, string.rep("b", 50))))
    assert.equal(400, res.status)
    assert.truthy(res.body:find("too large", 1, true), res.body)
  end)

  it("returns an error object with kind and message from read_all", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/readall?max=10", nil, string.rep("b", 50))))
    assert.equal(400, res.status)
    local kind = res.headers.get("x-kind")
    assert.equal(kind, res.headers.get("x-err-kind"))
    local kinds = { parse = 1, incomplete = 1, unexpected_message = 1, header_timeout = 1, timeout = 1,
      user_body = 1, user_service = 1, io = 1, canceled = 1, closed = 1 }
    assert.truthy(kinds[kind], kind)
    assert.truthy(res.headers.get("x-err-message"):find("too large", 1, true))
    assert.equal("false", res.headers.get("x-is-timeout"))
    assert.equal("false", res.headers.get("x-is-closed"))
  end)

  it("reads an empty chunked body", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/sink", { ["transfer-encoding"] = "chunked" }, "0\r\n\r\n")))
    assert.equal(200, res.status)
    assert.equal("0", res.body)
  end)

  it("answers 413 when read_all was over the limit and the handler returned nothing", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/readall?max=10&mode=nothing", nil, string.rep("b", 50))))
    assert.equal(413, res.status)
  end)

  it("answers 413 for a chunked body over the read_all limit", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/readall?max=10&mode=nothing",
      { ["transfer-encoding"] = "chunked" }, h.chunked({ string.rep("c", 8), string.rep("c", 8) }))))
    assert.equal(413, res.status)
  end)
end)

-- RFC 9112 section 6.3 and 7.1: framing errors are rejected and the connection closed.
describe("request body framing errors", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  local function rejects(raw, status)
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    sock:send(raw)
    local res, err = r:final_response()
    assert.is_table(res, err)
    assert.equal(status, res.status)
    assert.is_true(r:expect_close())
    sock:close() -- a later finally() replaces this one's
  end

  it("rejects Content-Length together with Transfer-Encoding with 400", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" ..
      "5\r\nhello\r\n0\r\n\r\n", 400)
  end)

  it("rejects two differing Content-Length fields with 400", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400)
  end)

  it("rejects a non-numeric Content-Length with 400", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello", 400)
  end)

  it("rejects a negative Content-Length with 400", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello", 400)
  end)

  it("rejects a non-hex chunk size with 400", function()
    rejects(h.req("POST", "/sink", { ["transfer-encoding"] = "chunked" }, "zz\r\nhello\r\n0\r\n\r\n"), 400)
  end)

  it("rejects an overflowing chunk size with 400", function()
    rejects(h.req("POST", "/sink", { ["transfer-encoding"] = "chunked" },
      "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400)
  end)

  it("rejects a chunk whose data is not followed by CRLF with 400", function()
    rejects(h.req("POST", "/sink", { ["transfer-encoding"] = "chunked" }, "3\r\nhelloXX\r\n0\r\n\r\n"), 400)
  end)

  it("rejects an unknown transfer coding with 501", function()
    rejects("POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\nhello", 501)
  end)

  it("rejects chunked that is not the final coding with 400 or 501", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    sock:send("POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, foo\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    local res = assert(r:final_response())
    assert.truthy(res.status == 400 or res.status == 501, res.status_line)
    assert.is_true(r:expect_close())
  end)

  it("keeps serving new connections after framing errors", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)
end)
