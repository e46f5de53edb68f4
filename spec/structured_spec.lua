-- Issue 18, items 2 and 3: what a handler or task opens (child tasks,
-- outbound responses, upgraded streams, timers) is closed when it ends or
-- is cancelled, not when the garbage collector runs; a stream closed by
-- another task wakes its reader; reads and idle streams time out.
local h = require "helper"

local established = h.established
local function wait_for(f, pred, t) return h.wait_for(f, pred, t, 0.03) end

local UPGRADE = "GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"

describe("structured concurrency in handlers", function()
  local srv, upstream
  setup(function()
    srv = h.start_server()
    upstream = h.start_server()
  end)
  teardown(function()
    if srv then srv:stop() end
    if upstream then upstream:stop() end
  end)

  local seq = 0
  local function key()
    seq = seq + 1
    return "st" .. seq
  end

  local function record(k) return h.record(srv.port, k) or {} end

  it("cancels a handler's child task, before the handler's own <close> variables, when the client leaves", function()
    local k = key()
    local sock = assert(h.connect(srv))
    assert(sock:send(h.req("GET", "/tree/child?key=" .. k)))
    h.sleep(0.1)
    sock:close()
    local rec, ok = wait_for(function() return record(k) end, function(r) return r.handler == "closed" end)
    assert.is_true(ok, h.serialize(rec))
    assert.equal("closed", rec.child)
    assert.equal("child;handler;", rec.order)
  end)

  it("cancels a child task when its handler returns", function()
    local k = key()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/tree/orphan?key=" .. k)))
    assert.equal("returned", res.body)
    h.sleep(0.1)
    local rec = record(k)
    -- it never ran (it would have started on the next loop iteration), or was closed
    assert.truthy(rec.child == nil or rec.child == "closed", h.serialize(rec))
  end)

  for _, mode in ipairs { "handler", "task", "close" } do
    it("closes an outbound response left unread when its " .. mode .. (mode == "close" and " is called" or " ends"), function()
      local k = key()
      local res = assert(h.raw_request(srv.port, h.req("GET", "/tree/res?mode=" .. mode .. "&up=" .. upstream.port .. "&key=" .. k)))
      assert.equal(200, res.status)
      local rec = record(k)
      local port = assert(tonumber(rec.local_port), h.serialize(rec))
      -- the connection the handler opened is gone at once, not at the next GC
      local n, ok = wait_for(function() return established(port) end, function(v) return v == 0 end, 1)
      assert.is_true(ok, n .. " ends of the outbound connection still established")
    end)
  end

  it("hands a response a child task returns to the task that joins it", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/tree/res?mode=join&n=200000&up=" .. upstream.port)))
    assert.equal(200, res.status)
    assert.equal("200000", res.body)
  end)

  it("closes an upgraded stream when the handler that upgraded returns", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(UPGRADE:format("/tree/stream-return")))
    assert.equal(101, assert(r:final_response()).status)
    local data, how = r:rest(2)
    assert.equal("bye", data)
    assert.equal("closed", how)
  end)

  it("wakes a task blocked in stream:read() with nil, err (closed) when another task closes the stream", function()
    local k = key()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(UPGRADE:format("/tree/stream-close?key=" .. k)))
    assert.equal(101, assert(r:final_response()).status)
    local rec, ok = wait_for(function() return record(k) end, function(x) return x.joined == "true" end)
    assert.is_true(ok, "the reader was never woken: " .. h.serialize(rec))
    assert.equal("nil|closed|true", rec.read)
    assert.equal("closed", rec.reader)
    assert.is_true(r:expect_close(2))
  end)

  it("times out stream:read(timeout) and keeps the stream usable", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(UPGRADE:format("/tree/stream-timeout")))
    assert.equal(101, assert(r:final_response()).status)
    assert.equal("first:nil|timeout", r:line())
    assert(sock:send("later"))
    assert.equal("second:later", r:line())
  end)

  it("lets one task read an upgraded stream while another writes to it", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(UPGRADE:format("/tree/duplex") .. string.rep("x", 100000)))
    assert.equal(101, assert(r:final_response()).status)
    sock:shutdown("send")
    local data, how = r:rest(10)
    assert.equal("closed", how)
    assert.equal(64 * 65536 + #"got:100000", #data)
    assert.equal("got:100000", data:sub(-10))
  end)

  it("reads the request body from a child task (lhyper.timeout)", function()
    local body = string.rep("b", 200000)
    local res = assert(h.raw_request(srv.port, h.req("POST", "/tree/timeout-body", nil, body)))
    assert.equal(200, res.status)
    assert.equal(body, res.body)
  end)

  it("lets a task wait for a server to close (server:wait), and closes a server at the end of its <close> scope", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/tree/server-wait")))
    assert.equal(200, res.status)
    assert.equal("nil,timeout,true,true,true", res.body)
  end)
end)

describe("stream_idle_timeout", function()
  local srv
  setup(function() srv = h.start_server({ stream_idle_timeout = 0.3 }) end)
  teardown(function() if srv then srv:stop() end end)

  it("closes an upgraded stream on which no byte moved for that long; a waiting read gets a timeout", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(UPGRADE:format("/tree/stream-idle?key=idle1")))
    assert.equal(101, assert(r:final_response()).status)
    -- traffic keeps it open past the timeout
    for i = 1, 4 do
      h.sleep(0.15)
      assert(sock:send("p" .. i))
      assert.equal("p" .. i, r:bytes(2))
    end
    local t0 = h.now()
    assert.is_true(r:expect_close(3))
    assert.is_true(h.now() - t0 < 2.5)
    local res = assert(h.raw_request(srv.port, h.req("GET", "/record?key=idle1")))
    assert.equal("timeout", h.parse_info(res.body).ended)
  end)

  it("is an option: false turns it off, a bad value raises", function()
    local out = h.lua([[
      local lhyper = require "lhyper"
      print(pcall(lhyper.server, { port = 0, stream_idle_timeout = -1, handler = function() end }))
      local s = assert(lhyper.server { port = 0, stream_idle_timeout = false, handler = function() end })
      s:close()
      print("ok")
    ]])
    assert.truthy(out:find("false\t.*stream_idle_timeout"), out)
    assert.truthy(out:find("\nok"), out)
  end)
end)
