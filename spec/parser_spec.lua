local h = require "helper"

-- lhyper's own HTTP/1 parser (issue 17), over raw sockets: where one request
-- ends and the next begins, what is valid and what is not (RFC 9112, 9110).

-- A request that /keep remembers; /kept lists them (spec/app.lua), so a
-- smuggled request that ran at all shows up there.
local SMUGGLED = "GET /keep?n=smuggled HTTP/1.1\r\nHost: x\r\nX-K: smuggled\r\n\r\n"

local function kept(srv)
  local res = assert(h.raw_request(srv.port, h.req("GET", "/kept")))
  assert.equal(200, res.status)
  return res.body
end

-- Sends raw bytes; expects one response with `status`, then the close.
local function rejects(srv, raw, status)
  local sock, r = h.connect(srv)
  finally(function() sock:close() end)
  sock:send(raw)
  local res, err = r:final_response()
  assert.is_table(res, err)
  assert.equal(status, res.status, res.status_line)
  assert.equal("close", res.headers.get("connection"))
  local ok, extra = r:expect_close()
  assert.is_true(ok, "after the error: " .. tostring(extra))
  sock:close() -- a later finally() replaces this one's
  return res
end

local function accepts(srv, raw)
  local res, err = h.raw_request(srv.port, raw)
  assert.is_table(res, err)
  assert.equal(200, res.status, res.status_line)
  return res
end

local CHUNKED = { ["transfer-encoding"] = "chunked" }

describe("parser: chunked framing that could desync", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() kept(srv) end)

  it("answers 400 and closes when chunk data is not followed by CRLF", function()
    rejects(srv, h.req("POST", "/echo", CHUNKED, "5\r\nhelloXX0\r\n\r\n" .. SMUGGLED), 400)
    assert.equal("", kept(srv))
  end)

  it("answers 400 and closes when a handler reads the broken body with read_all", function()
    local res = rejects(srv, h.req("POST", "/readall?max=100", CHUNKED, "5\r\nhelloXX0\r\n\r\n" .. SMUGGLED), 400)
    assert.is_nil(res.headers.get("x-kind"), "the handler's own answer was written")
    assert.equal("", kept(srv))
  end)

  it("answers 400 and closes when a chunk-size line ends in a bare CR", function()
    rejects(srv, h.req("POST", "/echo", CHUNKED, "5;a\rXhello\r\n0\r\n\r\n" .. SMUGGLED), 400)
    assert.equal("", kept(srv))
  end)

  it("answers 400 and closes when the last chunk's line ends in a bare CR", function()
    rejects(srv, h.req("POST", "/echo", CHUNKED, "5\r\nhello\r\n0\rX\r\n" .. SMUGGLED), 400)
    assert.equal("", kept(srv))
  end)

  it("answers 400 and closes when the CRLF after chunk data is a bare LF", function()
    rejects(srv, h.req("POST", "/echo", CHUNKED, "5\r\nhello\n0\r\n\r\n" .. SMUGGLED), 400)
    assert.equal("", kept(srv))
  end)

  it("still serves a request that follows a well-framed chunked body", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("POST", "/echo", CHUNKED, "5\r\nhello\r\n0\r\n\r\n") .. SMUGGLED))
    assert.equal("hello", assert(r:final_response()).body)
    assert.equal("kept smuggled", assert(r:final_response()).body)
    assert.equal("GET /keep?n=smuggled smuggled", kept(srv))
  end)
end)

describe("parser: valid input it takes", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("takes a chunk extension with several parameters", function()
    assert.equal("hello", accepts(srv, h.req("POST", "/echo", CHUNKED, "5;foo=bar;baz\r\nhello\r\n0\r\n\r\n")).body)
  end)

  it("takes a quoted chunk extension value with escapes and a semicolon", function()
    local body = '5;a="x; \\"q\\" y"\r\nhello\r\n0\r\n\r\n'
    assert.equal("hello", accepts(srv, h.req("POST", "/echo", CHUNKED, body)).body)
  end)

  it("takes whitespace before the semicolon of a chunk extension", function()
    assert.equal("hello", accepts(srv, h.req("POST", "/echo", CHUNKED, "5 ;ext=1\r\nhello\r\n0 ; last\r\n\r\n")).body)
  end)

  it("takes HTAB around a Content-Length value", function()
    local res = accepts(srv, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length:\t5\t\r\n\r\nhello")
    assert.equal("hello", res.body)
  end)

  it("takes HTAB around a Transfer-Encoding value", function()
    local res = accepts(srv, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\t\r\n\r\n"
      .. "5\r\nhello\r\n0\r\n\r\n")
    assert.equal("hello", res.body)
  end)

  it("takes equal duplicate Content-Length values as one", function()
    local res = accepts(srv, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n"
      .. "Content-Length: 5\r\n\r\nhello")
    assert.equal("hello", res.body)
  end)

  it("reads HTTP/1.2 as HTTP/1.1 (RFC 9112 2.3)", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("GET /info HTTP/1.2\r\nHost: x\r\n\r\n" .. h.req("GET", "/hello")))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("1.1", res.version)
    assert.equal("1.1", h.parse_info(res.body).version)
    assert.equal("Hello, World!", assert(r:final_response()).body)
  end)

  it("takes obs-text in a field value and gives it to the handler as is", function()
    local res = accepts(srv, "GET /info?h=x-t HTTP/1.1\r\nHost: x\r\nX-T: caf\xc3\xa9 \xff\r\n\r\n")
    assert.equal("caf\xc3\xa9 \xff", h.parse_info(res.body).get)
  end)

  it("takes the four request-target forms", function()
    local info = h.parse_info(accepts(srv, "GET http://x:1/info?q=1 HTTP/1.1\r\nHost: x:1\r\n\r\n").body)
    assert.equal("/info", info.path)
    assert.equal("http://x:1/info?q=1", info.target)
    -- no route for "*" in the app: its 404 shows the handler ran
    assert.equal(404, assert(h.raw_request(srv.port, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")).status)
    accepts(srv, "GET /info?x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")
  end)
end)

describe("parser: chunk extensions are bounded", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("answers 413 once a body's extensions pass 16 KiB, without waiting for the rest", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    -- the size line never ends: the answer cannot wait for it
    assert(sock:send(h.req("POST", "/echo", CHUNKED, "5;" .. string.rep("a", 64 * 1024))))
    local res = assert(r:final_response())
    assert.equal(413, res.status)
    assert.is_true(r:expect_close())
  end)

  it("stops a 32 MiB extension early with 413", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("POST", "/echo", CHUNKED, "5;")))
    local piece, sent, total = string.rep("e", 64 * 1024), 0, 32 * 1024 * 1024
    local socket = require "socket"
    while sent < total do
      local ok = sock:send(piece)
      if not ok then break end
      sent = sent + #piece
      if socket.select({ sock }, nil, 0)[1] then break end -- an answer came
    end
    local res = assert(r:final_response())
    assert.equal(413, res.status)
    assert.is_true(sent < total, "the whole extension was sent before an answer")
    sock:send("\r\nhello\r\n0\r\n\r\n")
  end)

  it("takes extensions that stay under the limit", function()
    local body = {}
    for i = 1, 100 do body[i] = "1;n=" .. string.rep("v", 100) .. "\r\nx\r\n" end
    body[#body + 1] = "0\r\n\r\n"
    assert.equal(string.rep("x", 100), accepts(srv, h.req("POST", "/echo", CHUNKED, table.concat(body))).body)
  end)
end)

describe("parser: invalid input it refuses", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("answers 400 to a Host with a space", function()
    rejects(srv, "GET /hello HTTP/1.1\r\nHost: local host\r\n\r\n", 400)
  end)

  it("answers 400 to a Host with a path", function()
    rejects(srv, "GET /hello HTTP/1.1\r\nHost: localhost/evil\r\n\r\n", 400)
  end)

  it("answers 400, not 505, to a request line ending in a bare CR", function()
    rejects(srv, "GET /hello HTTP/1.1\rHost: x\r\n\r\n", 400)
  end)

  it("answers 400, not 505, to a space after the version", function()
    rejects(srv, "GET /hello HTTP/1.1 \r\nHost: x\r\n\r\n", 400)
  end)

  it("answers 400 to a fragment in the request target", function()
    rejects(srv, "GET /hello#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400)
  end)

  it("answers 400 to unequal Content-Length values", function()
    rejects(srv, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!", 400)
  end)

  it("answers 400 to a bare CR in a field value", function()
    rejects(srv, "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400)
  end)

  it("answers 400 to a control byte in a field value", function()
    rejects(srv, "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\1b\r\n\r\n", 400)
  end)

  it("answers 400 to an asterisk target on a method other than OPTIONS", function()
    rejects(srv, "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400)
  end)

  it("answers 400 to a CONNECT whose target is not host:port", function()
    rejects(srv, "CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n", 400)
  end)

  it("answers 400 to broken trailer fields", function()
    rejects(srv, h.req("POST", "/echo", CHUNKED, "5\r\nhello\r\n0\r\nBad Name: v\r\n\r\n"), 400)
  end)

  it("reads a request split into single bytes like the whole", function()
    local raw = "GET /info?h=x-a HTTP/1.1\r\nHost: x\r\nX-A: \t v \t\r\n\r\n"
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    for i = 1, #raw do
      assert(sock:send(raw:sub(i, i)))
      if i % 8 == 0 then h.sleep(0.001) end
    end
    local res = assert(r:final_response())
    assert.equal("v", h.parse_info(res.body).get)
  end)
end)

describe("parser: request-target bytes (RFC 3986, hyper's leniencies)", function()
  local srv
  setup(function() srv = h.start_server({ record_errors = true }) end)
  teardown(function() if srv then srv:stop() end end)

  -- the first on_error report of kind parse (the server sees no other)
  local function parse_report()
    local deadline, line = h.now() + 3, nil
    repeat
      local res = assert(h.raw_request(srv.port, h.req("GET", "/reports")))
      line = res.body:match("[^\n]*kind=parse[^\n]*")
      if not line then h.sleep(0.05) end
    until line or h.now() > deadline
    return line
  end

  it("answers 400 to a raw backslash in the path, reported as a parse error of the uri", function()
    rejects(srv, "GET /static/..\\secret HTTP/1.1\r\nHost: x\r\n\r\n", 400)
    local line = parse_report()
    assert.truthy(line, "no parse report")
    assert.truthy(line:find("what=uri", 1, true), line)
    assert.truthy(line:find("message=invalid request target", 1, true), line)
  end)

  it("answers 400 to a backslash in an absolute-form path, whole or byte by byte", function()
    rejects(srv, "GET http://x/a\\b HTTP/1.1\r\nHost: x\r\n\r\n", 400)
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    for c in ("GET /a\\b HTTP/1.1\r\nHost: x\r\n\r\n"):gmatch(".") do
      if not sock:send(c) then break end
    end
    assert.equal(400, assert(r:final_response()).status)
  end)

  it("answers 400 to < > and a backtick in the path, < > and a quote in the query", function()
    for _, t in ipairs { "/a<b", "/a>b", "/a`b", "/info?a<b", "/info?a>b", '/info?a"b' } do
      rejects(srv, "GET " .. t .. " HTTP/1.1\r\nHost: x\r\n\r\n", 400)
    end
  end)

  it("serves the bytes hyper takes: \" { } | ^ [ ] in the path", function()
    local res = assert(h.raw_request(srv.port, 'GET /a"{}|^[] HTTP/1.1\r\nHost: x\r\n\r\n'))
    assert.equal(404, res.status) -- the handler's answer: no route
    assert.equal("not found", res.body)
  end)

  it("serves a backslash, backtick, { } | ^ in the query as they came", function()
    local res = accepts(srv, "GET /info?q=C:\\dir`{x}|^ HTTP/1.1\r\nHost: x\r\n\r\n")
    local info = h.parse_info(res.body)
    assert.equal("/info", info.path)
    assert.equal("q=C:\\dir`{x}|^", info.query)
  end)
end)

describe("parser: a broken request body is the client's fault", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("answers 400 itself; the handler that caught the error and answered is not written", function()
    local res = rejects(srv, h.req("POST", "/bodyerr", CHUNKED, "5\r\nhelloXX0\r\n\r\n"), 400)
    assert.is_nil(res.headers.get("x-kind"))
  end)

  it("answers 413 itself past the extension limit, whatever the handler answers", function()
    local res = rejects(srv, h.req("POST", "/readall?max=100", CHUNKED, "5;" .. string.rep("x", 17000)
      .. "\r\nhello\r\n0\r\n\r\n"), 413)
    assert.is_nil(res.headers.get("x-kind"))
  end)

  it("gives a handler that raises the error of read_all over max a 413, not a 500", function()
    local res = rejects(srv, h.req("POST", "/readall?mode=assert&max=10", nil, string.rep("b", 100)), 413)
    assert.equal("0", res.headers.get("content-length"))
  end)

  it("gives a handler that raises its broken body's error a 400, not a 500", function()
    rejects(srv, h.req("POST", "/readall?mode=assert&max=100", CHUNKED, "5\r\nhello\r\nzz\r\n"), 400)
  end)

  it("still answers 500 to a plain Lua error", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/error")))
    assert.equal(500, res.status)
  end)

  it("sends no error status for a body the client stopped sending", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("POST", "/bodyerr", CHUNKED, "5\r\nhel")))
    sock:shutdown("send")
    local rest, how = r:rest()
    assert.equal("closed", how)
    assert.falsy(rest:find("^HTTP/1%.1 4"), rest)
  end)
end)

describe("parser: no HTTP library underneath", function()
  it("links no llhttp into lhyper.core", function()
    local dir = h.LUA_CPATH:match("([^;]*)/%?%.so") or "build"
    local so = (dir:sub(1, 1) == "/" and "" or h.ROOT .. "/") .. dir .. "/lhyper/core.so"
    assert.truthy(h.read_file(so), "no module at " .. so)
    local out = h.run("nm -D --defined-only " .. h.shell_quote(so) .. " 2>&1; ldd " .. h.shell_quote(so))
    assert.falsy(out:lower():find("llhttp", 1, true), out)
  end)
end)
