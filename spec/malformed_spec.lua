local h = require "helper"

-- Sends `raw`, expects one response with `status` and then the server's close.
local function rejects(srv, raw, status)
  local sock, r = h.connect(srv)
  finally(function() sock:close() end)
  sock:send(raw) -- may fail part-way when the server answers early
  local res, err = r:final_response()
  assert.is_table(res, err)
  assert.equal(status, res.status, res.status_line)
  assert.is_true(r:expect_close())
  sock:close() -- a later finally() replaces this one's
  return res
end

describe("malformed requests", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("answers 400 to a garbage request line and closes", function()
    rejects(srv, "THIS IS NOT HTTP\r\n\r\n", 400)
  end)

  it("answers 400 to binary garbage and closes", function()
    rejects(srv, "\0\1\2\3\255\254\r\n\r\n", 400)
  end)

  it("answers 400 or 505 to a request line without a version (HTTP/0.9 style)", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    sock:send("GET /hello\r\nHost: x\r\n\r\n")
    local res = assert(r:final_response())
    assert.truthy(res.status == 400 or res.status == 505, res.status_line)
    assert.is_true(r:expect_close())
  end)

  it("answers 400 to a header line without a colon", function()
    rejects(srv, "GET /hello HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400)
  end)

  it("answers 400 to whitespace between a header name and the colon", function()
    rejects(srv, "GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", 400)
  end)

  it("rejects obsolete line folding or unfolds it (RFC 9112 5.2)", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("GET /info?h=x-fold HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n  b\r\n\r\n"))
    local res = assert(r:final_response())
    if res.status == 400 then
      assert.is_true(r:expect_close())
    else
      assert.equal(200, res.status)
      local v = h.parse_info(res.body).get
      assert.falsy(v:find("[\r\n]"), v)
    end
  end)

  it("answers 505 to HTTP/2.0", function()
    rejects(srv, "GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505)
  end)

  it("answers 505 to HTTP/3.0", function()
    rejects(srv, "GET /hello HTTP/3.0\r\nHost: x\r\n\r\n", 505)
  end)

  it("answers 431 to a head bigger than the default max_buf_size (400 KiB)", function()
    local fields = {}
    for i = 1, 50 do fields[i] = string.format("X-Big-%d: %s\r\n", i, string.rep("v", 10 * 1024)) end
    rejects(srv, "GET /hello HTTP/1.1\r\nHost: x\r\n" .. table.concat(fields) .. "\r\n", 431)
  end)

  it("answers 431 to more than 100 header fields", function()
    local fields = {}
    for i = 1, 101 do fields[i] = string.format("X-H%d: v\r\n", i) end
    -- Host makes 102 fields
    rejects(srv, "GET /hello HTTP/1.1\r\nHost: x\r\n" .. table.concat(fields) .. "\r\n", 431)
  end)

  it("accepts exactly 100 header fields", function()
    local fields = {}
    for i = 1, 99 do fields[i] = string.format("X-H%d: v\r\n", i) end
    local res = assert(h.raw_request(srv.port, "GET /hello HTTP/1.1\r\nHost: x\r\n" .. table.concat(fields) .. "\r\n"))
    assert.equal(200, res.status)
  end)

  it("answers 414 to a 20 KB request target", function()
    rejects(srv, "GET /" .. string.rep("a", 20 * 1024) .. " HTTP/1.1\r\nHost: x\r\n\r\n", 414)
  end)

  it("answers 400 to a bad request pipelined after a good one, after answering the good one", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/hello") .. "BROKEN\r\n\r\n"))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("Hello, World!", res.body)
    res = assert(r:final_response())
    assert.equal(400, res.status)
    assert.is_true(r:expect_close())
  end)

  it("closes without error when the client stops in the middle of a head", function()
    local sock = assert(h.connect(srv))
    assert(sock:send("GET /hello HTTP/1.1\r\nHo"))
    sock:close()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)

  it("keeps serving after all of the above", function()
    local out, code = h.curl(string.format("http://127.0.0.1:%d/hello", srv.port))
    assert.equal(0, code, out)
    assert.equal("Hello, World!", out)
  end)
end)

describe("configured head limits", function()
  local srv
  setup(function() srv = h.start_server({ max_buf_size = 8192, max_headers = 10 }) end)
  teardown(function() if srv then srv:stop() end end)

  it("answers 431 to a head over max_buf_size", function()
    rejects(srv, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " .. string.rep("v", 9000) .. "\r\n\r\n", 431)
  end)

  it("accepts a head under max_buf_size", function()
    local res = assert(h.raw_request(srv.port,
      "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " .. string.rep("v", 6000) .. "\r\n\r\n"))
    assert.equal(200, res.status)
  end)

  it("answers 431 to more than max_headers fields", function()
    local fields = {}
    for i = 1, 10 do fields[i] = string.format("X-H%d: v\r\n", i) end
    rejects(srv, "GET /hello HTTP/1.1\r\nHost: x\r\n" .. table.concat(fields) .. "\r\n", 431)
  end)

  it("accepts max_headers fields", function()
    local fields = {}
    for i = 1, 9 do fields[i] = string.format("X-H%d: v\r\n", i) end
    local res = assert(h.raw_request(srv.port, "GET /hello HTTP/1.1\r\nHost: x\r\n" .. table.concat(fields) .. "\r\n"))
    assert.equal(200, res.status)
  end)

  it("still reads a request body larger than max_buf_size", function()
    local body = string.rep("B", 100000)
    local res = assert(h.raw_request(srv.port, h.req("POST", "/sink", nil, body)))
    assert.equal(200, res.status)
    assert.equal("100000", res.body)
  end)
end)
