local h = require "helper"
local socket = require "socket"

-- Issue 19: lhyper.layers.timeout and lhyper.layers.concurrency_limit over
-- real sockets (spec/limit_app.lua). Budgets are 0.1 s against handlers
-- that sleep 2 s: a 503 well before 2 s shows the layer answered, on a
-- loaded machine too.

local function stats(srv)
  local res = assert(h.raw_request(srv.port, h.req("GET", "/stats")))
  local t = {}
  for k, v in res.body:gmatch("([%w_]+)=(%d+)") do t[k] = tonumber(v) end
  return t
end

-- waits until stats(srv)[k] reaches n (10 s at most); the last stats
local function wait_stat(srv, k, n)
  local deadline, s = h.now() + 10, nil
  repeat
    s = stats(srv)
    if (s[k] or 0) >= n then return s end
    h.sleep(0.02)
  until h.now() > deadline
  return s
end

local function get(srv, target)
  local t0 = h.now()
  local res, err = h.raw_request(srv.port, h.req("GET", target))
  assert(res, err)
  return res, h.now() - t0
end

describe("layers.timeout", function()
  local srv, log
  setup(function()
    log = h.tmpname(".log")
    srv = h.start_app("spec/limit_app.lua", { log = log })
  end)
  teardown(function()
    if srv then srv:stop() end
    os.remove(log)
  end)
  before_each(function() get(srv, "/reset") end)

  it("answers 503 at the budget and cancels the handler: its <close> variables run", function()
    local res, took = get(srv, "/t/sleep")
    assert.equal(503, res.status)
    assert.equal("timed out\n", res.body)
    assert.equal("text/plain", res.headers.get("content-type"))
    assert.truthy(took >= 0.09 and took < 1.5, "took " .. took)
    local s = wait_stat(srv, "sleep_closed", 1)
    assert.equal(1, s.sleep_closed)
    h.sleep(2.2) -- the handler's sleep would have ended by now
    assert.is_nil(stats(srv).sleep_finished)
  end)

  it("leaves a fast handler alone, and its error or empty answer as the server gives it", function()
    local res, took = get(srv, "/t/fast")
    assert.equal(200, res.status)
    assert.equal("fast\n", res.body)
    assert.truthy(took < 1, "took " .. took)
    res = get(srv, "/t/brief")
    assert.equal(200, res.status)
    assert.equal("brief\n", res.body)
    assert.equal(418, get(srv, "/t/raise").status)
    -- a string error comes out with the inner service's traceback, whether
    -- it raised at once or after waiting
    for _, case in ipairs { { "/t/raise-text", "plain failure" }, { "/t/raise-now", "failed at once" } } do
      local r = get(srv, case[1])
      assert.equal(500, r.status)
      assert.truthy(r.body:find("^caught: spec/limit_app%.lua:%d+: " .. case[2] .. "\nstack traceback:"), r.body)
    end
    assert.equal(500, get(srv, "/t/nothing").status)
    -- a request body read by the handler under the layer (its child task)
    local body = string.rep("x", 200000)
    local r = assert(h.raw_request(srv.port, h.req("POST", "/t/echo", nil, body)))
    assert.equal(200, r.status)
    assert.equal(#body, #r.body)
  end)

  it("answers the status it was given", function()
    local res, took = get(srv, "/t/status")
    assert.equal(504, res.status)
    assert.truthy(took < 1.5, "took " .. took)
  end)

  it("does not cut a body that streams past the budget once the head went out (curl)", function()
    local out, code = h.curl(string.format("-i http://127.0.0.1:%d/t/stream", srv.port))
    assert.equal(0, code, out)
    assert.truthy(out:find("^HTTP/1.1 200"), out)
    assert.truthy(out:find("part 1\npart 2\npart 3\npart 4\n", 1, true), out)
  end)

  it("lets a request upgraded in time (101 sent) run on as a stream", function()
    local sock, r = assert(h.connect(srv.port))
    assert(sock:send(h.req("GET", "/t/upgrade", { upgrade = "echo", connection = "upgrade" })))
    local res = assert(r:final_response())
    assert.equal(101, res.status)
    assert.equal("still here", r:line(3))
    assert(sock:send("ping\n"))
    local rest = r:rest(3)
    assert.equal("echo ping\n", rest)
    sock:close()
  end)

  it("aborts the handler's outbound request: the slow server sees its connection closed", function()
    local upstream = assert(socket.bind("127.0.0.1", 0))
    local _, uport = upstream:getsockname()
    upstream:settimeout(5)
    local sock, r = assert(h.connect(srv.port))
    local t0 = h.now()
    assert(sock:send(h.req("GET", "/t/upstream?port=" .. uport)))
    local conn = assert(upstream:accept())
    conn:settimeout(5)
    local line = assert(conn:receive("*l"))
    assert.equal("GET /never HTTP/1.1", line)
    local res = assert(r:final_response())
    assert.equal(503, res.status)
    assert.truthy(h.now() - t0 < 1.5)
    -- nothing was answered: the next read on the upstream side finds EOF
    local rest, err
    repeat rest, err = conn:receive("*l") until not rest
    assert.equal("closed", err)
    assert.truthy(h.now() - t0 < 3, "closed after " .. (h.now() - t0))
    conn:close()
    upstream:close()
    sock:close()
    local s = wait_stat(srv, "upstream_closed", 1)
    assert.equal(1, s.upstream_closed)
    assert.is_nil(s.upstream_returned)
  end)

  it("keeps the connection usable after a 503 (keep-alive)", function()
    local sock, r = assert(h.connect(srv.port))
    assert(sock:send(h.req("GET", "/t/sleep")))
    local res = assert(r:final_response())
    assert.equal(503, res.status)
    assert.is_nil(res.headers.get("connection"))
    assert(sock:send(h.req("GET", "/t/fast")))
    res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("fast\n", res.body)
    -- and a second timeout on the same connection
    assert(sock:send(h.req("GET", "/t/sleep")))
    assert.equal(503, assert(r:final_response()).status)
    sock:close()
  end)

  it("works as a router's layer (under a nest)", function()
    assert.equal("sub fast\n", get(srv, "/sub/fast").body)
    local res, took = get(srv, "/sub/slow")
    assert.equal(503, res.status)
    assert.truthy(took < 1.5, "took " .. took)
  end)

  it("is recorded as 503 by an access_log outside it", function()
    assert.equal(503, get(srv, "/t/sleep?logged=1").status)
    local deadline, entry = h.now() + 5, nil
    repeat
      for l in (h.read_file(log) or ""):gmatch("[^\n]+") do
        if l:find('"target":"/t/sleep?logged=1"', 1, true) then entry = l end
      end
      if not entry then h.sleep(0.05) end
    until entry or h.now() > deadline
    assert.truthy(entry, "no log line")
    assert.truthy(entry:find('"status":503', 1, true), entry)
    assert.truthy(entry:find('"complete":true', 1, true), entry)
    local us = tonumber(entry:match('"duration_us":(%d+)'))
    assert.truthy(us >= 90000 and us < 1500000, entry)
  end)
end)

describe("layers.timeout under garbage collection", function()
  it("keeps its child task alive while it runs, returns, raises or is cancelled", function()
    -- full collections at every step: the child's task object is anchored
    -- only by its waiting parent (csrc/lua/lspawn.c lh_spawn_within)
    local out, code = h.lua([[
local lhyper = require "lhyper"
local counts = { 0, 0, 0, 0 }
for i = 1, 200 do
  lhyper.spawn(function()
    local kind = i % 4
    local svc = lhyper.layers.timeout(0.05)(function()
      local _ <close> = setmetatable({}, { __close = function() collectgarbage() end })
      collectgarbage()
      if kind == 0 then return 200, nil, "now" end
      lhyper.sleep(kind == 3 and 0.5 or 0.01)
      collectgarbage()
      if kind == 1 then error("late " .. i) end
      return 200, nil, "late"
    end)
    local ok, a, _, c = pcall(svc, {})
    collectgarbage()
    if kind == 1 then assert(not ok and a:find("late " .. i, 1, true), tostring(a))
    elseif kind == 3 then assert(ok and a == 503 and c == "timed out\n", tostring(a))
    else assert(ok and a == 200, tostring(a)) end
    counts[kind + 1] = counts[kind + 1] + 1
  end)
end
lhyper.run()
print(table.concat(counts, " "))
]], 60)
    assert.equal(0, code, out)
    assert.equal("50 50 50 50\n", out)
  end)
end)

describe("layers.concurrency_limit", function()
  local srv
  setup(function() srv = h.start_app("spec/limit_app.lua", {}) end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function()
    get(srv, "/gate/close")
    get(srv, "/reset")
    get(srv, "/c/reset")
  end)

  -- starts a client in the background (io.popen); its output once done
  local function background(cmd)
    local p = assert(io.popen(h.CLIENT_ENV .. cmd .. " 2>&1", "r"))
    return function()
      local out = p:read("a")
      p:close()
      return out
    end
  end

  it("holds n=3 in flight, queues 5, sheds the rest at once, answers all (Python)", function()
    local py = h.tmpname(".py")
    h.write_file(py, [[
import sys, threading, http.client
port = int(sys.argv[1])
results = []
lock = threading.Lock()
def one():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request("GET", "/c/held")
    r = c.getresponse()
    body = r.read().decode()
    with lock:
        results.append((r.status, body.strip()))
    c.close()
ts = [threading.Thread(target=one) for _ in range(20)]
for t in ts: t.start()
for t in ts: t.join()
print(len(results), sum(1 for s, b in results if s == 200 and b == "served"),
      sum(1 for s, b in results if s == 503 and b == "overloaded"))
]])
    finally(function() os.remove(py) end)
    local done = background(string.format("timeout -s KILL 30 /usr/bin/python3 %s %d", py, srv.port))
    local s = wait_stat(srv, "arrived", 20)
    assert.equal(20, s.arrived)
    h.sleep(0.2) -- nothing more gets in while the gate is shut
    s = stats(srv)
    assert.equal(3, s.entered)
    assert.equal(3, s.max_inflight)
    get(srv, "/gate/open")
    assert.equal("20 8 12\n", done())
    s = stats(srv)
    assert.equal(8, s.entered)
    assert.equal(3, s.max_inflight)
  end)

  it("does the same for 20 parallel curl transfers", function()
    local urls = {}
    for i = 1, 20 do urls[i] = string.format("'http://127.0.0.1:%d/c/held?i=%d'", srv.port, i) end
    local done = background("timeout -s KILL 30 curl -sS -Z --parallel-immediate --parallel-max 20 --max-time 20 " ..
      "-w '%{http_code}\\n' " .. table.concat(urls, " "))
    local s = wait_stat(srv, "arrived", 20)
    assert.equal(20, s.arrived)
    h.sleep(0.2)
    assert.equal(3, stats(srv).entered)
    get(srv, "/gate/open")
    local out = done()
    local ok, shed = 0, 0
    for code in out:gmatch("(%d%d%d)\n") do
      if code == "200" then ok = ok + 1 elseif code == "503" then shed = shed + 1 end
    end
    local _, served = out:gsub("served", "")
    local _, overloaded = out:gsub("overloaded", "")
    assert.same({ 8, 12, 8, 12 }, { ok, shed, served, overloaded }, out)
    assert.equal(3, stats(srv).max_inflight)
  end)

  it("lets a waiter whose client went away leave the queue without taking a slot", function()
    -- A holds the one slot; B waits, then its client leaves
    local a, ra = assert(h.connect(srv.port))
    assert(a:send(h.req("GET", "/q/held?a")))
    wait_stat(srv, "entered", 1)
    local b = assert(h.connect(srv.port))
    assert(b:send(h.req("GET", "/q/held?b")))
    wait_stat(srv, "arrived", 2)
    b:close()
    h.sleep(0.3)
    -- two places in the queue: C and D get them (B's is free), E is shed
    local c, rc = assert(h.connect(srv.port))
    assert(c:send(h.req("GET", "/q/held?c")))
    local d, rd = assert(h.connect(srv.port))
    assert(d:send(h.req("GET", "/q/held?d")))
    wait_stat(srv, "arrived", 4)
    local e = get(srv, "/q/held?e")
    assert.equal(503, e.status)
    assert.equal("overloaded\n", e.body)
    assert.equal("1", e.headers.get("retry-after"))
    get(srv, "/gate/open")
    for _, r in ipairs { ra, rc, rd } do
      local res = assert(r:final_response())
      assert.equal(200, res.status)
    end
    a:close(); c:close(); d:close()
    local s = stats(srv)
    assert.equal(3, s.entered) -- A, C, D: never B
    assert.equal(1, s.max_inflight)
    -- every slot is back: one runs, two wait, the fourth is shed
    get(srv, "/gate/close")
    get(srv, "/reset")
    local socks = {}
    for i = 1, 3 do
      local sk, r = assert(h.connect(srv.port))
      assert(sk:send(h.req("GET", "/q/held?again=" .. i)))
      socks[i] = { sk, r }
      wait_stat(srv, "arrived", i)
    end
    assert.equal(503, get(srv, "/q/held?fourth").status)
    get(srv, "/gate/open")
    for _, p in ipairs(socks) do
      assert.equal(200, assert(p[2]:final_response()).status)
      p[1]:close()
    end
  end)

  it("frees the slot handed to a waiter that was cancelled before it ran", function()
    -- one loop, no sockets: a ends and hands its slot to b (woken, not run
    -- yet); a's task then cancels b. Nobody else waits: the slot is free,
    -- so c runs at once
    local out, code = h.lua([[
local lhyper = require "lhyper"
local gate, open, inflight, max = lhyper.condition(), false, 0, 0
local svc = lhyper.layers.concurrency_limit(1, { queue = 1 })(function(req)
  inflight = inflight + 1
  if inflight > max then max = inflight end
  local _ <close> = setmetatable({}, { __close = function() inflight = inflight - 1 end })
  while not open do gate:wait() end
  return 200, nil, req.name
end)
lhyper.spawn(function()
  local b
  local a = lhyper.spawn(function() local st = svc { name = "a" }; b:cancel(); return st end)
  lhyper.sleep(0.01)
  b = lhyper.spawn(function() return svc { name = "b" } end)
  lhyper.sleep(0.01)
  print("shed while full", svc { name = "x" })
  open = true
  gate:broadcast()
  print("a", a:join())
  print("b", b:join())
  local c = lhyper.spawn(function() return svc { name = "c" } end)
  print("c", c:join(1))
  print("max", max, "inflight", inflight)
end)
lhyper.run()
]])
    assert.equal(0, code, out)
    assert.equal("shed while full\t503\ttable: X\toverloaded\n\n" ..
      "a\t200\nb\tnil\ttask canceled\tcanceled\nc\t200\tnil\tc\nmax\t1\tinflight\t0\n",
      (out:gsub("table: 0x%x+", "table: X")))
  end)

  it("gets its slot back from a call the timeout layer cancelled, inside it or outside", function()
    for _, where in ipairs { "inside", "outside" } do
      for _ = 1, 2 do
        local res, took = get(srv, "/tc/" .. where)
        assert.equal(503, res.status)
        assert.equal("timed out\n", res.body, where)
        assert.truthy(took < 1.5)
      end
    end
    assert.equal(4, wait_stat(srv, "sleepy_closed", 4).sleepy_closed)
  end)

  it("gets its slot back from an inner service that raised", function()
    for _ = 1, 3 do assert.equal(500, get(srv, "/tc/raise").status) end
  end)
end)

describe("layer options", function()
  it("timeout and concurrency_limit raise on bad or unknown options, naming the caller's line", function()
    local out, code = h.lua([[
local lhyper = require "lhyper"
local L = lhyper.layers
local function try(f)
  local ok, err = pcall(f)
  local file, msg = tostring(err):match("^([^:]*):%d+: (.*)$")
  print(ok and "accepted" or (file == arg[0] and msg or "elsewhere: " .. tostring(err)))
end
try(function() L.timeout() end)
try(function() L.timeout(0) end)
try(function() L.timeout(1, { staus = 503 }) end)
try(function() L.timeout(1, { status = "503" }) end)
try(function() L.timeout(1, { status = 99 }) end)
try(function() L.concurrency_limit(0) end)
try(function() L.concurrency_limit(2.5) end)
try(function() L.concurrency_limit(2, { queeu = 1 }) end)
try(function() L.concurrency_limit(2, { queue = -1 }) end)
try(function()
  L.timeout(0.5)
  L.timeout(1, { status = 504 })
  L.concurrency_limit(1)
  L.concurrency_limit(4, { queue = 100 })
end)
]])
    assert.equal(0, code, out)
    assert.equal(table.concat({
      "timeout: seconds must be a positive number",
      "timeout: seconds must be a positive number",
      "timeout: unknown option 'staus'",
      "timeout: option 'status' must be number, got string",
      "timeout: status must be an integer 200..599",
      "concurrency_limit: n must be a positive integer",
      "concurrency_limit: n must be a positive integer",
      "concurrency_limit: unknown option 'queeu'",
      "concurrency_limit: queue must be an integer >= 0",
      "accepted", "",
    }, "\n"), out)
  end)
end)
