-- WebSockets and the task runtime: tasks cancelled while they wait in
-- ws:receive(), ws:send() or ws:close(), a client that goes away, and who
-- closes a ws when the task that accepted or opened it ends. Each case is a
-- server and its clients in one fresh lua5.4 (under the sanitizer or
-- valgrind when the suite runs them), printing key=value lines.
local h = require "helper"
local up = require "upstreams"

local function run(src, limit)
  local prog = up.program(src, [[
local wsm = lhyper.websocket
-- a server on a free port; handler(req) for every request
local function serve(handler)
  return assert(lhyper.server { host = "127.0.0.1", port = 0, handler = handler })
end
]])
  local file = h.tmpname(".lua")
  h.write_file(file, prog)
  local out, code = h.run(string.format(
    "cd %s && LUA_PATH=%s LUA_CPATH=%s %stimeout -s KILL %d %s%s%s %s 2>&1",
    h.shell_quote(h.ROOT), h.shell_quote(h.LUA_PATH), h.shell_quote(h.LUA_CPATH), h.CLIENT_ENV,
    limit or 60, h.PRELOAD_ENV, h.WRAP, h.LUA, file))
  os.remove(file)
  assert.equal(0, code, out)
  assert.is_nil(out:find("ERROR", 1, true), out)
  assert.is_nil(out:find("Sanitizer", 1, true) or out:find("runtime error:", 1, true), out)
  assert.is_false(h.valgrind_report(out), out)
  return up.parse(out), out
end

describe("WebSocket waits and cancellation", function()
  it("a receive cancelled or timed out leaves no receiver behind and loses no message", function()
    local r = run [[
local socks = {}
local srv = serve(function(req)
  local ws = assert(wsm.accept(req))
  socks[#socks + 1] = ws
  local c = lhyper.condition()
  c:wait()
end)
local c1 = assert(wsm.connect("ws://127.0.0.1:" .. srv.port .. "/"))
local c2 = assert(wsm.connect("ws://127.0.0.1:" .. srv.port .. "/"))
while #socks < 2 do lhyper.sleep(0.01) end
local ws1, ws2 = socks[1], socks[2]
-- cancelled in its wait; then other tasks (on the pool's threads) wait
for _ = 1, 3 do
  local a = lhyper.spawn(function() return ws1:receive() end)
  lhyper.sleep(0.05)
  a:cancel()
  collectgarbage()
  local b = lhyper.spawn(function() return ws2:receive() end)
  lhyper.sleep(0.05)
  b:cancel()
end
local c = lhyper.spawn(function() return ws1:receive() end)
lhyper.sleep(0.05)
assert(c1:send("to one"))
say("after_cancel=" .. table.concat({ tostring(c:join(5)) }, ":"))
-- under lhyper.timeout, in the same task
local ok, err, kind = lhyper.timeout(0.2, function() return ws2:receive() end)
say("timeout=" .. tostring(ok) .. ":" .. tostring(kind))
assert(c2:send("to two"))
say("after_timeout=" .. tostring(ws2:receive()))
-- a message begun when the receiver was cancelled comes whole to the next
local d = lhyper.spawn(function() return ws1:receive() end)
lhyper.sleep(0.05)
local big = ("0123456789"):rep(100000)
assert(c1:send(big))
say("whole=" .. tostring(d:join(5) == big))
]]
    assert.equal("to one", r.after_cancel)
    assert.equal("nil:timeout", r.timeout)
    assert.equal("to two", r.after_timeout)
    assert.equal("true", r.whole)
  end)

  it("wakes every task waiting in ws:close()", function()
    local r = run [[
local srv = serve(function(req)
  local ws = assert(wsm.accept(req))
  local res = {}
  local tasks = {}
  for i = 1, 3 do
    tasks[i] = lhyper.spawn(function() return ws:close(4000 + i) end)
  end
  -- one more, cancelled while it waits: the others are not disturbed
  local gone = lhyper.spawn(function() return ws:close() end)
  lhyper.sleep(0.1)
  gone:cancel()
  for i = 1, 3 do res[i] = tostring((tasks[i]:join(10))) end
  say("closers=" .. table.concat(res, ","))
  say("code=" .. tostring(ws.close_code))
end)
local c = assert(wsm.connect("ws://127.0.0.1:" .. srv.port .. "/"))
lhyper.sleep(0.3) -- the closers wait for our answer meanwhile
say("client=" .. tostring(c:receive()) .. ":" .. tostring(c.close_code))
lhyper.sleep(0.5)
]]
    assert.equal("true,true,true", r.closers)
    assert.equal("4001", r.code)
    assert.equal("nil:4001", r.client)
  end)

  it("sends the rest of a message whose sender was cancelled between frames", function()
    for _, compress in ipairs { "false", "true" } do
      local r = run(([[
-- 16 MiB that deflate can hardly shrink: 64 KiB blocks (longer than its
-- window) of pseudo-random bytes, each numbered
local words, x = {}, 12345
for i = 1, 16384 do
  x = (x * 1103515245 + 12345) %% 2147483648
  words[i] = string.pack("<I4", x)
end
local block, parts = table.concat(words), {}
for i = 1, 256 do parts[i] = string.pack("<I4", i) .. block:sub(5) end
local big = table.concat(parts)
words, block, parts = nil, nil, nil
lhyper.sleep(0) -- the loop's clock moves on past the making of it
local srv = serve(function(req)
  local ws = assert(wsm.accept(req, { fragment_size = 16384, compress = %s }))
  local s = lhyper.spawn(function() return ws:send(big, "binary") end)
  lhyper.sleep(0.5)
  -- another sender waits for the first one's message to end
  local s2 = lhyper.spawn(function() return ws:send("queued") end)
  lhyper.sleep(0.1)
  say("sender_waits=" .. tostring(not s.done and not s2.done))
  s:cancel()
  say("queued_sent=" .. tostring(s2:join(30)))
  say("then=" .. tostring(ws:send("after")))
  ws:receive()
end)
local c = assert(wsm.connect("ws://127.0.0.1:" .. srv.port .. "/", { max_message = 64 * 1024 * 1024, compress = %s }))
lhyper.sleep(1) -- not reading: the sender waits for room
local m, kind = c:receive()
say("first=" .. #m .. ":" .. kind)
say("same=" .. tostring(m == big))
say("second=" .. tostring(c:receive()))
say("third=" .. tostring(c:receive()))
c:close()
]]):format(compress, compress), 120)
      assert.equal("true", r.sender_waits, compress)
      assert.equal("true", r["then"], compress)
      assert.equal("16777216:binary", r.first, compress)
      assert.equal("true", r.same, compress)
      assert.equal("true", r.queued_sent, compress)
      assert.equal("queued", r.second, compress)
      assert.equal("after", r.third, compress)
    end
  end)

  it("wakes a handler's receiver and sender with 'closed' when the client goes away", function()
    local r = run [[
local srv = serve(function(req)
  local ws = assert(wsm.accept(req, { fragment_size = 16384 }))
  local rd = lhyper.spawn(function() return ws:receive() end)
  local wr = lhyper.spawn(function() return ws:send(("z"):rep(8 * 1024 * 1024)) end)
  local _, _, k1 = rd:join(10)
  local _, _, k2 = wr:join(10)
  say("receiver=" .. tostring(k1))
  say("sender=" .. tostring(k2))
  say("code=" .. tostring(ws.close_code))
  say("handler_done=true")
end)
-- a client that upgrades and then drops the connection without a close frame
local res = assert(lhyper.request { url = "http://127.0.0.1:" .. srv.port .. "/", headers = {
  upgrade = "websocket", connection = "Upgrade", ["sec-websocket-version"] = "13",
  ["sec-websocket-key"] = "dGhlIHNhbXBsZSBub25jZQ==" } })
say("status=" .. res.status)
lhyper.sleep(0.5)
res:close()
lhyper.sleep(1)
]]
    assert.equal("101", r.status)
    assert.equal("closed", r.receiver)
    assert.equal("closed", r.sender)
    assert.equal("1006", r.code)
    assert.equal("true", r.handler_done)
  end)
end)

describe("who closes a WebSocket", function()
  it("a ws accepted in a child task closes when that task ends: 1000, 1011 or 1001", function()
    local r = run [[
local srv = serve(function(req)
  local how = req.query
  local child = lhyper.spawn(function()
    local ws = assert(wsm.accept(req))
    ws:send("hi")
    if how == "raise" then error("child failed") end
    if how == "cancel" then lhyper.sleep(30) end
    if how == "return_ws" then return ws end
  end)
  if how == "cancel" then lhyper.sleep(0.2) child:cancel() end
  if how == "return_ws" then
    local ws = child:join()
    ws:send("still mine")
    ws:receive()
  end
  lhyper.sleep(30) -- the handler outlives the child
end)
for _, how in ipairs { "return", "raise", "cancel", "return_ws" } do
  local c = assert(wsm.connect("ws://127.0.0.1:" .. srv.port .. "/?" .. how))
  local t0 = lhyper.now()
  local first = c:receive()
  local second = c:receive()
  say(how .. "=" .. tostring(first) .. ":" .. tostring(second) .. ":" .. tostring(c.close_code) ..
    ":" .. tostring(lhyper.now() - t0 < 15))
  if c.is_open then c:close() end
end
]]
    assert.equal("hi:nil:1000:true", r["return"])
    assert.equal("hi:nil:1011:true", r.raise)
    assert.equal("hi:nil:1001:true", r.cancel)
    assert.equal("hi:still mine:nil:true", r.return_ws)
  end)

  it("a client ws closes with a close frame when the task that opened it ends", function()
    local r = run [[
local codes = {}
local srv = serve(function(req)
  local ws = assert(wsm.accept(req))
  ws:receive()
  ws:receive()
  codes[req.query] = ws.close_code .. ":" .. ws.close_reason
end)
local url = "ws://127.0.0.1:" .. srv.port .. "/?"
lhyper.spawn(function() assert(wsm.connect(url .. "returned")):send("x") end):join()
local t = lhyper.spawn(function() assert(wsm.connect(url .. "cancelled")):send("x") lhyper.sleep(30) end)
lhyper.sleep(0.3)
t:cancel()
lhyper.spawn(function() assert(wsm.connect(url .. "raised")):send("x") error("oops", 0) end):join()
-- returned to its parent: stays open
local ws = lhyper.spawn(function() return assert(wsm.connect(url .. "kept")) end):join()
ws:send("x")
lhyper.sleep(0.5)
say("kept_open=" .. tostring(ws.is_open))
ws:close(4001)
lhyper.sleep(0.5)
for _, k in ipairs { "returned", "cancelled", "raised", "kept" } do say(k .. "=" .. tostring(codes[k])) end
]]
    assert.equal("1000:", r.returned)
    assert.equal("1001:going away", r.cancelled)
    assert.equal("1011:task failed", r.raised)
    assert.equal("true", r.kept_open)
    assert.equal("4001:", r.kept)
  end)
end)
