local h = require "helper"

-- Issue 3: the bundled server, `lua5.4 serve.lua PORT`, closes gracefully on
-- SIGINT/SIGTERM (running requests finish, new connections are refused).

-- Start serve.lua on a free port; returns the process and its port once it answers.
local function start_serve()
  local port = h.free_port()
  local p = h.start_lua("serve.lua " .. port, 30)
  local deadline = h.now() + h.TEST_TIMEOUT
  while h.now() < deadline do
    if not p:alive() then break end
    local sock = h.connect(port)
    if sock then sock:close(); return p, port end
    h.sleep(0.02)
  end
  local text = p:log()
  p:stop()
  error("serve.lua did not start listening on " .. port .. ":\n" .. text, 2)
end

-- Connect attempts until one is refused (true), for at most `t` seconds.
-- "closed" counts as refused: an attempt that reached the listen backlog just
-- before the listener closed is reset by the kernel (ECONNRESET), never served.
local function refused_within(port, t)
  local deadline = h.now() + t
  repeat
    local sock, err = h.connect(port)
    if not sock then return err == "connection refused" or err == "closed", err end
    sock:close()
    h.sleep(0.02)
  until h.now() > deadline
  return false, "still accepting"
end

-- A POST /echo whose body is half sent: the handler is waiting in read_all.
local function half_sent_echo(port)
  local sock, r = assert(h.connect(port))
  assert(sock:send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nhello"))
  h.sleep(0.3) -- the head is read and the handler waits for the rest of the body
  return sock, r
end

describe("serve.lua", function()
  local p, port
  before_each(function() p, port = start_serve() end)
  after_each(function() if p then p:stop() end end)

  it("answers Hello, World! on / and echoes on /echo over one connection", function()
    local sock, r = assert(h.connect(port))
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/")))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("Hello, World!", res.body)
    assert(sock:send(h.req("POST", "/echo", { ["content-type"] = "text/x-test" }, "echo me back")))
    res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("echo me back", res.body)
    assert.equal("text/x-test", res.headers.get("content-type"))
    assert(sock:send(h.req("GET", "/nowhere")))
    assert.equal(404, assert(r:final_response()).status)
  end)

  it("serves a stream, a JSON route with a parameter and /metrics, and logs each exchange on stderr", function()
    local sock, r = assert(h.connect(port))
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/stream?n=3")))
    local res = assert(r:final_response())
    assert.equal("chunked", res.framing)
    assert.equal("line 1 of 3\nline 2 of 3\nline 3 of 3\n", res.body)
    assert(sock:send(h.req("GET", "/users/42", { ["x-request-id"] = "serve-spec-1" })))
    res = assert(r:final_response())
    assert.equal("application/json", res.headers.get("content-type"))
    assert.equal('{"id":42,"name":"user 42","route":"/users/{id:%d+}"}\n', res.body)
    assert.equal("serve-spec-1", res.headers.get("x-request-id"))
    assert(sock:send(h.req("GET", "/users/x")))
    assert.equal(404, assert(r:final_response()).status)
    assert(sock:send(h.req("GET", "/metrics")))
    res = assert(r:final_response())
    assert.truthy(res.body:find('lhyper_http_requests_total{route="/users/{id:%d+}",method="GET",status="200"} 1', 1, true), res.body)
    assert.truthy(p:wait_log('"GET /users/42 HTTP/1.1" 200 ', 3), p:log())
    assert.truthy(p:log():find('"serve-spec-1" ok', 1, true), p:log())
  end)

  it("runs from a built checkout without LUA_PATH or LUA_CPATH naming it", function()
    local port2 = h.free_port()
    local q = h.start_lua(h.shell_quote(h.ROOT .. "/serve.lua") .. " " .. port2, 30, "LUA_PATH=';;' LUA_CPATH=';;'")
    local undo = h.undo()
    finally(undo.run)
    undo.add(function() q:stop() end)
    local deadline, sock = h.now() + h.TEST_TIMEOUT, nil
    repeat
      sock = h.connect(port2)
      if not sock then h.sleep(0.05) end
    until sock or h.now() > deadline or not q:alive()
    assert.truthy(sock, q:log())
    undo.add(function() sock:close() end)
    local r = h.reader(sock)
    assert(sock:send(h.req("GET", "/")))
    assert.equal("Hello, World!", assert(r:final_response()).body)
  end)

  it("echoes on /ws for Python's websockets, compressed, and logs the 101", function()
    local src = ([[
import asyncio, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:PORT/ws", compression="deflate") as ws:
        await ws.send("hello")
        text = await ws.recv()
        await ws.send(b"\x00\x01" * 5000)
        data = await ws.recv()
        print("ext", ws.response_headers.get("sec-websocket-extensions"))
        print("echo", text, len(data), data[:2] == b"\x00\x01")
    print("code", ws.close_code)
asyncio.run(main())
]]):gsub("PORT", tostring(port))
    local out = h.run(string.format("%stimeout -s KILL 20 /usr/bin/python3 -c %s 2>&1", h.CLIENT_ENV, h.shell_quote(src)))
    assert.truthy(out:find("echo hello 10000 True", 1, true), out)
    assert.truthy(out:find("ext permessage-deflate", 1, true), out)
    assert.truthy(out:find("code 1000", 1, true), out)
    assert.truthy(p:wait_log('"GET /ws HTTP/1.1" 101 ', 3), p:log())
  end)

  for _, sig in ipairs({ "TERM", "INT" }) do
    it("closes an idle keep-alive connection on SIG" .. sig .. " and exits 0 by itself", function()
      local sock, r = assert(h.connect(port))
      finally(function() sock:close() end)
      assert(sock:send(h.req("GET", "/")))
      assert.equal(200, assert(r:final_response()).status)
      local t0 = h.now()
      assert(p:kill(sig))
      assert.is_true(r:expect_close(3), "idle keep-alive connection was not closed")
      assert.equal(0, p:exit_code(3), p:log())
      assert.is_true(h.now() - t0 < 3, "took the grace period although nothing was running")
      assert.is_nil((h.connect(port)))
      local log = p:log()
      assert.truthy(log:find("closing", 1, true), log)
      assert.truthy(log:find("lhyper: closed", 1, true), log)
    end)

    it("on SIG" .. sig .. " refuses new connections but finishes a running request with Connection: close", function()
      local sock, r = half_sent_echo(port)
      finally(function() sock:close() end)
      assert(p:kill(sig))
      local refused, why = refused_within(port, 2)
      assert.is_true(refused, why)
      assert.is_true(p:alive(), "exited with a request still running")
      assert(sock:send("12345"))
      local res = assert(r:final_response({ timeout = 3 }))
      assert.equal(200, res.status)
      assert.equal("hello12345", res.body)
      assert.equal("close", (res.headers.get("connection") or ""):lower())
      assert.is_true(r:expect_close(2))
      assert.equal(0, p:exit_code(3), p:log())
    end)
  end

  it("stops at once on a second signal during the grace period", function()
    local sock, r = half_sent_echo(port)
    finally(function() sock:close() end)
    assert(p:kill("TERM"))
    assert.is_true(p:wait_log("closing", 2), p:log())
    local t0 = h.now()
    assert(p:kill("TERM"))
    local code = p:exit_code(3)
    assert.is_true(h.now() - t0 < 3)
    local log = p:log()
    assert.truthy(log:find("stopping now", 1, true), log)
    local data, how = r:rest(2)
    assert.equal("closed", how)
    assert.equal("", data)
    assert.equal(0, code, log)
  end)
end)
