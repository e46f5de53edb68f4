-- Graceful shutdown with WebSockets open: server:close(grace), server:drain
-- and a worker's SIGTERM send 1001 Going Away to the server's WebSockets
-- and wait for their close within the grace; a peer that does not answer is
-- dropped when the grace runs out. The app runs in its own process (under
-- the sanitizer or valgrind when the suite runs them); the peers are
-- Python's websockets and raw sockets (spec/wsraw.lua).
local h = require "helper"
local raw = require "wsraw"
local socket = require "socket"

local PY = "/usr/bin/python3"

local APP = [[
local lhyper = require "lhyper"
local O = assert(load("return " .. (arg[1] or "{}"), "=opts", "t", {}))()
local server
server = assert(lhyper.server { host = "127.0.0.1", port = 0, handler = function(req)
  if req.path == "/close" or req.path == "/drain" then
    local grace = tonumber(req.query)
    lhyper.spawn(function()
      io.stderr:write("SHUTDOWN ", req.path, "\n")
      if req.path == "/close" then server:close(grace) else server:drain(grace) end
    end):detach()
    return 200, nil, "ok"
  end
  if req.query == "slow" then lhyper.sleep(1) end
  local ws = assert(lhyper.websocket.accept(req, { close_timeout = 60 }))
  for msg, kind in ws:messages() do ws:send(msg, kind) end
  io.stderr:write("WS CLOSED ", tostring(ws.close_code), " ", tostring(ws.close_reason), "\n")
end })
io.stderr:write("PORT ", server.port, "\n")
if O.workers then
  local id = lhyper.workers { n = 1, grace = O.grace }
  if not id then
    io.stderr:write("MASTER DONE\n")
    return
  end
  io.stderr:write("READY\n")
end
lhyper.run()
io.stderr:write("EXIT\n")
]]

local function start(opts)
  local p = h.start_script(APP, opts, 120)
  local want = opts and opts.workers and "READY\n" or "PORT"
  p.port = p:port(30)
  if p.port and p:wait_log(want, 30) then return p end
  error("the app did not start:\n" .. p:log(), 2)
end

-- a Python websockets client: echoes one message, then runs `trigger`
-- (Python statements), then waits for the server's close; prints the code
-- and reason it got and the seconds it waited
local function py_client(port, trigger)
  return h.run(string.format("%stimeout -s KILL 60 %s -c %s 2>&1", h.CLIENT_ENV, PY, h.shell_quote(([[
import asyncio, time, urllib.request, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%d/ws") as ws:
        await ws.send("hello")
        print("echo", await ws.recv())
        %s
        t0 = time.monotonic()
        try:
            while True:
                await ws.recv()
        except websockets.exceptions.ConnectionClosed as e:
            print("closed", e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None)
        print("waited %%.1f" %% (time.monotonic() - t0))
asyncio.run(main())
]]):format(port, trigger))))
end

local function trigger_url(port, what)
  return ('await asyncio.get_running_loop().run_in_executor(None, urllib.request.urlopen, "http://127.0.0.1:%d%s")')
    :format(port, what)
end

describe("WebSockets at shutdown", function()
  local p
  after_each(function()
    if p then p:stop() end
    p = nil
  end)

  it("server:close(grace) sends 1001 and the server ends once the peer answered, before the grace", function()
    p = start()
    local out, code = py_client(p.port, trigger_url(p.port, "/close?30"))
    assert.equal(0, code, out)
    assert.truthy(out:find("echo hello", 1, true), out)
    assert.truthy(out:find("closed 1001 server shutting down", 1, true), out)
    -- the handshake ended it, not the grace of 30 s
    assert.is_true(p:wait_exit(20), p:log())
    assert.truthy(p:log():find("WS CLOSED 1001", 1, true), p:log())
    assert.truthy(p:log():find("EXIT", 1, true), p:log())
  end)

  it("server:drain(grace) sends 1001 too", function()
    p = start()
    local out, code = py_client(p.port, trigger_url(p.port, "/drain?30"))
    assert.equal(0, code, out)
    assert.truthy(out:find("closed 1001", 1, true), out)
    assert.is_true(p:wait_exit(20), p:log())
  end)

  it("a worker's SIGTERM drains its WebSockets with 1001", function()
    p = start({ workers = true, grace = 30 })
    local out, code = py_client(p.port, ("import os, signal; os.kill(%d, signal.SIGTERM)"):format(p.pid))
    assert.equal(0, code, out)
    assert.truthy(out:find("closed 1001", 1, true), out)
    assert.is_true(p:wait_exit(20), p:log())
    assert.truthy(p:log():find("WS CLOSED 1001", 1, true), p:log())
  end)

  it("drops a peer that does not answer the close when the grace runs out", function()
    p = start()
    local c = assert(raw.connect(p.port, "/ws"))
    finally(function() c:close_socket() end)
    c:send("text", "hi")
    assert.equal("hi", assert(c:frame(10)).payload)
    local t0 = socket.gettime()
    assert(h.raw_request(p.port, h.req("GET", "/close?1")))
    local f = assert(c:frame(10))
    assert.equal(raw.OP.close, f.op)
    assert.equal(1001, f.code)
    -- no answer from us: the connection goes at the grace, not at close_timeout (60 s)
    assert.is_true(c.r:expect_close(20))
    assert.is_true(socket.gettime() - t0 < 15)
    assert.is_true(p:wait_exit(20), p:log())
    -- the handler's receive ended with the connection: no close frame came
    assert.truthy(p:log():find("WS CLOSED 1006", 1, true), p:log())
  end)

  -- past the 64 idle connections that keep their dispatcher (sconn.c's
  -- doze list), an idle WebSocket's connection gives it back and takes a
  -- new one at its next byte, or when the server tells it to go
  for _, how in ipairs { "/close?30", "/drain?30" } do
    it("echoes on and sends 1001 to WebSockets that gave back their connection's dispatcher, " .. how, function()
      p = start()
      local n, conns = 80, {}
      finally(function() for _, c in ipairs(conns) do c:close_socket() end end)
      for i = 1, n do
        conns[i] = assert(raw.connect(p.port, "/ws"))
        conns[i]:send("text", "hi " .. i)
        assert.equal("hi " .. i, assert(conns[i]:frame(10)).payload)
      end
      -- the first ones went idle longest ago: asleep by now
      for i = 1, n do
        conns[i]:send("binary", ("x"):rep(i))
        assert.equal(("x"):rep(i), assert(conns[i]:frame(10)).payload)
      end
      assert(h.raw_request(p.port, h.req("GET", how)))
      for i = 1, n do
        local f = assert(conns[i]:frame(10))
        assert.equal(raw.OP.close, f.op)
        assert.equal(1001, f.code)
        conns[i]:send("close", raw.close_payload(1001))
      end
      assert.is_true(p:wait_exit(30), p:log())
      local _, closed = p:log():gsub("WS CLOSED 1001", "")
      assert.equal(n, closed)
    end)
  end

  it("closes with 1001 a WebSocket accepted after the close began", function()
    p = start()
    -- the handshake reaches the handler before server:close, which answers
    -- it a second later
    local sock, r = assert(h.connect(p.port))
    finally(function() sock:close() end)
    assert(sock:send("GET /ws?slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
    socket.sleep(0.2)
    assert(h.raw_request(p.port, h.req("GET", "/close?30")))
    local res = assert(r:final_response())
    assert.equal(101, res.status)
    local c = raw.wrap(sock, r)
    local f = assert(c:frame(10))
    assert.equal(raw.OP.close, f.op)
    assert.equal(1001, f.code)
    c:send("close", raw.close_payload(1001))
    assert.is_true(r:expect_close(10))
    assert.is_true(p:wait_exit(20), p:log())
  end)
end)
