-- router:ws: WebSocket routes on lhyper.router, through the router's layers,
-- against spec/router_ws_app.lua, with Python's websockets and Node's ws as
-- clients and raw HTTP for what is not a handshake.
local h = require "helper"
local up = require "upstreams"
local socket = require "socket"

local PY = "/usr/bin/python3"
local NODE_ENV = "NODE_PATH=/usr/share/nodejs "

local function py(src, limit)
  return h.run(string.format("%stimeout -s KILL %d %s -c %s 2>&1", h.CLIENT_ENV, limit or 20, PY,
    h.shell_quote(src)))
end

local function node(src, limit)
  return h.run(string.format("%s%stimeout -s KILL %d node -e %s 2>&1", h.CLIENT_ENV, NODE_ENV,
    limit or 20, h.shell_quote(src)))
end

local function have_node_ws()
  return up.have("node") and os.execute(NODE_ENV .. "node -e \"require('ws')\" >/dev/null 2>&1") == true
end

describe("router:ws", function()
  local srv, log
  setup(function()
    log = h.tmpname(".log")
    srv = h.start_app("spec/router_ws_app.lua", { log = log })
  end)
  teardown(function()
    if srv then srv:stop() end
    os.remove(log)
  end)

  it("serves Python's websockets through the router's layers, with params and options", function()
    local out, code = py(([[
import asyncio, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%d/chat/lobby?token=ok", subprotocols=["chat"]) as ws:
        hello = await ws.recv()
        print("hello", hello)
        print("header_id", ws.response_headers.get("x-request-id"))
        for m in ["one", b"\x00\x01two", "x" * 70000]:
            await ws.send(m)
            assert await ws.recv() == m
        print("echoed")
    print("closed", ws.close_code)
asyncio.run(main())
]]):format(srv.port))
    assert.equal(0, code, out)
    local room, route, id, proto = out:match("hello room=(%S+) route=(%S+) id=(%S+) protocol=(%S+)")
    assert.equal("lobby", room, out)
    assert.equal("/chat/{room}", route, out)
    assert.equal("chat", proto, out)
    assert.truthy(id:find("^%x+$"), out)
    assert.equal(id, out:match("header_id (%S+)"), out) -- request_id's field on the 101
    assert.truthy(out:find("echoed\nclosed 1000", 1, true), out)
  end)

  it("serves Node's ws, with permessage-deflate when the route's options say so", function()
    if not have_node_ws() then
      pending("node and Debian's node-ws are needed")
      return
    end
    local out, code = node(([[
const WebSocket = require("ws");
const ws = new WebSocket("ws://127.0.0.1:%d/deflate?token=ok", { perMessageDeflate: true });
const msgs = ["hello", "y".repeat(200000), Buffer.from([0, 1, 2, 255])];
let i = -1;
ws.on("message", (data, isBinary) => {
  if (i < 0) console.log(data.toString());
  else {
    const want = msgs[i];
    const ok = typeof want === "string" ? (!isBinary && data.toString() === want) : (isBinary && Buffer.compare(data, want) === 0);
    console.log("echo" + i + "=" + ok);
  }
  i++;
  if (i < msgs.length) ws.send(msgs[i]); else ws.close(1000);
});
ws.on("close", (code) => console.log("close=" + code));
ws.on("error", (e) => console.log("ERROR " + e));
]]):format(srv.port))
    assert.equal(0, code, out)
    local r = up.parse(out)
    assert.truthy((r.extensions or ""):find("^permessage%-deflate"), out)
    for i = 0, 2 do assert.equal("true", r["echo" .. i], out) end
    assert.equal("1000", r.close, out)
  end)

  it("refuses a handshake a layer refuses, with the layer's answer", function()
    local out, code = py(([[
import asyncio, websockets
async def main():
    try:
        async with websockets.connect("ws://127.0.0.1:%d/echo") as ws:
            print("connected")
    except websockets.exceptions.InvalidStatusCode as e:
        print("status", e.status_code)
asyncio.run(main())
]]):format(srv.port))
    assert.equal(0, code, out)
    assert.truthy(out:find("status 401", 1, true), out)
  end)

  it("answers what is not a handshake as accept does: 426, 405 with Allow", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/echo?token=ok")))
    assert.equal(426, res.status)
    assert.equal("websocket", res.headers.get("upgrade"))
    res = assert(h.raw_request(srv.port, h.req("POST", "/echo?token=ok", { ["content-length"] = "0" })))
    assert.equal(405, res.status)
    assert.equal("GET, OPTIONS", res.headers.get("allow"))
    res = assert(h.raw_request(srv.port, h.req("OPTIONS", "/echo?token=ok")))
    assert.equal(204, res.status)
    assert.equal("GET, OPTIONS", res.headers.get("allow"))
    res = assert(h.raw_request(srv.port, h.req("HEAD", "/echo?token=ok")))
    assert.equal(405, res.status)
    -- a GET of the same pattern takes the plain GETs, the ws route the handshakes
    res = assert(h.raw_request(srv.port, h.req("GET", "/both?token=ok")))
    assert.equal(200, res.status)
    assert.equal("plain GET of /both\n", res.body)
    res = assert(h.raw_request(srv.port, h.req("HEAD", "/both?token=ok")))
    assert.equal(200, res.status)
    res = assert(h.raw_request(srv.port, h.req("OPTIONS", "/both?token=ok")))
    assert.equal("GET, HEAD, OPTIONS", res.headers.get("allow"))
    local out, code = py(([[
import asyncio, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%d/both?token=ok") as ws:
        await ws.send("over ws")
        print("got", await ws.recv())
asyncio.run(main())
]]):format(srv.port))
    assert.equal(0, code, out)
    assert.truthy(out:find("got over ws", 1, true), out)
  end)

  it("applies the route's accept options: max_message", function()
    local out, code = py(([[
import asyncio, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%d/small?token=ok") as ws:
        await ws.send("short")
        print("got", await ws.recv())
        await ws.send("longer than ten bytes")
        try:
            await ws.recv()
        except websockets.exceptions.ConnectionClosed as e:
            print("closed", e.rcvd.code)
asyncio.run(main())
]]):format(srv.port))
    assert.equal(0, code, out)
    assert.truthy(out:find("got short", 1, true), out)
    assert.truthy(out:find("closed 1009", 1, true), out)
  end)

  it("logs a WebSocket exchange in the access log with its 101", function()
    local out, code = py(([[
import asyncio, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%d/echo?token=ok&logged") as ws:
        await ws.send("x")
        await ws.recv()
asyncio.run(main())
]]):format(srv.port))
    assert.equal(0, code, out)
    local line
    local deadline = socket.gettime() + 10
    repeat
      socket.sleep(0.1)
      line = (h.read_file(log) or ""):match("[^\n]*GET /echo%?token=ok&logged[^\n]*")
    until line or socket.gettime() > deadline
    assert.truthy(line, h.read_file(log))
    assert.truthy(line:find('HTTP/1.1" 101 ', 1, true), line)
  end)

  it("raises when a route is added twice or its options are wrong", function()
    local out = h.lua [[
local lhyper = require "lhyper"
local app = lhyper.router()
app:ws("/a", function() end)
print("twice", pcall(app.ws, app, "/a", function() end))
print("fn", pcall(app.ws, app, "/b", "not a function"))
print("opt", pcall(app.ws, app, "/c", function() end, { max_mesage = 1 }))
print("val", pcall(app.ws, app, "/d", function() end, { max_message = 0 }))
print("ok", pcall(app.ws, app, "/e/{id}", function() end, { compress = true, protocols = { "x" } }))
]]
    assert.truthy(out:find('twice\tfalse\t[^\n]*"/a" conflicts with "/a"'), out)
    assert.truthy(out:find("fn\tfalse\t[^\n]*a function%(ws, req%) expected"), out)
    assert.truthy(out:find("opt\tfalse\t[^\n]*unknown option 'max_mesage'"), out)
    assert.truthy(out:find("val\tfalse\t[^\n]*'max_message' must be a positive integer"), out)
    assert.truthy(out:find("ok\ttrue"), out)
  end)
end)
