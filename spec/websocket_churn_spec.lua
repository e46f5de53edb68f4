-- Many WebSockets at once, most of them idle at any moment: each echoes
-- messages of random sizes sent after random pauses, while another task
-- pushes messages to random ones and keepalive pings go out, some peers
-- compress, and the peers end in four ways (a close, a message after
-- which the handler returns, a dropped socket, the close the server sends
-- at the end). More WebSockets are open than idle connections keep their
-- dispatcher (64), so connections give their message state back and take
-- it again as bytes come and go. Every echo must come back intact, every
-- handler must end, and the server must go on answering. Over plain TCP
-- and over TLS (certificates by python3-trustme, spec/tls_certs.lua). The
-- app runs in its own process (under ASan in the suite's sanitizer pass).
local h = require "helper"
local tc = require "tls_certs"

local PY = "/usr/bin/python3"

local APP = [[
local lhyper = require "lhyper"
local O = assert(load("return " .. (arg[1] or "{}"), "=opts", "t", {}))()
local open, list = {}, {}
local server
server = assert(lhyper.server { host = "127.0.0.1", port = 0, tls = O.tls, handler = function(req)
  if req.path == "/open" then return 200, nil, tostring(#list) end
  if req.path == "/close" then
    lhyper.spawn(function() server:close(10) end):detach()
    return 200, nil, "ok"
  end
  local ws = assert(lhyper.websocket.accept(req, { ping_interval = 0.2, ping_timeout = 10,
    compress = req.query == "z" }))
  list[#list + 1] = ws
  open[ws] = #list
  for msg, kind in ws:messages() do
    if msg == "bye" then break end
    if not ws:send(msg, kind) then break end
  end
  -- out of the list: the last one takes its place
  local i, last = open[ws], list[#list]
  list[i], open[last] = last, i
  list[#list], open[ws] = nil, nil
  io.stderr:write("WS CLOSED ", tostring(ws.close_code), "\n")
end })
-- pushes from a task of its own to WebSockets that mostly wait in messages()
local pushes = 0
lhyper.every(0.02, function()
  for _ = 1, math.min(8, #list) do
    local ws = list[math.random(#list)]
    if ws:send("push", "text") then pushes = pushes + 1 end
  end
end)
io.stderr:write("PORT ", server.port, "\n")
lhyper.run()
io.stderr:write("PUSHES ", pushes, "\n")
]]

local CLIENT = [[
import asyncio, os, random, ssl, sys, urllib.request, websockets
port, n = int(sys.argv[1]), int(sys.argv[2])
random.seed(int(sys.argv[3]))
ctx = ssl.create_default_context(cafile=sys.argv[4]) if len(sys.argv) > 4 else None
scheme = "wss" if ctx else "ws"
SIZES = [0, 1, 125, 126, 4000, 65536, 70000]
stats = {"echoes": 0, "pushes": 0, "ends": {}}

async def recv_echo(ws, want):
    while True:
        got = await ws.recv()
        if got == "push":
            stats["pushes"] += 1
            continue
        assert got == want, "echo differs: %d bytes for %d" % (len(got), len(want))
        stats["echoes"] += 1
        return

async def peer(i):
    end = ["close", "bye", "drop", "server"][i % 4]
    ws = await websockets.connect("%s://localhost:%d/ws%s" % (scheme, port, "?z" if i % 3 == 0 else ""),
                                  max_size=None, ping_interval=None, ssl=ctx, open_timeout=60)
    for _ in range(random.randint(2, 6)):
        await asyncio.sleep(random.choice([0, 0.01, 0.05, 0.3]))
        size = random.choice(SIZES)
        if random.random() < 0.5:
            msg = "".join(random.choice("abcé€") for _ in range(size))
        else:
            msg = os.urandom(size)
        await ws.send(msg)
        await recv_echo(ws, msg)
    if end == "close":
        await ws.close(1000, "done")
    elif end == "bye":
        await ws.send("bye")
        try:
            while True:
                assert await ws.recv() == "push"
        except websockets.exceptions.ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1000, "bye: %r" % (e.rcvd,)
    elif end == "drop":
        ws.transport.abort()
    else:
        return ws
    stats["ends"][end] = stats["ends"].get(end, 0) + 1

async def main():
    left = [w for w in await asyncio.gather(*(peer(i) for i in range(n))) if w]
    await asyncio.get_running_loop().run_in_executor(None, lambda:
        urllib.request.urlopen("%s://localhost:%d/close" % ("https" if ctx else "http", port), context=ctx))
    for ws in left:
        try:
            while True:
                assert await ws.recv() == "push"
        except websockets.exceptions.ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1001, "server close: %r" % (e.rcvd,)
            stats["ends"]["server"] = stats["ends"].get("server", 0) + 1
    print("echoes", stats["echoes"], "pushes", stats["pushes"],
          " ".join("%s=%d" % kv for kv in sorted(stats["ends"].items())))

asyncio.run(main())
]]

-- undo: the test's h.undo() list
local function churn(undo, opts, ca)
  local p = h.start_script(APP, opts, 120)
  undo.add(function() p:stop() end)
  local port = assert(p:port(30), p:log())
  local n = 120
  local file = h.tmpname(".py")
  h.write_file(file, CLIENT)
  undo.add(function() os.remove(file) end)
  local out, code = h.run(("%stimeout -s KILL 90 %s %s %d %d %d %s 2>&1"):format(h.CLIENT_ENV, PY, file,
    port, n, 20261207, ca and h.shell_quote(ca) or ""))
  assert.equal(0, code, out .. "\n" .. p:log())
  local echoes, pushes = out:match("echoes (%d+) pushes (%d+)")
  assert(echoes, out)
  assert.is_true(tonumber(echoes) >= 2 * n, out)
  assert.is_true(tonumber(pushes) > 0, out)
  for _, k in ipairs { "close", "bye", "drop", "server" } do
    assert.truthy(out:find(k .. "=" .. n // 4, 1, true), out)
  end
  -- the server ends once its last WebSocket closed, each handler having ended
  assert.is_true(p:wait_exit(30), p:log())
  local _, closed = p:log():gsub("WS CLOSED ", "")
  assert.equal(n, closed, p:log())
  assert.truthy(p:log():find("PUSHES %d+"), p:log())
end

describe("WebSockets, many at once and mostly idle", function()
  it("echo intact while pushes and pings reach idle ones, and every handler ends however its peer goes", function()
    local undo = h.undo()
    finally(undo.run)
    churn(undo)
  end)

  it("the same over TLS #offpath", function()
    local certs, why = tc.make()
    if not certs then
      pending(why)
      return
    end
    local undo = h.undo()
    finally(undo.run)
    undo.add(certs.remove)
    churn(undo, { tls = certs.server_tls() }, certs.ca)
  end)
end)
