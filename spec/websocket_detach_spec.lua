-- ws:detach(on_message, on_close): a WebSocket served by callbacks, with no
-- task waiting while it is idle. The app runs in its own process (under the
-- sanitizer or valgrind when the suite runs them); the peers are raw
-- sockets (spec/wsraw.lua), Python's websockets and lhyper's own client.
local h = require "helper"
local raw = require "wsraw"
local socket = require "socket"

local PY = "/usr/bin/python3"

local APP = [[
local lhyper = require "lhyper"
local websocket = lhyper.websocket
local function log(...) io.stderr:write(table.concat({ ... }, " "), "\n") end
local reqs = setmetatable({}, { __mode = "k" })
local busy, most = 0, 0
local server, routed, limited
server = assert(lhyper.server { host = "127.0.0.1", port = 0, on_error = function(err, info)
  log("ON_ERROR", info.phase, tostring(type(err) == "table" and err.message or err))
end, handler = function(req)
  local path = req.path
  if path == "/reqs" then
    collectgarbage(); collectgarbage()
    local n = 0
    for _ in pairs(reqs) do n = n + 1 end
    return 200, nil, tostring(n)
  elseif path == "/most" then
    return 200, nil, tostring(most)
  elseif path == "/close" or path == "/close-short" then
    lhyper.spawn(function()
      routed:close()
      limited:close()
      server:close(path == "/close" and 5 or 0.3)
    end):detach()
    return 200, nil, "ok"
  elseif path == "/pull" then -- a plain echo, for the client case
    local ws = assert(websocket.accept(req))
    for msg, kind in ws:messages() do ws:send(msg, kind) end
    return
  elseif path == "/client" then -- lhyper's client, detached
    local got = {}
    local ws = assert(websocket.connect("ws://127.0.0.1:" .. server.port .. "/pull"))
    ws:detach(function(_, msg) got[#got + 1] = msg end,
      function(_, code) log("CLIENT CLOSED", code) end)
    for i = 1, 3 do assert(ws:send("c" .. i)) end
    for _ = 1, 100 do
      if #got == 3 then break end
      lhyper.sleep(0.01)
    end
    ws:close()
    return 200, nil, table.concat(got, ",")
  end
  local ws = assert(websocket.accept(req, { ping_interval = path == "/ping" and 0.2 or nil,
    ping_timeout = path == "/ping" and 0.3 or nil, max_message = 4 * 1024 * 1024 }))
  reqs[req] = true
  if path == "/twice" then
    ws:detach(function() end)
    local ok, err = pcall(ws.detach, ws, function() end)
    log("TWICE", tostring(ok), tostring(err))
    ok, err = pcall(ws.receive, ws)
    log("RECEIVE", tostring(ok), tostring(err))
    return
  end
  if path == "/other" then -- a task that does not own it cannot detach it
    local ok, err = lhyper.spawn(function()
      return pcall(ws.detach, ws, function() end)
    end):join()
    log("OTHER", tostring(err))
  end
  ws:detach(function(ws, msg, kind)
    busy = busy + 1
    if busy > most then most = busy end
    if msg == "boom" then busy = busy - 1; error("boom in the callback") end
    if msg:sub(1, 5) == "sleep" then lhyper.sleep(tonumber(msg:sub(7))) end
    if msg == "child" then
      lhyper.spawn(function()
        local _ <close> = setmetatable({}, { __close = function() log("CHILD CLOSED") end })
        lhyper.sleep(2)
        log("CHILD RAN")
      end)
      lhyper.sleep(0.05) -- the child starts
    end
    if msg == "close" then ws:close(4000, "asked") end
    ws:send(#msg > 64 and ("len " .. #msg) or (msg .. "!"), kind)
    busy = busy - 1
  end, function(ws, code, reason)
    log("CLOSED", tostring(code), reason, tostring(ws.state))
  end)
end })
-- a router's WebSocket route, through a layer
local app = lhyper.router()
app:layer(function(inner)
  return function(req)
    log("LAYER", req.path)
    return inner(req)
  end
end)
app:ws("/r/{name}", function(ws, req)
  local name = req.params.name
  ws:detach(function(ws, msg) ws:send(name .. ":" .. msg) end,
    function(_, code) log("ROUTE CLOSED", name, tostring(code)) end)
end)
routed = assert(lhyper.server { host = "127.0.0.1", port = 0, handler = app })
io.stderr:write("ROUTED ", routed.port, "\n")
-- one handler at a time: a detached ws does not hold it
limited = assert(lhyper.server { host = "127.0.0.1", port = 0, max_in_flight = 1,
  handler = function(req)
    if req.path ~= "/ws" then return 200, nil, "plain" end
    assert(websocket.accept(req)):detach(function(ws, msg) ws:send(msg .. "!") end)
  end })
io.stderr:write("LIMITED ", limited.port, "\n")
io.stderr:write("PORT ", server.port, "\n")
lhyper.run()
io.stderr:write("EXIT\n")
]]

local function get(port, path)
  local sock = assert(h.connect(port))
  sock:settimeout(10)
  sock:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
  local all = sock:receive("*a")
  sock:close()
  return all and all:match("\r\n\r\n(.*)$")
end

local function open(port, path)
  local c, r = raw.connect(port, path or "/ws")
  assert(c, r)
  assert(r.status == 101, "no 101")
  return c
end

-- the next data frame's op and payload (pings are answered)
local function next_data(c)
  while true do
    local f, err = c:frame(10)
    if not f then return nil, err end
    if f.op == raw.OP.ping then c:send("pong", f.payload)
    elseif f.op ~= raw.OP.pong then return f.op, f.payload, f end
  end
end

-- the server's close frame, which must carry code (and reason, when
-- given), answered with the same code and reason
local function answer_close(c, code, reason)
  local got, why = c:expect_close(10)
  assert.are.equal(code, got)
  if reason then assert.are.equal(reason, why) end
  c:send("close", raw.close_payload(got, why))
end

-- a ws that echoed "x" on path
local function echoed(port, path)
  local c = open(port, path)
  c:send("text", "x")
  assert.are.equal("x!", select(2, next_data(c)))
  return c
end

local function count(text, what)
  local n = 0
  for _ in text:gmatch(what) do n = n + 1 end
  return n
end

describe("ws:detach", function()
  local p
  before_each(function()
    p = h.start_script(APP, nil, 120)
    p.port = p:port(30)
    assert(p.port, "the app did not start:\n" .. p:log())
  end)
  after_each(function() p:stop() end)

  it("echoes text and binary from its callback while the handler has returned and its req is gone", function()
    local c = open(p.port)
    for i = 1, 5 do
      c:send("text", "hello " .. i)
      local op, payload = next_data(c)
      assert.are.equal(raw.OP.text, op)
      assert.are.equal("hello " .. i .. "!", payload)
    end
    c:send("binary", "\0\1\2")
    local op, payload = next_data(c)
    assert.are.equal(raw.OP.binary, op)
    assert.are.equal("\0\1\2!", payload)
    -- the handler's req was collected, the ws lives on
    assert.are.equal("0", get(p.port, "/reqs"))
    c:send("text", "still")
    assert.are.equal("still!", select(2, next_data(c)))
    c:send("close", raw.close_payload(1000, "bye"))
    assert.are.equal(1000, (c:expect_close(10)))
    assert.is_true(p:wait_log("CLOSED 1000 bye closed", 10))
    c:close_socket()
  end)

  it("hands messages over one at a time, in order, and gathers fragments", function()
    local c = open(p.port)
    c:send("text", "sleep 0.2")
    c:send("text", "second")
    c:send("text", "frag", { fin = false })
    c:send("cont", "mented")
    local t0 = socket.gettime()
    assert.are.equal("sleep 0.2!", select(2, next_data(c)))
    assert.are.equal("second!", select(2, next_data(c)))
    assert.are.equal("fragmented!", select(2, next_data(c)))
    assert.is_true(socket.gettime() - t0 >= 0.15)
    assert.are.equal("1", get(p.port, "/most"))
    c:close_socket()
    assert.is_true(p:wait_log("CLOSED 1006", 10))
  end)

  it("gathers a message that comes in pieces with pauses between them", function()
    local c = open(p.port)
    -- a fragment, then the rest of the message later
    c:send("text", "first half, ", { fin = false })
    socket.sleep(0.1)
    c:send("cont", "second half")
    assert.are.equal("first half, second half!", select(2, next_data(c)))
    -- one 100,000-byte frame written in three parts, a header split too
    local frame = raw.frame("binary", string.rep("b", 100000))
    c:send_raw(frame:sub(1, 3))
    socket.sleep(0.1)
    c:send_raw(frame:sub(4, 50000))
    socket.sleep(0.1)
    c:send_raw(frame:sub(50001))
    local op, payload = next_data(c)
    assert.are.equal(raw.OP.binary, op)
    assert.are.equal("len 100000", payload)
    c:send("text", "after")
    assert.are.equal("after!", select(2, next_data(c)))
    c:close_socket()
  end)

  it("fails the ws with 1011 when its callback raises, reports it to on_error, then calls on_close", function()
    local c = open(p.port)
    c:send("text", "boom")
    answer_close(c, 1011, "handler failed")
    assert.is_true(p:wait_log("CLOSED 1011 handler failed closed", 10))
    -- reported as the server's errors are, with the callback's traceback
    local line = p:log():match("ON_ERROR websocket [^\n]*boom in the callback[^\n]*\n[^\n]*")
    assert.is_truthy(line)
    assert.is_truthy(p:log():find("stack traceback", 1, true))
    c:close_socket()
    -- the server serves on
    echoed(p.port):close_socket()
  end)

  it("closes what a callback opened when it returns", function()
    local c = open(p.port)
    c:send("text", "child")
    assert.are.equal("child!", select(2, next_data(c)))
    assert.is_true(p:wait_log("CHILD CLOSED", 10))
    socket.sleep(0.3)
    assert.is_nil(p:log():find("CHILD RAN", 1, true))
    c:close_socket()
  end)

  it("closes from its callback with the code given, and on_close runs once", function()
    local c = open(p.port)
    c:send("text", "close")
    answer_close(c, 4000, "asked")
    assert.is_true(p:wait_log("CLOSED 4000 asked closed", 10))
    socket.sleep(0.2)
    assert.are.equal(1, count(p:log(), "CLOSED 4000"))
    c:close_socket()
  end)

  it("tells on_close of a peer gone without a close frame (1006)", function()
    echoed(p.port):close_socket()
    assert.is_true(p:wait_log("CLOSED 1006", 10))
  end)

  it("pings while idle and fails a peer that never answers (1011)", function()
    local c = open(p.port, "/ping")
    local f = assert(c:frame(5))
    assert.are.equal(raw.OP.ping, f.op)
    -- no pong: the keepalive gives up
    local code
    repeat
      f = assert(c:frame(5))
      if f.op == raw.OP.close then code = f.code end
    until code
    assert.are.equal(1011, code)
    assert.is_true(p:wait_log("CLOSED 1011 keepalive ping timed out", 10))
    c:close_socket()
  end)

  it("keeps a peer that answers its pings", function()
    local c = open(p.port, "/ping")
    local t0 = socket.gettime()
    while socket.gettime() - t0 < 1 do
      local f = assert(c:frame(5))
      assert.are.equal(raw.OP.ping, f.op)
      c:send("pong", f.payload)
    end
    c:send("text", "alive")
    assert.are.equal("alive!", select(2, next_data(c)))
    c:close_socket()
  end)

  it("sends 1001 at server:close(grace) and calls on_close", function()
    local c = echoed(p.port)
    assert.are.equal("ok", get(p.port, "/close"))
    answer_close(c, 1001, "server shutting down")
    assert.is_true(p:wait_log("CLOSED 1001 server shutting down", 10))
    assert.is_true(p:wait_log("EXIT", 10))
    c:close_socket()
  end)

  it("drops a peer that does not answer 1001 once the grace runs out, and calls on_close", function()
    local c = echoed(p.port)
    assert.are.equal("ok", get(p.port, "/close-short"))
    assert.are.equal(1001, (c:expect_close(10)))
    -- no answer: the server ends the connection after its grace
    assert.is_true(p:wait_log("CLOSED 1006 connection lost", 10))
    assert.is_true(p:wait_log("EXIT", 10))
    c:close_socket()
  end)

  it("serves a router's WebSocket route through its layers", function()
    local port = tonumber(p:log():match("ROUTED (%d+)"))
    local c = open(port, "/r/ann")
    c:send("text", "hi")
    assert.are.equal("ann:hi", select(2, next_data(c)))
    assert.is_truthy(p:log():find("LAYER /r/ann", 1, true))
    c:send("close", raw.close_payload(1000, ""))
    assert.are.equal(1000, (c:expect_close(10)))
    assert.is_true(p:wait_log("ROUTE CLOSED ann 1000", 10))
    c:close_socket()
  end)

  it("does not count in max_in_flight once its handler returned", function()
    local port = tonumber(p:log():match("LIMITED (%d+)"))
    local c = echoed(port, "/ws")
    assert.are.equal("plain", get(port, "/plain"))
    c:send("text", "y")
    assert.are.equal("y!", select(2, next_data(c)))
    c:close_socket()
  end)

  it("refuses a second detach and receive on a detached ws, and a task that does not own it", function()
    local c = open(p.port, "/twice")
    assert.is_true(p:wait_log("TWICE false", 10))
    assert.is_truthy(p:log():find("already detached", 1, true))
    assert.is_truthy(p:log():find("RECEIVE false", 1, true))
    assert.is_truthy(p:log():find("detached, its messages go to its callback", 1, true))
    c:close_socket()
    local c2 = open(p.port, "/other")
    assert.is_true(p:wait_log("OTHER", 10))
    assert.is_truthy(p:log():find("only the task that owns it can detach it", 1, true))
    c2:send("text", "mine")
    assert.are.equal("mine!", select(2, next_data(c2)))
    c2:close_socket()
  end)

  it("detaches lhyper's client too", function()
    assert.are.equal("c1,c2,c3", get(p.port, "/client"))
    assert.is_true(p:wait_log("CLIENT CLOSED 1000", 10))
  end)

  it("serves Python's websockets client, a large message included #peers", function()
    local out = h.run(string.format("%stimeout -s KILL 60 %s -c %s 2>&1", h.CLIENT_ENV, PY, h.shell_quote(([[
import asyncio, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%d/ws", max_size=None) as ws:
        for i in range(100):
            await ws.send("m%%d" %% i)
            assert await ws.recv() == "m%%d!" %% i
        await ws.send("z" * (3 * 1024 * 1024))
        print(await ws.recv())
        await ws.close(1000, "done")
    print("ok")
asyncio.run(main())
]]):format(p.port))))
    assert.are.equal("len 3145728\nok\n", out)
    assert.is_true(p:wait_log("CLOSED 1000 done", 10))
  end)
end)
