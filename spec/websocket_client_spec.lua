-- lhyper.websocket.connect against lhyper's own server (spec/app.lua) and
-- Python's websockets server; each client runs in a fresh lua5.4 (upstreams.client).
local h = require "helper"
local up = require "upstreams"

local function run(src, port, limit) return up.run(src, { port = port }, limit or 30) end

describe("lhyper.websocket.connect", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("echoes through lhyper's server and closes with a code and reason", function()
    local r = run([[
local ws = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/ws/record?id=c1"))
say("state=" .. ws.state)
for i, m in ipairs { "hello", "", ("z"):rep(1048576), "\u{3ba}\u{1f79}" } do
  assert(ws:send(m))
  local got, kind = assert(ws:receive())
  say("echo" .. i .. "=" .. tostring(got == m) .. ":" .. kind)
end
assert(ws:send("\0\1\255", "binary"))
local got, kind = ws:receive()
say("binary=" .. tostring(got == "\0\1\255") .. ":" .. kind)
assert(ws:ping("keepalive"))
say("close=" .. tostring(ws:close(4002, "client done")))
say("code=" .. ws.close_code .. ":" .. ws.close_reason .. ":" .. ws.state)
local msg, err, k = ws:receive()
say("after=" .. tostring(msg) .. ":" .. k)
local ok, e2, k2 = ws:send("late")
say("send_after=" .. tostring(ok) .. ":" .. k2)
]], srv.port)
    assert.equal("open", r.state)
    for i = 1, 4 do assert.equal("true:text", r["echo" .. i]) end
    assert.equal("true:binary", r.binary)
    assert.equal("true", r.close)
    assert.equal("4002::closed", r.code) -- the server echoes the code, no reason
    assert.equal("nil:closed", r.after)
    assert.equal("nil:closed", r.send_after)
    local res = assert(h.raw_request(srv.port, h.req("GET", "/ws/result?id=c1")))
    assert.truthy(res.body:find("code=4002", 1, true), res.body)
    assert.truthy(res.body:find("reason=client done", 1, true), res.body)
  end)

  it("sees the server's close: messages() ends, close_code and close_reason tell why", function()
    local r = run([[
local ws = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/ws/close?code=4003&reason=server%20done"))
assert(ws:send("go"))
local n = 0
for _ in ws:messages() do n = n + 1 end
say("n=" .. n)
say("code=" .. ws.close_code .. ":" .. ws.close_reason .. ":" .. ws.state)
]], srv.port)
    assert.equal("0", r.n)
    assert.equal("4003:server done:closed", r.code)
  end)

  it("negotiates a subprotocol and permessage-deflate", function()
    local r = run([[
local ws = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/ws/record?protocols=chat&compress=1",
  { protocols = { "x-other", "chat" }, compress = true }))
say("protocol=" .. tostring(ws.protocol))
say("ext=" .. tostring(ws.extensions))
local big = ("compress me "):rep(20000)
assert(ws:send(big))
say("echo=" .. tostring(ws:receive() == big))
ws:close()
]], srv.port)
    assert.equal("chat", r.protocol)
    assert.truthy(r.ext:find("^permessage%-deflate"), r.ext)
    assert.equal("true", r.echo)
  end)

  it("returns nil, err when the handshake fails, and raises on misuse", function()
    local r = run([[
local ws, err, kind = lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/status/404")
say("404=" .. tostring(ws) .. ":" .. kind .. ":" .. tostring(err.status))
ws, err, kind = lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/ws/echo",
  { headers = { ["sec-websocket-version"] = "99" } })
say("version=" .. tostring(ws) .. ":" .. tostring(err.status))
local s = require("socket").bind("127.0.0.1", 0)
local _, free = s:getsockname()
s:close()
ws, err, kind = lhyper.websocket.connect("ws://127.0.0.1:" .. free .. "/")
say("refused=" .. tostring(ws) .. ":" .. kind)
ws, err, kind = lhyper.websocket.connect("wss://127.0.0.1:" .. free .. "/") -- over TLS: websocket_tls_spec
say("wss=" .. tostring(ws) .. ":" .. kind)
say("bad_url=" .. tostring(pcall(lhyper.websocket.connect, "ftp://x/")))
say("bad_opt=" .. tostring(pcall(lhyper.websocket.connect, "ws://127.0.0.1/", { nope = 1 })))
]], srv.port)
    assert.equal("nil:parse:404", r["404"])
    assert.equal("nil:426", r.version)
    assert.equal("nil:io", r.refused)
    assert.equal("nil:io", r.wss)
    assert.equal("false", r.bad_url)
    assert.equal("false", r.bad_opt)
  end)

  it("raises on a bad close code or reason, and outside a task", function()
    local r = run([[
local ws = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/ws/echo"))
say("1005=" .. tostring(pcall(ws.close, ws, 1005)))
say("long=" .. tostring(pcall(ws.close, ws, 1000, ("r"):rep(124))))
say("utf8=" .. tostring(pcall(ws.close, ws, 1000, "\xff")))
say("bad_kind=" .. tostring(pcall(ws.send, ws, "x", "json")))
local ok, err, kind = ws:send("\xff\xfe")
say("bad_text=" .. tostring(ok) .. ":" .. kind)
say("state=" .. ws.state)
ws:close()
]], srv.port)
    assert.same({ "false", "false", "false", "false", "nil:user_body", "open" },
      { r["1005"], r.long, r.utf8, r.bad_kind, r.bad_text, r.state })
  end)

  it("closes with 1000 at <close> and 1001 when collected", function()
    run([[
do
  local ws <close> = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/ws/record?id=c_close"))
  assert(ws:send("x"))
  assert(ws:receive())
end
local ws = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/ws/record?id=c_gc"))
assert(ws:send("y"))
assert(ws:receive())
ws = nil
collectgarbage()
collectgarbage()
lhyper.sleep(0.2)
]], srv.port)
    for id, code in pairs { c_close = "1000", c_gc = "1001" } do
      local body
      for _ = 1, 50 do
        body = assert(h.raw_request(srv.port, h.req("GET", "/ws/result?id=" .. id))).body
        if body:find("code=") then break end
        h.sleep(0.05)
      end
      assert.truthy(body:find("code=" .. code, 1, true), id .. ": " .. body)
    end
  end)

  it("tells WebSocket requests from others with is_request", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/ws/maybe")))
    assert.equal(200, res.status)
    assert.equal("plain page", res.body)
    local r = run([[
local ws = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/ws/maybe"))
assert(ws:send("hi"))
say("echo=" .. ws:receive())
ws:close()
]], srv.port)
    assert.equal("hi", r.echo)
  end)

  describe("against Python's websockets server", function()
    local pysrv
    setup(function()
      pysrv = up.python([[
import asyncio, os, websockets
async def handler(ws, path=None):
    async for m in ws:
        if m == "close please":
            await ws.close(4004, "python done")
            return
        await ws.send(m)
async def main():
    async with websockets.serve(handler, "127.0.0.1", 0, compression="deflate", max_size=2**24,
                                subprotocols=["chat"]) as s:
        port = s.sockets[0].getsockname()[1]
        print("PGID %d PORT %d" % (os.getppid(), port), flush=True)
        await asyncio.sleep(150)
asyncio.run(main())
]])
    end)
    teardown(function() if pysrv then pysrv:stop() end end)

    it("echoes, compressed, and sees the server close with its code", function()
      local r = run([[
local ws = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/", { compress = true,
  protocols = { "chat" }, max_message = 8 * 1024 * 1024 }))
say("protocol=" .. tostring(ws.protocol))
say("ext=" .. tostring(ws.extensions))
local ok = true
for _, m in ipairs { "hi", ("x"):rep(200000), ("\u{3ba}"):rep(1000), ("b"):rep(4 * 1024 * 1024) } do
  assert(ws:send(m))
  ok = ok and ws:receive() == m
end
assert(ws:send("\0\1\2", "binary"))
local got, kind = ws:receive()
say("binary=" .. tostring(got == "\0\1\2") .. ":" .. kind)
say("echo=" .. tostring(ok))
assert(ws:send("close please"))
local msg, err, k = ws:receive()
say("end=" .. tostring(msg) .. ":" .. k .. ":" .. ws.close_code .. ":" .. ws.close_reason)
]], pysrv.port)
      assert.equal("chat", r.protocol)
      assert.truthy(r.ext:find("^permessage%-deflate"), r.ext)
      assert.equal("true", r.echo)
      assert.equal("true:binary", r.binary)
      assert.equal("nil:closed:4004:python done", r["end"])
    end)
  end)
end)
