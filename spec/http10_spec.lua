local h = require "helper"

describe("HTTP/1.0", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("closes the connection after the response by default", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("GET /hello HTTP/1.0\r\n\r\n"))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("Hello, World!", res.body)
    assert.truthy(res.version == "1.0" or res.version == "1.1")
    assert.is_true(r:expect_close())
  end)

  it("tells the handler the version is 1.0", function()
    local res = assert(h.raw_request(srv.port, "GET /info HTTP/1.0\r\n\r\n"))
    assert.equal("1.0", h.parse_info(res.body).version)
  end)

  it("keeps the connection alive with Connection: keep-alive", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local req = "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    assert(sock:send(req))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("Hello, World!", res.body)
    assert.equal("13", res.headers.get("content-length"))
    assert.equal("keep-alive", (res.headers.get("connection") or ""):lower())
    assert(sock:send(req))
    res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("Hello, World!", res.body)
  end)

  it("closes after a later 1.0 request that does not ask for keep-alive", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
    assert.equal(200, assert(r:final_response()).status)
    assert(sock:send("GET /hello HTTP/1.0\r\n\r\n"))
    assert.equal(200, assert(r:final_response()).status)
    assert.is_true(r:expect_close())
  end)

  it("streams an iterator body close-delimited, without chunked coding", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("GET /stream?n=200000 HTTP/1.0\r\n\r\n"))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.is_nil(res.headers.get("transfer-encoding"))
    assert.is_nil(res.headers.get("content-length"))
    assert.equal("close", res.framing)
    assert.is_true(res.complete)
    assert.equal(200000, #res.body)
  end)

  it("closes after a streamed body even when keep-alive was asked", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("GET /stream?n=70000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.is_nil(res.headers.get("transfer-encoding"))
    if res.framing == "length" then
      -- a server may buffer a short stream and give it a length instead
      assert.equal(70000, #res.body)
    else
      assert.equal("close", res.framing)
      assert.equal(70000, #res.body)
      assert.is_true(res.complete)
    end
  end)

  it("accepts a 1.0 request with a Content-Length body", function()
    local res = assert(h.raw_request(srv.port,
      "POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello"))
    assert.equal(200, res.status)
    assert.equal("hello", res.body)
    assert.equal("1.0", res.headers.get("x-version"))
  end)

  it("works with curl --http1.0", function()
    local out, code = h.curl(string.format("--http1.0 -s -w ' %%{http_code} %%{http_version}' http://127.0.0.1:%d/hello", srv.port))
    assert.equal(0, code, out)
    -- curl prints http_version "1" for HTTP/1.0
    assert.truthy(out:match("^Hello, World! 200 1$") or out:match("^Hello, World! 200 1%.[01]$"), out)
  end)
end)
