local h = require "helper"

-- Issue 21: lhyper.workers{ n, mode, grace }, SIGHUP reload, SIGTERM drain,
-- restarts of crashed workers. Each case runs an app written to a temp file
-- (a reload runs that file anew, so a case can change the code), as a
-- process group of its own; every process of the group is killed at the end.

local APP = [[
local lhyper = require "lhyper"
local VERSION = "@VERSION@"
local O = assert(load("return " .. (arg[1] or "{}"), "=opts", "t", {}))()
local function mypid() return io.open("/proc/self/stat"):read("l"):match("^(%d+)") end
local ID, GEN = 0, 0
local function q(req, k) return (req.query or ""):match(k .. "=([^&]*)") end
local server = assert(lhyper.server { host = "127.0.0.1", port = O.port or 0, ready_path = "/ready",
  drain_delay = O.drain_delay or 0, drain_idle = O.drain_idle,
  handler = function(req)
    local p = req.path
    if p == "/pid" then
      return 200, { ["x-pid"] = mypid() }, ("pid=%s id=%d gen=%d v=%s"):format(mypid(), ID, GEN, VERSION)
    elseif p == "/slow" then
      lhyper.sleep(tonumber(q(req, "s")) or 1)
      return 200, { ["x-pid"] = mypid() }, "slow done " .. mypid()
    elseif p == "/echo" then
      return 200, { ["x-pid"] = mypid() }, assert(req:read_all(1e6))
    elseif p == "/spin" then
      -- holds this worker's loop (no yield) until the file f exists, at most 30 s
      io.stderr:write("SPINNING ", mypid(), "\n")
      local f, t0 = q(req, "f"), os.time()
      local found
      repeat found = io.open(f) until found or os.time() - t0 > 30
      if found then found:close() end
      return 200, { ["x-pid"] = mypid() }, "spun " .. mypid()
    end
    return 404, nil, "no"
  end })
if O.pool then
  -- libuv's thread pool started before lhyper.workers: its threads do not
  -- block the master's signals ("dns": a name resolved there; "log": a
  -- log_writer's write, which goes out on a pool thread)
  lhyper.spawn(function()
    if O.pool == "dns" then
      local res, err = lhyper.request { url = "http://localhost:1/", connect_timeout = 5 }
      io.stderr:write("POOL ", tostring(res and res.status or err.kind), "\n")
    else
      local w <close> = assert(lhyper.log_writer(O.pool_log))
      w:write("written from the pool\n")
      w:flush()
      lhyper.sleep(0.2)
      io.stderr:write("POOL ", tostring(w:stats().written), "\n")
    end
    lhyper.stop()
  end)
  lhyper.run()
end
io.stderr:write("PORT ", server.port, "\n")
server:on_drain(function() io.stderr:write(("DRAINING %d %d %s\n"):format(ID, GEN, mypid())) end)
local id, gen = lhyper.workers { n = O.n or 2, mode = O.mode, grace = O.grace or 3 }
if not id then
  if gen then io.stderr:write("WORKERS FAILED ", tostring(gen), "\n") end
  io.stderr:write("MASTER DONE run=", tostring(lhyper.run()), " closed=", tostring(server.closed), "\n")
  return
end
ID, GEN = id, gen
if O.crash_flag and io.open(O.crash_flag .. id) then os.exit(3) end
-- one write: two workers print at once
local usr1 = lhyper.on_signal("SIGUSR1", function() io.stderr:write("USR1 in worker " .. id .. "\n") end)
io.stderr:write(("READY %d %d %s %s\n"):format(id, gen, mypid(), VERSION))
lhyper.run()
usr1:stop()
io.stderr:write(("WORKER EXIT %d %s\n"):format(id, mypid()))
]]

local function write_app(path, version)
  h.write_file(path, (APP:gsub("@VERSION@", version)))
end

local App = {}
App.__index = App

-- starts the app with `opts` and waits until `opts.n or 2` workers are READY
local function start_app(opts, version, lua_prefix)
  opts = opts or {}
  local file = h.tmpname(".lua")
  write_app(file, version or "1")
  -- under LHYPER_SPEC_WRAP (valgrind) the master and its forked workers run
  -- in the tool; a reload's exec'd generation runs without it
  local saved = h.LUA
  h.LUA = (lua_prefix and lua_prefix .. " " or "") .. h.WRAP .. h.LUA
  local ok, p = pcall(h.start_lua, file .. " " .. h.shell_quote(h.serialize(opts)), 120)
  h.LUA = saved
  if not ok then error(p, 2) end
  local app = setmetatable({ p = p, file = file, pid = p.pid, pgid = p.pgid }, App)
  local n = opts.expect_ready or opts.n or 2
  local deadline = h.now() + 15
  while h.now() < deadline do
    local log = p:log()
    local _, count = log:gsub("\nREADY ", "")
    if log:sub(1, 6) == "READY " then count = count + 1 end
    app.port = app.port or tonumber(log:match("PORT (%d+)\n"))
    if app.port and count >= n then return app end
    if not p:alive() then break end
    h.sleep(0.02)
  end
  local log = p:log()
  app:stop()
  error("the app did not start:\n" .. log, 2)
end

function App:log() return self.p:log() end
function App:kill(sig) return self.p:kill(sig) end

-- every process of the app's group, the master first if alive
function App:group()
  local out = h.run(string.format("pgrep -g %d 2>/dev/null", self.pgid))
  local pids = {}
  for pid in out:gmatch("%d+") do pids[#pids + 1] = tonumber(pid) end
  return pids
end

-- the master's children (its workers), from /proc
function App:workers()
  local out = h.run(string.format("pgrep -P %d 2>/dev/null", self.pid))
  local pids = {}
  for pid in out:gmatch("%d+") do pids[#pids + 1] = tonumber(pid) end
  return pids
end

-- children of the master that are zombies
function App:zombies()
  local n = 0
  for _, pid in ipairs(self:workers()) do
    local s = h.read_file("/proc/" .. pid .. "/stat") or ""
    if s:match("^%d+ %b() Z") then n = n + 1 end
  end
  return n
end

function App:stop()
  if self.stopped then return end
  self.stopped = true
  self.p:stop()
  -- workers that outlived the master: the whole group goes
  os.execute(string.format("kill -KILL -%d 2>/dev/null", self.pgid))
  os.remove(self.file)
end

-- GET path on a new connection; the response or nil, err
local function get(port, path, timeout)
  local sock, r = h.connect(port)
  if not sock then return nil, r end
  sock:settimeout(timeout or 5)
  sock:send(h.req("GET", path, { connection = "close" }))
  local res, err = r:final_response({ timeout = timeout or 5 })
  sock:close()
  return res, err
end

local function info(res)
  local t = {}
  for k, v in res.body:gmatch("(%w+)=(%S+)") do t[k] = v end
  return t
end

-- `n` requests for /pid on new connections: { [pid] = count }, failures
local function spread(port, n)
  local pids, failed = {}, {}
  for _ = 1, n do
    local res, err = get(port, "/pid")
    if res and res.status == 200 then
      local pid = info(res).pid
      pids[pid] = (pids[pid] or 0) + 1
    else
      failed[#failed + 1] = tostring(err or res.status)
    end
  end
  return pids, failed
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- LISTEN sockets on `port` in /proc/net/tcp
local function listeners(port)
  local text = h.read_file("/proc/net/tcp") or ""
  local hex = string.format(":%04X", port)
  local n = 0
  for line in text:gmatch("[^\n]+") do
    local addr, st = line:match("^%s*%d+: (%x+:%x+) %x+:%x+ (%x%x)")
    if addr and addr:sub(-5) == hex and st == "0A" then n = n + 1 end
  end
  return n
end

describe("lhyper.workers #offpath", function()
  local app
  after_each(function()
    if app then app:stop() end
    app = nil
  end)

  it("serves from n workers with a listener each (reuseport), never from the master", function()
    app = start_app({ n = 2 })
    local pids, failed = spread(app.port, 40)
    assert.same({}, failed)
    assert.is_nil(pids[tostring(app.pid)], "the master answered")
    local workers = app:workers()
    assert.equal(2, #workers)
    for pid in pairs(pids) do
      local mine = false
      for _, w in ipairs(workers) do mine = mine or tostring(w) == pid end
      assert.is_true(mine, "answered by a process that is not a worker: " .. pid)
    end
    assert.equal(2, count(pids), "40 connections all went to one worker")
    assert.equal(2, listeners(app.port))
    assert.truthy(app:log():find("2 workers, one SO_REUSEPORT listener each", 1, true), app:log())
  end)

  it("shares one listener in shared mode", function()
    app = start_app({ n = 2, mode = "shared" })
    local pids, failed = spread(app.port, 20)
    assert.same({}, failed)
    assert.is_nil(pids[tostring(app.pid)], "the master answered")
    assert.equal(1, listeners(app.port))
    assert.truthy(app:log():find("2 workers, a shared listener", 1, true), app:log())
  end)

  it("n = \"auto\" counts the CPUs the process may run on (affinity), not the machine's", function()
    app = start_app({ n = "auto", expect_ready = 1 }, "1", "taskset -c 0")
    assert.truthy(app:log():find("1 worker, one SO_REUSEPORT listener each", 1, true), app:log())
    assert.equal(1, #app:workers())
  end)

  it("checks its options", function()
    local out = h.lua([[
      local lhyper = require "lhyper"
      for _, o in ipairs { { n = 0 }, { n = 1.5 }, { n = "many" }, { mode = "fork" }, { grace = -1 }, { x = 1 } } do
        local ok, err = pcall(lhyper.workers, o)
        print(ok, (tostring(err):gsub("^.-lhyper", "lhyper")))
      end
      lhyper.spawn(function() print(pcall(lhyper.workers, { n = 1 })) end)
      lhyper.run()
    ]])
    assert.truthy(out:find("false\tlhyper.workers: option 'n' must be", 1, true), out)
    assert.truthy(out:find("false\tlhyper.workers: option 'mode' must be", 1, true), out)
    assert.truthy(out:find("false\tlhyper.workers: option 'grace' must be", 1, true), out)
    assert.truthy(out:find("false\tlhyper.workers: unknown option 'x'", 1, true), out)
    assert.truthy(out:find("not in a task", 1, true), out)
    local _, n = out:gsub("false\t", "")
    assert.equal(7, n, out)
  end)

  it("replaces a worker that was killed while the other keeps serving, and reaps it", function()
    app = start_app({ n = 2 })
    local before = app:workers()
    assert.equal(2, #before)
    assert(os.execute("kill -KILL " .. before[1]))
    -- connections that land on the dead worker's listener wait in its
    -- backlog for the replacement: none fails
    local pids, failed = spread(app.port, 30)
    assert.same({}, failed)
    assert.is_nil(pids[tostring(before[1])])
    assert.is_true(app.p:wait_log("killed by signal 9", 5), app:log())
    assert.truthy(app:log():find("restarting", 1, true), app:log())
    local deadline = h.now() + 5
    local after
    repeat
      after = app:workers()
      h.sleep(0.05)
    until (#after == 2 and after[1] ~= before[1] and after[2] ~= before[1]) or h.now() > deadline
    assert.equal(2, #after)
    assert.equal(0, app:zombies())
    assert.falsy(app:log():find("WORKERS FAILED", 1, true))
  end)

  -- The back-off is read from what the master reports (each delay) and
  -- checked against the clock in the one direction a slow machine cannot
  -- break: n restarts cannot have happened sooner than their delays allow.
  it("backs off while a worker keeps dying at start, and serves again once it stops", function()
    local flag = h.tmpname("-crash")
    app = start_app({ n = 2, crash_flag = flag })
    finally(function() os.remove(flag .. "1") end)
    h.write_file(flag .. "1", "")
    local w1 = app:log():match("READY 1 0 (%d+)")
    local w2 = app:log():match("READY 2 0 (%d+)")
    local t0 = h.now()
    assert(os.execute("kill -KILL " .. w1))
    assert.is_true(app.p:wait_log("restarting in 0.8 s", 30), app:log())
    -- meanwhile new connections go to worker 2 alone (worker 1's listener
    -- is steered around: a connection in its queue would wait for a worker
    -- 1 that never serves while the flag is there)
    for _ = 1, 10 do
      local res = assert(get(app.port, "/pid", 5))
      assert.equal(w2, info(res).pid)
    end
    local log, took = app:log(), h.now() - t0
    -- worker 1's deaths, each with the delay before its restart: the first
    -- (the kill) 0.1 s, or none after a start slow enough to count as
    -- stable (5 s), then doubling up to 5 s
    local delays = {}
    for how in log:gmatch("worker 1 %(pid %d+%) [^\n]- after [%d.]+ s; restarting ([^\n]+)") do
      delays[#delays + 1] = how == "now" and 0 or assert(tonumber(how:match("^in ([%d.]+) s$")), how)
    end
    assert.is_true(#delays >= 4, log)
    local waited = 0
    for i, d in ipairs(delays) do
      local want = i == 1 and (d == 0 and 0 or 0.1) or delays[i - 1] == 0 and 0.1 or math.min(delays[i - 1] * 2, 5)
      assert.equal(want, d, "delay " .. i .. "\n" .. log)
      if i < #delays then waited = waited + d end
    end
    assert.is_true(took >= waited, ("%d restarts in %.2f s"):format(#delays, took))
    os.remove(flag .. "1")
    local _, ready1 = app:log():gsub("READY 1 0", "")
    local deadline, back = h.now() + 20, false
    repeat
      h.sleep(0.05)
      back = select(2, app:log():gsub("READY 1 0", "")) > ready1
    until back or h.now() > deadline
    assert.is_true(back, app:log())
    local pids, failed = spread(app.port, 20)
    assert.same({}, failed)
    assert.equal(2, count(pids), "worker 1 is back but gets no connection")
    assert.equal(0, app:zombies())
  end)

  it("reloads on SIGHUP: fresh code serves, old workers finish what they hold with Connection: close", function()
    app = start_app({ n = 2, drain_idle = 3 }, "1")
    -- a keep-alive connection to an old worker, and a slow request in flight
    local ka, kr = assert(h.connect(app.port))
    local undo = h.undo()
    finally(undo.run)
    undo.add(function() ka:close() end)
    assert(ka:send(h.req("GET", "/pid")))
    local first = assert(kr:final_response())
    assert.equal("1", info(first).v)
    local slow, sr = assert(h.connect(app.port))
    undo.add(function() slow:close() end)
    assert(slow:send(h.req("GET", "/slow?s=1.5")))
    h.sleep(0.2)
    write_app(app.file, "2")
    assert(app:kill("HUP"))
    assert.is_true(app.p:wait_log("generation 1 serves; generation 0 drains", 15), app:log())
    -- each old worker reports (on_drain) once it has stopped accepting;
    -- until then a new connection may still reach it
    assert.is_true(app.p:wait_log("DRAINING 1 0", 10), app:log())
    assert.is_true(app.p:wait_log("DRAINING 2 0", 10), app:log())
    -- new connections: the new code
    local pids, failed = spread(app.port, 10)
    assert.same({}, failed)
    for _ = 1, 5 do assert.equal("2", info(assert(get(app.port, "/pid"))).v) end
    -- the idle keep-alive connection: one more answer from its old worker, then close
    assert(ka:send(h.req("GET", "/pid")))
    local again = assert(kr:final_response())
    assert.equal(info(first).pid, info(again).pid)
    assert.equal("1", info(again).v)
    assert.equal("close", again.headers.get("connection"))
    assert.is_true(kr:expect_close(2))
    -- the request in flight finishes
    local sres = assert(sr:final_response({ timeout = 5 }))
    assert.equal(200, sres.status)
    assert.equal("close", sres.headers.get("connection"))
    local deadline, exited = h.now() + 6, 0
    repeat
      h.sleep(0.05)
      exited = select(2, app:log():gsub("generation 0%) exited with status 0", ""))
    until exited == 2 or h.now() > deadline
    assert.equal(2, exited, app:log())
    assert.equal(2, #app:workers())
    assert.equal(0, app:zombies())
  end)

  -- The master's command reaches a worker as one byte on its control
  -- socket. A request read after it must be answered as the command says:
  -- the worker's loop is held (a handler that does not yield) while the
  -- command and then a request on an idle keep-alive connection arrive, so
  -- both are read in the same loop turn, the command first.
  for _, case in ipairs {
    { what = "retire (SIGHUP)", sig = "HUP", line = "generation 1 serves; generation 0 drains" },
    { what = "drain (SIGTERM)", sig = "TERM", line = "Terminated: draining" },
  } do
    it("answers a request read after the master's " .. case.what .. " with Connection: close", function()
      app = start_app({ n = 1, drain_idle = 3, grace = 20 }, "1")
      local flag = h.tmpname("-spin")
      local undo = h.undo()
      finally(undo.run)
      undo.add(function() os.remove(flag) end)
      local ka, kr = assert(h.connect(app.port))
      undo.add(function() ka:close() end)
      assert(ka:send(h.req("GET", "/pid")))
      local first = assert(kr:final_response())
      assert.is_nil(first.headers.get("connection"))
      local spin, sr = assert(h.connect(app.port))
      undo.add(function() spin:close() end)
      assert(spin:send(h.req("GET", "/spin?f=" .. flag)))
      assert.is_true(app.p:wait_log("SPINNING " .. info(first).pid, 10), app:log())
      write_app(app.file, "2")
      assert(app:kill(case.sig))
      -- the master writes this line after it told the worker
      assert.is_true(app.p:wait_log(case.line, 20), app:log())
      assert(ka:send(h.req("GET", "/pid")))
      h.sleep(0.1)
      h.write_file(flag, "")
      assert.equal(200, assert(sr:final_response({ timeout = 10 })).status)
      local again = assert(kr:final_response({ timeout = 10 }))
      assert.equal(info(first).pid, info(again).pid)
      assert.equal("close", again.headers.get("connection"), app:log())
      assert.is_true(kr:expect_close(2))
    end)
  end

  it("leaves the connections waiting in the accept queue it shares to the new generation when it retires", function()
    app = start_app({ n = 1, drain_idle = 3, grace = 20 }, "1")
    local flag0, flag1 = h.tmpname("-spin0"), h.tmpname("-spin1")
    local undo = h.undo()
    finally(undo.run)
    undo.add(function() os.remove(flag0); os.remove(flag1) end)
    local old = app:log():match("READY 1 0 (%d+)")
    -- the old worker is held, the new one starts and is told nothing yet
    -- but to serve: the old one is told to retire
    local s0, r0 = assert(h.connect(app.port))
    undo.add(function() s0:close() end)
    assert(s0:send(h.req("GET", "/spin?f=" .. flag0)))
    assert.is_true(app.p:wait_log("SPINNING " .. old, 10), app:log())
    write_app(app.file, "2")
    assert(app:kill("HUP"))
    assert.is_true(app.p:wait_log("generation 1 serves; generation 0 drains", 20), app:log())
    local new = app:log():match("READY 1 1 (%d+)")
    -- the new worker is held too (it alone takes connections now), and
    -- three connections wait in the queue
    local s1, r1 = assert(h.connect(app.port))
    undo.add(function() s1:close() end)
    assert(s1:send(h.req("GET", "/spin?f=" .. flag1)))
    assert.is_true(app.p:wait_log("SPINNING " .. new, 10), app:log())
    local waiting = {}
    for i = 1, 3 do
      local sock, r = assert(h.connect(app.port))
      assert(sock:send(h.req("GET", "/pid")))
      waiting[i] = { sock, r }
    end
    undo.add(function() for _, w in ipairs(waiting) do w[1]:close() end end)
    -- the old worker goes on: it reads its command and stops accepting
    h.write_file(flag0, "")
    assert.equal(200, assert(r0:final_response({ timeout = 10 })).status)
    assert.is_true(app.p:wait_log("DRAINING 1 0", 10), app:log())
    h.write_file(flag1, "")
    assert.equal(200, assert(r1:final_response({ timeout = 10 })).status)
    for i = 1, 3 do
      local res = assert(waiting[i][2]:final_response({ timeout = 10 }))
      assert.equal(new, info(res).pid, "answered by the retiring worker")
      assert.equal("2", info(res).v)
    end
  end)

  it("keeps the old workers when the new code does not start", function()
    app = start_app({ n = 2 }, "1")
    h.write_file(app.file, "error('broken on purpose')\n")
    assert(app:kill("HUP"))
    assert.is_true(app.p:wait_log("reload failed", 15), app:log())
    local pids, failed = spread(app.port, 10)
    assert.same({}, failed)
    for _ = 1, 3 do assert.equal("1", info(assert(get(app.port, "/pid"))).v) end
    -- fixed: the next reload goes through
    write_app(app.file, "3")
    assert(app:kill("HUP"))
    assert.is_true(app.p:wait_log("generation 2 serves", 15), app:log())
    assert.equal("3", info(assert(get(app.port, "/pid"))).v)
    assert.equal(0, app:zombies())
  end)

  it("forwards SIGUSR1 to the workers", function()
    app = start_app({ n = 2 })
    assert(app:kill("USR1"))
    assert.is_true(app.p:wait_log("USR1 in worker 1", 5), app:log())
    assert.is_true(app.p:wait_log("USR1 in worker 2", 5), app:log())
    assert.equal(2, #app:workers())
  end)

  it("drains on SIGTERM: /ready turns 503, the listener closes after drain_delay, requests finish, exit 0", function()
    app = start_app({ n = 2, drain_delay = 1.5, grace = 5 })
    local slow, sr = assert(h.connect(app.port))
    finally(function() slow:close() end)
    assert(slow:send(h.req("GET", "/slow?s=2.5")))
    assert.equal(200, assert(get(app.port, "/ready")).status)
    h.sleep(0.2)
    local t0 = h.now()
    assert(app:kill("TERM"))
    assert.is_true(app.p:wait_log("draining", 2), app:log())
    -- still accepting during the delay, and saying it is not ready (once
    -- the worker that answers has heard of the drain: the master's line
    -- can come first, and a slow worker a moment later)
    local ready
    repeat
      ready = assert(get(app.port, "/ready"))
    until ready.status == 503 or h.now() - t0 > 1.2
    assert.equal(503, ready.status)
    assert.equal("close", ready.headers.get("connection"))
    assert.is_true(h.now() - t0 < 1.4, "too slow to check the delay")
    -- then refused
    local deadline = h.now() + 3
    local refused = false
    repeat
      local sock = h.connect(app.port)
      if sock then sock:close(); h.sleep(0.05) else refused = true end
    until refused or h.now() > deadline
    assert.is_true(refused, "still accepting")
    assert.is_true(h.now() - t0 >= 1.4, "closed before drain_delay")
    local res = assert(sr:final_response({ timeout = 5 }))
    assert.equal(200, res.status)
    assert.equal("close", res.headers.get("connection"))
    assert.equal(0, app.p:exit_code(5), app:log())
    local log = app:log()
    assert.truthy(log:find("all workers exited", 1, true), log)
    assert.truthy(log:find("MASTER DONE run=true closed=true", 1, true), log)
    local _, exits = log:gsub("WORKER EXIT", "")
    assert.equal(2, exits, log)
    h.sleep(0.1)
    assert.same({}, app:group())
  end)

  it("stops at once on a second SIGTERM", function()
    app = start_app({ n = 2, grace = 20 })
    local slow, sr = assert(h.connect(app.port))
    finally(function() slow:close() end)
    assert(slow:send(h.req("GET", "/slow?s=10")))
    h.sleep(0.2)
    local t0 = h.now()
    assert(app:kill("TERM"))
    assert.is_true(app.p:wait_log("draining", 2), app:log())
    assert(app:kill("TERM"))
    assert.equal(0, app.p:exit_code(5), app:log())
    assert.is_true(h.now() - t0 < 4, "took the grace period")
    assert.truthy(app:log():find("again: stopping now", 1, true), app:log())
    local data, how = sr:rest(2)
    assert.equal("closed", how)
    assert.equal("", data)
    h.sleep(0.1)
    assert.same({}, app:group())
  end)

  -- The master's signals wait for its signalfd, blocked in its thread; a
  -- thread of libuv's pool started before lhyper.workers does not block
  -- them, and the kernel gives a process' signal to such a thread: without
  -- the master's forwarding action a SIGHUP or SIGTERM would kill the
  -- master by its default action.
  for _, pool in ipairs { "dns", "log" } do
    it("reloads and drains as told after libuv's thread pool started (" .. pool .. "), never dying of a signal", function()
      local log_file = h.tmpname(".log")
      finally(function() os.remove(log_file) end)
      app = start_app({ n = 1, expect_ready = 1, pool = pool, pool_log = log_file, grace = 3 }, "1")
      assert.truthy(app:log():find("POOL ", 1, true), app:log())
      for gen = 1, 3 do
        write_app(app.file, tostring(gen + 1))
        assert(app:kill("HUP"))
        assert.is_true(app.p:wait_log("generation " .. gen .. " serves", 15), app:log())
        assert.is_true(app.p:alive(), "the master died\n" .. app:log())
        local deadline, v = h.now() + 5, nil
        repeat
          local res = get(app.port, "/pid")
          v = res and res.status == 200 and info(res).v
          if v ~= tostring(gen + 1) then h.sleep(0.05) end
        until v == tostring(gen + 1) or h.now() > deadline
        assert.equal(tostring(gen + 1), v, app:log())
      end
      -- USR1 and USR2 too: the forwarding action, not a default one
      assert(app:kill("USR2"))
      assert(app:kill("TERM"))
      assert.is_true(app.p:wait_log("draining", 5), app:log())
      assert.equal(0, app.p:exit_code(10), app:log())
      local log = app:log()
      assert.truthy(log:find("all workers exited", 1, true), log)
      assert.truthy(log:find("MASTER DONE run=true closed=true", 1, true), log)
      -- every worker exits cleanly, also those forked from the master whose
      -- pool threads they do not have (libuv joins its pool at exit)
      local _, clean = log:gsub("generation %d%) exited with status 0", "")
      assert.equal(4, clean, log)
      assert.falsy(log:find("killed by signal", 1, true), log)
      h.sleep(0.1)
      assert.same({}, app:group())
    end)
  end

  it("leaves workers that lost their master to drain and exit", function()
    app = start_app({ n = 2, grace = 2 })
    local workers = app:workers()
    assert(os.execute("kill -KILL " .. app.pid))
    local deadline = h.now() + 6
    local left
    repeat
      left = 0
      for _, pid in ipairs(workers) do if h.proc_alive(pid) then left = left + 1 end end
      h.sleep(0.05)
    until left == 0 or h.now() > deadline
    assert.equal(0, left, app:log())
    local _, exits = app:log():gsub("WORKER EXIT", "")
    assert.equal(2, exits, app:log())
  end)
end)

describe("inherited listeners #offpath", function()
  -- python3 makes a listening socket, then execs lua with it as fd 3
  local HARNESS = [==[
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
print("PORT", s.getsockname()[1], flush=True)
env = dict(os.environ)
for k, v in os.environ.items():
    if k.startswith("LH_ENV_"):
        env[k[7:]] = v
if sys.argv[1] == "systemd":
    env["LISTEN_FDS"] = "1"
    env["LISTEN_PID"] = str(os.getpid())
os.execvpe("lua5.4", ["lua5.4", "-e", sys.argv[2]], env)
]==]

  -- sanitizer runtimes go to lua, not to python (LH_ENV_*: see the harness)
  local pass = {}
  local preload = os.getenv("LHYPER_SPEC_PRELOAD") or os.getenv("LD_PRELOAD")
  if preload and preload ~= "" then
    pass[#pass + 1] = "LH_ENV_LD_PRELOAD=" .. h.shell_quote(preload)
    for _, v in ipairs { "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS" } do
      if os.getenv(v) then pass[#pass + 1] = "LH_ENV_" .. v .. "=" .. h.shell_quote(os.getenv(v)) end
    end
  end

  local function run(mode, src)
    local file = h.tmpname(".py")
    h.write_file(file, HARNESS)
    local out, code = h.run(string.format(
      "cd %s && LUA_PATH=%s LUA_CPATH=%s %s%s timeout -s KILL 15 python3 %s %s %s 2>&1",
      h.shell_quote(h.ROOT), h.shell_quote(h.LUA_PATH), h.shell_quote(h.LUA_CPATH), h.CLIENT_ENV,
      table.concat(pass, " "), file, mode, h.shell_quote(src)))
    os.remove(file)
    return out, code
  end

  -- the program: a server, one request from itself through lhyper.request, stop
  local function prog(server_opts)
    return [[
local lhyper = require "lhyper"
local s, err = lhyper.server { ]] .. server_opts .. [[, handler = function() return 200, nil, "inherited" end }
if not s then print("FAIL", tostring(err)) os.exit(0) end
print("SERVER PORT", s.port, os.getenv("LISTEN_FDS"), os.getenv("LISTEN_PID"))
lhyper.spawn(function()
  local res = assert(lhyper.request { url = "http://127.0.0.1:" .. s.port .. "/" })
  print("GOT", res.status, res:read_all())
  s:close(0)
end)
lhyper.run()
]]
  end

  it("lhyper.server{ fd = 3 } serves on the socket it is given", function()
    local out = run("plain", prog("fd = 3"))
    local port = out:match("PORT (%d+)")
    assert.truthy(out:find("SERVER PORT\t" .. port .. "\tnil\tnil", 1, true), out)
    assert.truthy(out:find("GOT\t200\tinherited", 1, true), out)
  end)

  it("takes systemd's LISTEN_FDS in order, checks the port and unsets the variables", function()
    local out = run("systemd", prog("port = 0"))
    local port = out:match("PORT (%d+)")
    assert.truthy(out:find("SERVER PORT\t" .. port .. "\tnil\tnil", 1, true), out)
    assert.truthy(out:find("GOT\t200\tinherited", 1, true), out)
    out = run("systemd", prog("port = 1"))
    assert.truthy(out:find("FAIL\tthe inherited listener %(fd 3%) is on port %d+, not 1"), out)
  end)

  it("refuses a descriptor that is not a listening socket", function()
    local out = h.lua([[
      local lhyper = require "lhyper"
      local f = io.open("/dev/null")
      print(lhyper.server { fd = 0, handler = function() end })
      print(pcall(lhyper.server, { fd = -1, handler = function() end }))
      print(lhyper.server { fd = 987, handler = function() end })
    ]])
    assert.truthy(out:find("nil\tlistener fd 0: ", 1, true), out)
    assert.truthy(out:find("false\t.-option 'fd' must be"), out)
    assert.truthy(out:find("nil\tlistener fd 987: bad file descriptor", 1, true), out)
  end)
end)

describe("serve.lua --workers #offpath", function()
  it("serves from 2 workers, reloads on SIGHUP and drains on SIGTERM", function()
    local port = h.free_port()
    local p = h.start_lua("serve.lua " .. port .. " --workers 2 --grace 3", 60, nil, true)
    finally(function()
      p:stop()
      os.execute(string.format("kill -KILL -%d 2>/dev/null", p.pgid))
    end)
    local deadline = h.now() + 15
    local n = 0
    repeat
      h.sleep(0.05)
      n = select(2, p:log():gsub("serving http://", ""))
    until n >= 2 or h.now() > deadline
    assert.equal(2, n, p:log())
    local res = assert(get(port, "/"))
    assert.equal("Hello, World!", res.body)
    assert.equal(200, assert(get(port, "/ready")).status)
    assert(p:kill("HUP"))
    assert.is_true(p:wait_log("generation 1 serves", 15), p:log())
    assert.truthy(p:log():find("lhyper worker 1 (generation 1) serving", 1, true), p:log())
    assert.equal("Hello, World!", assert(get(port, "/")).body)
    assert(p:kill("TERM"))
    assert.equal(0, p:exit_code(8), p:log())
    local log = p:log()
    assert.truthy(log:find("all workers exited", 1, true), log)
    assert.truthy(log:find("lhyper: closed", 1, true), log)
    assert.is_nil((h.connect(port)))
  end)
end)
