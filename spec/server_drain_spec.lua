local h = require "helper"

-- Issue 21: server:drain(grace), the way a server leaves a load balancer's
-- pool: ready_path turns 503, the listener closes after drain_delay (having
-- taken what waits in its backlog), keep-alive ends without closing a
-- connection under a request that may be on its way, and grace ends the rest.
-- The server runs in its own process and drains on SIGUSR1.

local APP = [[
local lhyper = require "lhyper"
local O = assert(load("return " .. (arg[1] or "{}"), "=opts", "t", {}))()
local function q(req, k) return (req.query or ""):match(k .. "=([^&]*)") end
local streams = {}
local opts = { host = "127.0.0.1", port = 0, ready_path = "/ready", handler = function(req)
  if req.path == "/slow" then
    lhyper.sleep(tonumber(q(req, "s")) or 1)
    return 200, nil, "slow done"
  elseif req.path == "/upgrade" then
    local stream = req:upgrade({ upgrade = "test" })
    streams[stream] = true
    while true do
      local data = stream:read()
      if not data then break end
      stream:write(data)
    end
    streams[stream] = nil
    return
  elseif req.path == "/stream" then
    local n = 0
    return 200, nil, function()
      n = n + 1
      if n > 3 then return nil end
      lhyper.sleep(0.3)
      return "part" .. n .. ";"
    end
  end
  return 200, nil, "hello"
end }
for k, v in pairs(O) do if k ~= "grace" then opts[k] = v end end
local server = assert(lhyper.server(opts))
-- upgraded connections are the program's to end: say goodbye
server:on_drain(function(s)
  io.stderr:write("ON_DRAIN ", tostring(s == server), "\n")
  for stream in pairs(streams) do
    stream:write("going away")
    stream:close()
  end
end)
local sig = lhyper.on_signal("SIGUSR1", function()
  io.stderr:write("DRAIN\n")
  server:drain(O.grace or 5)
end)
io.stderr:write("PORT ", server.port, "\n")
local t0 = lhyper.now()
io.stderr:write("RUN ", tostring(lhyper.run()), " ", tostring(server.closed), "\n")
sig:stop()
]]

local function start(opts)
  local p = h.start_script(APP, opts, 60)
  p.port = assert(p:port(15), p:log())
  return p
end

local function drain(p)
  assert(p:kill("USR1"))
  assert(p:wait_log("DRAIN", 3), p:log())
end

local function ask(sock, r, path)
  assert(sock:send(h.req("GET", path)))
  return r:final_response({ timeout = 5 })
end

describe("server:drain", function()
  local p
  after_each(function()
    if p then p:stop() end
    p = nil
  end)

  it("answers ready_path 200, then 503 with Connection: close once draining", function()
    p = start({ drain_delay = 1 })
    local sock, r = assert(h.connect(p.port))
    finally(function() sock:close() end)
    local res = assert(ask(sock, r, "/ready"))
    assert.equal(200, res.status)
    assert.equal("ready\n", res.body)
    assert.is_nil(res.headers.get("connection"))
    -- HEAD works as GET
    assert(sock:send(h.req("HEAD", "/ready")))
    assert.equal(200, assert(r:final_response({ method = "HEAD" })).status)
    drain(p)
    res = assert(ask(sock, r, "/ready"))
    assert.equal(503, res.status)
    assert.equal("draining\n", res.body)
    assert.equal("close", res.headers.get("connection"))
    assert.is_true(r:expect_close(2))
  end)

  it("keeps accepting for drain_delay, with Connection: close, then refuses, and lhyper.run() returns", function()
    p = start({ drain_delay = 1.5, grace = 5 })
    local t0 = h.now()
    drain(p)
    local res = assert(h.raw_request(p.port, h.req("GET", "/")))
    assert.equal(200, res.status)
    assert.equal("close", res.headers.get("connection"))
    assert.is_true(h.now() - t0 < 1.4, "too slow to check the delay")
    local refused = false
    repeat
      local sock = h.connect(p.port)
      if sock then sock:close(); h.sleep(0.03) else refused = true end
    until refused or h.now() - t0 > 6
    assert.is_true(refused)
    assert.is_true(h.now() - t0 > 1.4, "refused before drain_delay")
    assert.equal(0, p:exit_code(3), p:log())
    assert.truthy(p:log():find("RUN true true", 1, true), p:log())
  end)

  it("does not close an idle keep-alive connection at once: its next response says close", function()
    p = start({ drain_idle = 2 })
    local sock, r = assert(h.connect(p.port))
    finally(function() sock:close() end)
    local res = assert(ask(sock, r, "/"))
    assert.is_nil(res.headers.get("connection"))
    drain(p)
    assert.is_true(r:quiet(0.5), "closed under a request that could be on its way")
    res = assert(ask(sock, r, "/"))
    assert.equal(200, res.status)
    assert.equal("close", res.headers.get("connection"))
    assert.is_true(r:expect_close(2))
  end)

  it("closes an idle keep-alive connection once it stayed idle for drain_idle", function()
    p = start({ drain_idle = 1 })
    local sock, r = assert(h.connect(p.port))
    finally(function() sock:close() end)
    assert.equal(200, assert(ask(sock, r, "/")).status)
    local t0 = h.now()
    drain(p)
    assert.is_true(r:expect_close(4))
    local took = h.now() - t0
    assert.is_true(took > 0.8, ("closed after %.2f s"):format(took))
    assert.equal(0, p:exit_code(3), p:log())
  end)

  it("lets a response whose head promised keep-alive finish, then treats the connection as idle", function()
    p = start({ drain_idle = 3 })
    local sock, r = assert(h.connect(p.port))
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/stream")))
    h.sleep(0.15) -- the head is out, the body streams
    drain(p)
    local res = assert(r:final_response({ timeout = 5 }))
    assert.equal("part1;part2;part3;", res.body)
    assert.is_nil(res.headers.get("connection"))
    -- still open: not closed right after a response that promised more
    assert.is_true(r:quiet(0.3))
    res = assert(ask(sock, r, "/"))
    assert.equal("close", res.headers.get("connection"))
  end)

  it("finishes a request in flight with Connection: close, and ends the rest at grace", function()
    p = start({ grace = 1.5 })
    local a, ar = assert(h.connect(p.port))
    local b, br = assert(h.connect(p.port))
    finally(function() a:close(); b:close() end)
    assert(a:send(h.req("GET", "/slow?s=0.5")))
    assert(b:send(h.req("GET", "/slow?s=10")))
    h.sleep(0.2)
    local t0 = h.now()
    drain(p)
    local res = assert(ar:final_response({ timeout = 3 }))
    assert.equal(200, res.status)
    assert.equal("close", res.headers.get("connection"))
    local data, how = br:rest(4)
    assert.equal("closed", how)
    assert.equal("", data)
    local took = h.now() - t0
    assert.is_true(took > 1.2 and took < 4.5, ("the hard deadline came after %.2f s"):format(took))
    assert.equal(0, p:exit_code(3), p:log())
  end)

  it("runs on_drain functions as tasks when it begins: an upgraded connection is ended by the program", function()
    p = start({ grace = 10 })
    local sock, r = assert(h.connect(p.port))
    finally(function() sock:close() end)
    assert(sock:send("GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\n"))
    assert.equal(101, assert(r:response()).status)
    assert(sock:send("ping"))
    assert.equal("ping", r:bytes(4))
    local t0 = h.now()
    drain(p)
    assert.is_true(p:wait_log("ON_DRAIN true", 3), p:log())
    local rest, how = r:rest(3)
    assert.equal("going away", rest)
    assert.equal("closed", how)
    assert.is_true(h.now() - t0 < 2, "waited for the hard deadline")
    assert.equal(0, p:exit_code(3), p:log())
  end)

  it("checks its arguments", function()
    local out = h.lua([[
      local lhyper = require "lhyper"
      local s = assert(lhyper.server { port = 0, handler = function() end })
      print(pcall(s.drain, s, "soon"))
      print(pcall(s.on_drain, s, 42))
      s:close(0)
      lhyper.run()
    ]])
    assert.truthy(out:find("false\t.-grace must be a number"), out)
    assert.truthy(out:find("false\t.-on_drain: function expected"), out)
  end)

  it("takes the connections waiting in the listener's backlog before closing it", function()
    -- lhyper takes the backlog itself; the kernel's migration of a closing
    -- SO_REUSEPORT listener's queue is a system setting it does not rely on
    h.log("net.ipv4.tcp_migrate_req = %s", (h.read_file("/proc/sys/net/ipv4/tcp_migrate_req") or "absent\n"):gsub("\n", ""))
    -- max_connections = 1 and a connection held open: three more wait in
    -- the backlog, unaccepted, their requests sent
    p = start({ max_connections = 1, drain_idle = 0.5, grace = 5 })
    local held, hr = assert(h.connect(p.port))
    assert.equal(200, assert(ask(held, hr, "/")).status)
    local waiting = {}
    for i = 1, 3 do
      local sock, r = assert(h.connect(p.port))
      assert(sock:send(h.req("GET", "/")))
      waiting[i] = { sock, r }
    end
    finally(function()
      held:close()
      for _, w in ipairs(waiting) do w[1]:close() end
    end)
    assert.is_true(waiting[1][2]:quiet(0.3), "answered although max_connections was reached")
    drain(p)
    for i = 1, 3 do
      local res = assert(waiting[i][2]:final_response({ timeout = 3 }))
      assert.equal(200, res.status)
      assert.equal("hello", res.body)
    end
    assert.equal(0, p:exit_code(4), p:log())
  end)
end)
