local h = require "helper"

-- Issue 19: lhyper.layers over real sockets (spec/router_app.lua): rate
-- limit, request ids, access logs parsed field by field, Prometheus metrics
-- through python3-prometheus-client's parser and a real Prometheus, body
-- limits, CORS, set_headers, normalize_path, and lhyper.stack's order.

local function info(body)
  local t = {}
  for k, v in (body or ""):gmatch("([^=\n]+)=([^\n]*)") do t[k] = v end
  return t
end

local function get(srv, target, headers, method, body)
  local res, err = h.raw_request(srv.port, h.req(method or "GET", target, headers, body),
    { method = method })
  assert(res, err)
  return res
end

-- the file's lines once it has at least n of them (t seconds at most)
local function lines_of(path, n, t)
  local deadline = h.now() + (t or 5)
  local lines
  repeat
    lines = {}
    for l in (h.read_file(path) or ""):gmatch("[^\n]+") do lines[#lines + 1] = l end
    if #lines >= n then return lines end
    h.sleep(0.05)
  until h.now() > deadline
  return lines
end

describe("lhyper.stack", function()
  it("makes the first layer the outermost (ServiceBuilder order)", function()
    local out, code = h.lua([[
local lhyper = require "lhyper"
local trace = {}
local function tag(name)
  return function(inner)
    return function(req)
      trace[#trace + 1] = name .. ">"
      local s, hd, b = inner(req)
      trace[#trace + 1] = "<" .. name
      return s, hd, b .. name
    end
  end
end
local svc = lhyper.stack { tag("a"), false, tag("b"), tag("c"), function() trace[#trace + 1] = "svc"; return 200, nil, "" end }
local s, _, b = svc({})
print(table.concat(trace, " "), b)
print(pcall(lhyper.stack, {}))
print(pcall(lhyper.stack, { 42, function() end }))
print(pcall(lhyper.stack, { function() return "no service" end, function() end }))
]])
    assert.equal(0, code, out)
    local l1, rest = out:match("^([^\n]*)\n(.*)$")
    assert.equal("a> b> c> svc <c <b <a\tcba", l1)
    for line in rest:gmatch("[^\n]+") do assert.truthy(line:find("^false\t"), line) end
  end)
end)

describe("req:on_end", function()
  local srv
  setup(function() srv = h.start_app("spec/router_app.lua", {}) end)
  teardown(function() if srv then srv:stop() end end)

  -- the reports of the exchanges so far (they run before the next request is read)
  local function seen()
    local deadline = h.now() + 3
    local body
    repeat
      body = get(srv, "/oe-seen").body
      if body == "" then h.sleep(0.05) end
    until body ~= "" or h.now() > deadline
    return body
  end

  it("reports a complete response with its status and body bytes", function()
    assert.equal(200, get(srv, "/oe/str").status)
    assert.equal("str:true:200:5:true", seen())
    local res = get(srv, "/oe/stream")
    assert.equal("chunk1\nchunk2\nchunk3\n", res.body)
    assert.equal("stream:true:200:21:true", seen())
    get(srv, "/oe/str", nil, "HEAD")
    assert.equal("str:true:200:0:true", seen())
  end)

  it("reports the server's own answer to a handler that answered nothing or raised", function()
    assert.equal(500, get(srv, "/oe/nothing").status)
    assert.equal("nothing:true:500:0:true", seen())
    assert.equal(500, get(srv, "/oe/raise").status)
    assert.equal("raise:true:500:0:true", seen())
  end)

  it("reports an exchange given up: a body iterator that raised, a client that left", function()
    local res, r = get(srv, "/oe/midraise")
    assert.equal(200, res.status)
    assert.is_false(res.complete)
    assert.equal("midraise:false:200:7:true", seen())
    local sock, rd = assert(h.connect(srv.port))
    assert(sock:send(h.req("GET", "/oe/slow")))
    assert(rd:line())
    h.sleep(0.2)
    sock:close()
    local s = seen()
    local complete, status, bytes = s:match("^slow:(%a+):(%d+):(%d+):true$")
    assert.equal("false", complete, s)
    assert.equal("200", status)
    assert.truthy(tonumber(bytes) > 0 and tonumber(bytes) < 100 * 8, s)
  end)
end)

describe("lhyper.log_writer", function()
  it("buffers lines, writes them within the flush interval and at close, drops past its limit", function()
    local path = h.tmpname(".log")
    finally(function() os.remove(path) end)
    local out, code = h.lua(string.format([[
local lhyper = require "lhyper"
local w = assert(lhyper.log_writer(%q, 64, 0.2))
print(w:write("one\n"), w:write("two\n"))
print(w:write(string.rep("x", 100)))              -- over the 64-byte buffer: dropped
lhyper.spawn(function()
  print(io.open(%q):read("a") == "")             -- not written yet
  lhyper.sleep(0.5)
  io.write(io.open(%q):read("a"))
  local st = w:stats()
  print(st.written, st.dropped, st.pending, st.lost)
  w:write("three\n")
  w:close()
  w:close()
  print(pcall(w.write, w, "four\n"))
end)
lhyper.run()
io.write(io.open(%q):read("a"))
print(lhyper.log_writer("/nonexistent-dir/x.log"))
print(pcall(lhyper.log_writer, {}))
]], path, path, path, path))
    assert.equal(0, code, out)
    local lines = {}
    for l in out:gmatch("[^\n]*") do if l ~= "" then lines[#lines + 1] = l end end
    assert.equal("true\ttrue", lines[1])
    assert.equal("false", lines[2])
    assert.equal("true", lines[3])
    assert.equal("one", lines[4])
    assert.equal("two", lines[5])
    assert.equal("8\t100\t0\t0", lines[6])
    assert.truthy(lines[7]:find("^false\t.*closed log writer"), lines[7])
    assert.same({ "one", "two", "three" }, { lines[8], lines[9], lines[10] })
    assert.truthy(lines[11]:find("^nil\t/nonexistent%-dir/x%.log: No such file or directory\tio"), lines[11])
    assert.truthy(lines[12]:find("^false\t"), lines[12])
  end)
end)

describe("lhyper.layers", function()
  local srv, log
  setup(function()
    log = h.tmpname(".log")
    srv = h.start_app("spec/router_app.lua", { log = log, metrics = true })
  end)
  teardown(function()
    if srv then srv:stop() end
    if log then os.remove(log) end
  end)

  describe("rate_limit", function()
    it("answers 429 with Retry-After once a key's bucket is empty, per key", function()
      local a = { ["x-client"] = "a" }
      assert.equal(200, get(srv, "/rl", a).status)
      assert.equal(200, get(srv, "/rl", a).status)
      local res = get(srv, "/rl", a)
      assert.equal(429, res.status)
      local wait = tonumber(res.headers.get("retry-after"))
      assert.truthy(wait and wait >= 1 and wait <= 2, res.headers.get("retry-after"))
      -- another key has its own bucket; no key: not limited
      assert.equal(200, get(srv, "/rl", { ["x-client"] = "b" }).status)
      for _ = 1, 5 do assert.equal(200, get(srv, "/rl").status) end
      -- a token is back after a second (rate 1)
      h.sleep(1.1)
      assert.equal(200, get(srv, "/rl", a).status)
      assert.equal(429, get(srv, "/rl", a).status)
    end)

    it("does a bounded amount of work for a new key once max_keys buckets are held", function()
      -- a flood of new keys (many peers, or a key taken from a header) must
      -- not cost a walk over every bucket each: Lua instructions counted
      local out, code = h.lua([[
local lhyper = require "lhyper"
local function run(n, max_keys)
  local rl = lhyper.layers.rate_limit { rate = 1, burst = 1, max_keys = max_keys,
    key = function(req) return req.k end }
  local svc = rl(function() return 200 end)
  local count, ok = 0, 0
  debug.sethook(function() count = count + 1 end, "", 1000)
  for i = 1, n do if svc({ k = i }) == 200 then ok = ok + 1 end end
  debug.sethook()
  assert(ok == n, "a new key was refused")
  local again = svc({ k = n }) -- the newest key's bucket is kept: empty
  return count, again
end
local small, again = run(4000, 100000) -- never full
local full = run(4000, 1000)           -- full after the first 1000
print(again, full < 3 * small and "bounded" or ("full: " .. full .. "k instructions, not full: " .. small .. "k"))
]], 60)
      assert.equal(0, code, out)
      assert.equal("429\tbounded\n", out)
    end)
  end)

  describe("request_id", function()
    it("keeps a valid incoming id and makes one otherwise, on req.id and the response", function()
      local res = get(srv, "/users/1", { ["x-request-id"] = "abc-123_XYZ.4" })
      assert.equal("abc-123_XYZ.4", res.headers.get("x-request-id"))
      assert.equal("abc-123_XYZ.4", info(res.body).id)
      local seen = {}
      for _, bad in ipairs { false, "has space", string.rep("x", 200), "quote\"d" } do
        res = get(srv, "/users/1", { ["x-request-id"] = bad })
        local id = res.headers.get("x-request-id")
        assert.truthy(id:find("^%x+$") and #id == 32, id)
        assert.equal(id, info(res.body).id)
        assert.is_nil(seen[id])
        seen[id] = true
        assert.equal(1, res.headers.count("x-request-id"))
      end
    end)
  end)

  describe("access_log", function()
    it("writes a combined line per exchange, each field as sent", function()
      local id = "log-test-" .. math.random(1e9)
      local ua = 'curl-like/1.0 "quoted" \\ back'
      get(srv, "/users/77?x=1", { ["x-request-id"] = id, ["user-agent"] = ua, referer = "http://ref.example/" })
      local line
      local deadline = h.now() + 5
      repeat
        for _, l in ipairs(lines_of(log, 1)) do if l:find(id, 1, true) then line = l end end
        if not line then h.sleep(0.05) end
      until line or h.now() > deadline
      assert.truthy(line, "no log line with " .. id)
      local peer, day, mon, year, hh, mm, ss, method, target, ver, status, bytes, ref, agent, us, rid, state =
        line:match('^(%S+) %- %- %[(%d%d)/(%a%a%a)/(%d%d%d%d):(%d%d):(%d%d):(%d%d) %+0000%] ' ..
          '"(%u+) (%S+) HTTP/(%d%.%d)" (%d+) (%d+) "(.-)" "(.*)" (%d+) "(.-)" (%a+)$')
      assert.truthy(peer, line)
      assert.equal("127.0.0.1", peer)
      local t = os.time { year = tonumber(year), month = ({ Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
        Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 })[mon], day = tonumber(day),
        hour = tonumber(hh), min = tonumber(mm), sec = tonumber(ss) }
      assert.truthy(t, line)
      assert.equal("GET", method)
      assert.equal("/users/77?x=1", target)
      assert.equal("1.1", ver)
      assert.equal("200", status)
      local body = get(srv, "/users/77?x=1", { ["x-request-id"] = id, ["user-agent"] = ua }).body
      assert.equal(#body, tonumber(bytes))
      assert.equal("http://ref.example/", ref)
      assert.equal('curl-like/1.0 \\"quoted\\" \\\\ back', agent)
      assert.truthy(tonumber(us) >= 0 and tonumber(us) < 5e6, us)
      assert.equal(id, rid)
      assert.equal("ok", state)
    end)

    it("records an exchange the client left in the middle of as aborted", function()
      local id = "abort-" .. math.random(1e9)
      local sock, r = assert(h.connect(srv.port))
      assert(sock:send(h.req("GET", "/stream?n=40&delay=0.05", { ["x-request-id"] = id })))
      assert(r:line()) -- the status line: the body is on its way
      h.sleep(0.2)
      sock:close()
      local line
      local deadline = h.now() + 8
      repeat
        for _, l in ipairs(lines_of(log, 1)) do if l:find(id, 1, true) then line = l end end
        if not line then h.sleep(0.1) end
      until line or h.now() > deadline
      assert.truthy(line, "no log line for the aborted exchange")
      local status, bytes, state = line:match('" (%d+) (%d+) ".-" ".-" %d+ ".-" (%a+)$')
      assert.equal("200", status)
      assert.truthy(tonumber(bytes) < 40 * 8, bytes)
      assert.equal("aborted", state)
    end)

    it("writes what it holds within about a second, without a close", function()
      local id = "flush-" .. math.random(1e9)
      get(srv, "/", { ["x-request-id"] = id })
      local t0 = h.now()
      local found
      repeat
        found = (h.read_file(log) or ""):find(id, 1, true)
        if not found then h.sleep(0.05) end
      until found or h.now() - t0 > 5
      assert.truthy(found)
      assert.truthy(h.now() - t0 < 3, "took " .. (h.now() - t0) .. " s")
    end)

    it("writes JSON lines with every field, and survives a reader that does not read", function()
      local fifo = h.tmpname(".fifo")
      assert(os.execute("mkfifo " .. fifo))
      -- a reader that opens the pipe and never reads: the pipe fills up.
      -- It opens read-write (a FIFO so opened does not wait for a writer)
      -- and says so with a marker file: the server's non-blocking open for
      -- writing fails (ENXIO) while no reader has the FIFO open.
      local marker = fifo .. ".open"
      local holder = h.start_lua("-e " .. h.shell_quote(
        "local f = assert(io.open(" .. string.format("%q", fifo) .. ", 'r+')); " ..
        "assert(io.open(" .. string.format("%q", marker) .. ", 'w')):close(); os.execute('sleep 25')"), 40)
      local t_open = h.now()
      while not h.read_file(marker) and h.now() - t_open < 10 do h.sleep(0.02) end
      os.remove(marker)
      local jsrv = h.start_app("spec/router_app.lua", { log = fifo, log_format = "json" })
      finally(function()
        jsrv:stop(); holder:stop(); os.remove(fifo)
      end)
      -- 64 KiB of pipe: a long user agent fills it in a few dozen lines;
      -- the server must answer every request all the same
      local ua = string.rep("u", 4000)
      local sock, r = assert(h.connect(jsrv.port))
      local t0 = h.now()
      for i = 1, 300 do
        assert(sock:send(h.req("GET", "/users/" .. i, { ["user-agent"] = ua })))
        local res = assert(r:final_response())
        assert.equal(200, res.status)
      end
      sock:close()
      assert.truthy(h.now() - t0 < 30)
      -- now a reader that reads: whole JSON objects, one a line, until the
      -- server closes the pipe on its way out
      local script = h.tmpname(".py")
      h.write_file(script, [==[
import json, sys
n = ok = 0
with open(sys.argv[1]) as f:
    for line in f:
        n += 1
        e = json.loads(line)
        if sorted(e) == sorted(["time", "peer", "method", "target", "version", "status", "bytes",
                                "duration_us", "user_agent", "referer", "request_id", "route", "complete"]) and \
           e["method"] == "GET" and e["status"] == 200 and e["route"] == "/users/{id}" and \
           e["target"] == "/users/%d" % int(e["target"].split("/")[2]) and e["complete"] is True and \
           len(e["user_agent"]) == 4000 and len(e["request_id"]) == 32 and e["referer"] is None and \
           e["peer"] == "127.0.0.1" and e["time"].endswith("Z") and e["bytes"] > 0 and e["version"] == "1.1":
            ok += 1
print(n, ok)
]==])
      local reader = assert(io.popen(string.format("%stimeout -s KILL 20 /usr/bin/python3 %s %s 2>&1",
        h.CLIENT_ENV, script, fifo)))
      h.sleep(0.3)
      holder:stop()
      jsrv:stop()
      local out = reader:read("a")
      reader:close()
      os.remove(script)
      local n, ok = out:match("^(%d+) (%d+)\n$")
      assert.truthy(n, out)
      assert.truthy(tonumber(n) > 10, out)
      assert.equal(n, ok)
    end)
  end)

  describe("several access logs in one stack", function()
    it("each writes its line, whatever its format and out", function()
      local a, b = h.tmpname(".log"), h.tmpname(".log")
      finally(function() os.remove(a); os.remove(b) end)
      local out, code = h.lua(string.format([[
local lhyper = require "lhyper"
local L = lhyper.layers
local lines = {}
local srv = assert(lhyper.server { port = 0, handler = lhyper.stack {
  L.access_log { out = %q },
  L.request_id(),
  L.access_log { out = %q, format = "json" },
  L.access_log { out = function(line) lines[#lines + 1] = line end },
  function(req) return 200, nil, "hello" end,
} })
lhyper.spawn(function()
  for i = 1, 3 do
    local res = assert(lhyper.request { url = ("http://127.0.0.1:%%d/n/%%d"):format(srv.port, i) })
    res:read_all()
  end
  srv:close()
end)
lhyper.run()
io.write(table.concat(lines))
]], a, b), 20)
      assert.equal(0, code, out)
      for _, text in ipairs { h.read_file(a), h.read_file(b), out } do
        local n = 0
        for i in text:gmatch('/n/(%d)') do n = n + 1; assert.equal(tostring(n), i, text) end
        assert.equal(3, n, text)
      end
      local ids = {}
      for id in h.read_file(b):gmatch('"request_id":"(%x+)"') do ids[#ids + 1] = id end
      assert.equal(3, #ids)
      local k = 0
      for id in h.read_file(a):gmatch('" %d+ "(%x+)" ok') do k = k + 1; assert.equal(ids[k], id) end
      assert.equal(3, k)
    end)
  end)

  describe("request_id, access_log and timeout around one service", function()
    -- one C function serves the three (LHYPER_FAST_LAYERS); the suite's
    -- shortcuts-off pass runs this with the Lua services too
    it("give each request its id, its line and its deadline, as each layer alone does", function()
      local log = h.tmpname(".log")
      finally(function() os.remove(log) end)
      local out, code = h.lua(string.format([[
local lhyper = require "lhyper"
local L = lhyper.layers
local closed = 0
local function service(req)
  if req.path == "/slow" then
    local c <close> = setmetatable({}, { __close = function() closed = closed + 1 end })
    lhyper.sleep(5)
  end
  return 200, nil, req.id .. " " .. req.remote_addr
end
local srv = assert(lhyper.server { port = 0, handler = lhyper.stack {
  L.request_id(), L.access_log { out = %q, format = "json", flush = 0.05 }, L.timeout(0.3), service,
} })
local other = assert(lhyper.server { port = 0, handler = lhyper.stack {
  L.request_id { header = "X-Trace" }, L.timeout(5), service,
} })
lhyper.spawn(function()
  local cases = { { srv, "/fast", "abc-1" }, { srv, "/slow" }, { srv, "/fast", "bad id" }, { other, "/o", "t.1" } }
  for _, c in ipairs(cases) do
    local res = assert(lhyper.request { url = ("http://127.0.0.1:%%d%%s"):format(c[1].port, c[2]),
      headers = c[3] and { [c[1] == other and "x-trace" or "x-request-id"] = c[3] } or nil })
    local body = res:read_all()
    print(res.status, res.headers["x-request-id"] or res.headers["x-trace"], body)
  end
  lhyper.sleep(0.3)
  print("closed", closed)
  srv:close()
  other:close()
end)
lhyper.run()
]], log), 20)
      assert.equal(0, code, out)
      local rows = {}
      for st, id, body in out:gmatch("(%d+)\t(%S+)\t([^\n]*)\n") do rows[#rows + 1] = { tonumber(st), id, body } end
      assert.equal(4, #rows, out)
      assert.same({ 200, "abc-1", "abc-1 127.0.0.1" }, rows[1])
      assert.equal(503, rows[2][1])
      assert.truthy(rows[2][2]:find("^%x+$") and #rows[2][2] == 32, out)
      assert.equal("timed out", rows[2][3])
      assert.equal(200, rows[3][1])
      assert.truthy(rows[3][2]:find("^%x+$") and #rows[3][2] == 32, out)
      assert.equal(rows[3][2] .. " 127.0.0.1", rows[3][3])
      assert.same({ 200, "t.1", "t.1 127.0.0.1" }, rows[4])
      assert.truthy(out:find("closed\t1\n", 1, true), out)
      local lines = {}
      for l in h.read_file(log):gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.equal(3, #lines, h.read_file(log))
      for i, want in ipairs { { "/fast", 200, "abc-1" }, { "/slow", 503, rows[2][2] }, { "/fast", 200, rows[3][2] } } do
        assert.truthy(lines[i]:find('"target":"' .. want[1] .. '"', 1, true), lines[i])
        assert.truthy(lines[i]:find('"status":' .. want[2], 1, true), lines[i])
        assert.truthy(lines[i]:find('"request_id":"' .. want[3] .. '"', 1, true), lines[i])
        assert.truthy(lines[i]:find('"peer":"127.0.0.1"', 1, true), lines[i])
      end
    end)
  end)

  describe("request_id's and access_log's services given no request", function()
    it("raise, naming the layer and what they got", function()
      local out, code = h.lua([[
local L = require("lhyper").layers
for _, l in ipairs { L.request_id(), L.access_log { out = "/dev/null" } } do
  local ok, err = pcall(l(function() end), "x")
  print(ok, err)
end
]])
      assert.equal(0, code, out)
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.equal(2, #lines, out)
      for i, name in ipairs { "request_id", "access_log" } do
        assert.truthy(lines[i]:find("^false\t"), out)
        assert.truthy(lines[i]:find(name, 1, true), out)
        assert.truthy(lines[i]:find("lhyper.req expected, got string", 1, true), out)
      end
    end)
  end)

  describe("access_log near its buffer's limit", function()
    it("keeps every line that fits and counts the bytes of those it drops", function()
      local path = h.tmpname(".log")
      finally(function() os.remove(path) end)
      -- a 1000-byte buffer written only at close: lines of about 120 bytes
      local out, code = h.lua(string.format([[
local lhyper = require "lhyper"
local w = assert(lhyper.log_writer(%q, 1000, 60))
local srv = assert(lhyper.server { port = 0, handler = lhyper.stack {
  lhyper.layers.access_log { out = w }, function() return 200, nil, "hello" end } })
lhyper.spawn(function()
  for i = 1, 12 do
    local res = assert(lhyper.request { url = ("http://127.0.0.1:%%d/n/%%02d"):format(srv.port, i),
      headers = { ["user-agent"] = "spec" } })
    res:read_all()
  end
  lhyper.sleep(0.1)
  local st = w:stats()
  print(st.pending, st.dropped)
  w:close()
  srv:close()
end)
lhyper.run()
]], path), 20)
      assert.equal(0, code, out)
      local pending, dropped = out:match("^(%d+)\t(%d+)\n$")
      assert.truthy(pending, out)
      local text = h.read_file(path)
      local lines, longest = 0, 0
      for l in text:gmatch("[^\n]*\n") do lines = lines + 1; longest = math.max(longest, #l) end
      assert.equal(#text, tonumber(pending))
      -- every line that had room is there: one more (their lengths differ
      -- by the digits of the duration) would not have fitted
      assert.truthy(lines < 12 and #text + longest - 4 > 1000, ("%d lines, %d bytes"):format(lines, #text))
      -- dropped: the bytes of the lines left out, no more
      assert.truthy(tonumber(dropped) <= (12 - lines) * longest, ("dropped %s of %d lines of %d bytes at most"):format(
        dropped, 12 - lines, longest))
      assert.truthy(tonumber(dropped) >= (12 - lines) * (longest - 4), dropped)
    end)
  end)

  describe("access_log to a pipe nobody reads", function()
    it("does not keep the server from exiting (what it cannot write is dropped after 2 s)", function()
      local fifo = h.tmpname(".fifo")
      assert(os.execute("mkfifo " .. fifo))
      local holder = h.start_lua("-e " .. h.shell_quote(
        "local f = assert(io.open(" .. string.format("%q", fifo) .. ", 'r')); os.execute('sleep 25')"), 40)
      h.sleep(0.3)
      local jsrv = h.start_app("spec/router_app.lua", { log = fifo })
      finally(function()
        jsrv:stop(); holder:stop(); os.remove(fifo)
      end)
      local ua = string.rep("v", 8000)
      local sock, r = assert(h.connect(jsrv.port))
      for i = 1, 100 do
        assert(sock:send(h.req("GET", "/users/" .. i, { ["user-agent"] = ua })))
        assert.equal(200, assert(r:final_response()).status)
      end
      assert(sock:send(h.req("GET", "/__quit")))
      local t0 = h.now()
      local code = jsrv:exit_code(8)
      assert.equal(0, code, jsrv:log())
      assert.truthy(h.now() - t0 < 6, "took " .. (h.now() - t0))
      sock:close()
    end)
  end)

  describe("metrics", function()
    it("exposes counts, a duration histogram, in-flight, connections and bytes, as Prometheus parses them", function()
      for _ = 1, 3 do get(srv, "/users/5") end
      get(srv, "/users/6", nil, "DELETE")
      get(srv, "/nowhere")
      local out, code = h.run(string.format([[%stimeout -s KILL 20 /usr/bin/python3 -c '
import urllib.request, json
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://127.0.0.1:%d/metrics", timeout=10).read().decode()
fam = {f.name: f for f in text_string_to_metric_families(text)}
def val(name, sample, **labels):
    for s in fam[name].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None
r = {}
r["types"] = sorted((n, f.type) for n, f in fam.items())
r["user200"] = val("lhyper_http_requests", "lhyper_http_requests_total", route="/users/{id}", method="GET", status="200")
r["user405"] = val("lhyper_http_requests", "lhyper_http_requests_total", route="/users/{id}", method="DELETE", status="405")
r["none404"] = val("lhyper_http_requests", "lhyper_http_requests_total", route="(none)", method="GET", status="404")
h = "lhyper_http_request_duration_seconds"
r["hcount"] = val(h, h + "_count", route="/users/{id}", method="GET")
r["hinf"] = val(h, h + "_bucket", route="/users/{id}", method="GET", le="+Inf")
r["hsum"] = val(h, h + "_sum", route="/users/{id}", method="GET")
b = [s.value for s in fam[h].samples if s.name == h + "_bucket" and s.labels["route"] == "/users/{id}" and s.labels["method"] == "GET"]
r["monotonic"] = all(x <= y for x, y in zip(b, b[1:]))
r["inflight"] = val("lhyper_http_requests_in_flight", "lhyper_http_requests_in_flight")
r["conns"] = val("lhyper_open_connections", "lhyper_open_connections")
r["bin"] = val("lhyper_received_bytes", "lhyper_received_bytes_total")
r["bout"] = val("lhyper_sent_bytes", "lhyper_sent_bytes_total")
print(json.dumps(r))
' 2>&1]], h.CLIENT_ENV, srv.port))
      assert.equal(0, code, out)
      local r = assert(load("return " .. out:gsub("%[", "{"):gsub("%]", "}"):gsub('"(%w+)":', "%1="):gsub("true", "true"), "=json", "t", {}))()
      assert.same({
        { "lhyper_http_request_duration_seconds", "histogram" },
        { "lhyper_http_requests", "counter" },
        { "lhyper_http_requests_aborted", "counter" },
        { "lhyper_http_requests_in_flight", "gauge" },
        { "lhyper_open_connections", "gauge" },
        { "lhyper_received_bytes", "counter" },
        { "lhyper_sent_bytes", "counter" },
      }, r.types)
      assert.truthy(r.user200 >= 3, out)
      assert.truthy(r.user405 >= 1, out)
      assert.truthy(r.none404 >= 1, out)
      assert.equal(r.hcount, r.hinf)
      assert.equal(r.user200, r.hcount)
      assert.truthy(r.hsum > 0 and r.hsum < r.hcount * 5, out)
      assert.is_true(r.monotonic)
      assert.equal(0, r.inflight)
      assert.truthy(r.conns >= 1, out)
      assert.truthy(r.bin > 0 and r.bout > 0, out)
    end)

    it("is scraped by a real Prometheus, whose query API returns the series", function()
      local dir = h.tmpname(".prom")
      assert(os.execute("mkdir -p " .. dir .. "/data"))
      local pport = h.free_port()
      h.write_file(dir .. "/prometheus.yml", string.format([[
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: lhyper
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:%d"]
]], srv.port))
      for _ = 1, 4 do get(srv, "/users/8") end
      local prom = h.start_lua(string.format("-e %s", h.shell_quote(string.format(
        "os.exit(os.execute(%q) and 0 or 1)",
        string.format("exec prometheus --config.file=%s/prometheus.yml --storage.tsdb.path=%s/data " ..
          "--web.listen-address=127.0.0.1:%d --log.level=warn", dir, dir, pport)))), 60)
      finally(function()
        prom:stop()
        os.execute("rm -rf " .. dir)
      end)
      local query = string.format(
        "http://127.0.0.1:%d/api/v1/query?query=lhyper_http_requests_total%%7Broute%%3D%%22%%2Fusers%%2F%%7Bid%%7D%%22%%2Cmethod%%3D%%22GET%%22%%2Cstatus%%3D%%22200%%22%%7D",
        pport)
      local value, body
      local deadline = h.now() + 40
      repeat
        body = h.curl("-s " .. query, 5)
        value = body:match('"value":%[[%d.]+,"(%d+)"%]')
        if not value then h.sleep(0.5) end
      until value or h.now() > deadline
      assert.truthy(value, "no series from Prometheus: " .. tostring(body) .. "\n" .. prom:log())
      assert.truthy(tonumber(value) >= 4, body)
      assert.truthy(body:find('"job":"lhyper"', 1, true), body)
      local up = h.curl(string.format("-s http://127.0.0.1:%d/api/v1/query?query=up", pport), 5)
      assert.truthy(up:find('"value":%[[%d.]+,"1"%]'), up)
    end)
  end)

  describe("body_limit", function()
    it("answers 413 for a Content-Length over the limit without reading the body", function()
      local res = get(srv, "/limit", nil, "POST", string.rep("a", 11))
      assert.equal(413, res.status)
      assert.equal("close", res.headers.get("connection"))
      res = get(srv, "/limit", nil, "POST", string.rep("a", 10))
      assert.equal(200, res.status)
      assert.equal("got 10 bytes\n", res.body)
    end)

    it("counts a chunked body as it is read: 413 when it passes the limit (curl and Python)", function()
      local out = h.curl(string.format(
        "-H 'Transfer-Encoding: chunked' --data-binary @- -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/limit < /dev/null", srv.port))
      assert.equal("200", out)
      local py, code = h.run(string.format([[%stimeout -s KILL 20 /usr/bin/python3 -c '
import http.client
for path, size in (("/limit", 6), ("/limit", 25), ("/limit-raise", 25), ("/limit-raise", 8)):
    c = http.client.HTTPConnection("127.0.0.1", %d, timeout=10)
    c.request("POST", path, body=iter([b"x" * (size // 2), b"y" * (size - size // 2)]), encode_chunked=True,
              headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    print(path, size, r.status, r.read().decode().strip(), sep=" ", end="|\n")
    c.close()
' 2>&1]], h.CLIENT_ENV, srv.port))
      assert.equal(0, code, py)
      assert.equal("/limit 6 200 got 6 bytes|\n/limit 25 413 |\n/limit-raise 25 413 |\n/limit-raise 8 200 got 8 bytes|\n", py)
    end)
  end)

  describe("cors", function()
    it("answers a preflight from an allowed origin itself, per the Fetch standard (Node client)", function()
      local out, code = h.node(string.format([==[
const http = require("http");
const ask = (method, path, headers) => new Promise((ok, fail) => {
  const req = http.request({ host: "127.0.0.1", port: %d, path, method, headers }, res => {
    let b = ""; res.on("data", d => b += d); res.on("end", () => ok({ status: res.statusCode, h: res.headers, b })); });
  req.on("error", fail); req.end(); });
(async () => {
  const out = {};
  let r = await ask("OPTIONS", "/cors/data", { origin: "https://a.example",
    "access-control-request-method": "PUT", "access-control-request-headers": "content-type, x-token" });
  out.pre = [r.status, r.h["access-control-allow-origin"], r.h["access-control-allow-methods"],
    r.h["access-control-allow-headers"], r.h["access-control-max-age"], r.h["access-control-allow-credentials"], r.h.vary, r.b];
  r = await ask("OPTIONS", "/cors/data", { origin: "https://evil.example", "access-control-request-method": "PUT" });
  out.denied = [r.status, r.h["access-control-allow-origin"] || null, r.h["access-control-allow-methods"] || null];
  r = await ask("GET", "/cors/data", { origin: "https://b.example" });
  out.get = [r.status, r.h["access-control-allow-origin"], r.h["access-control-allow-credentials"],
    r.h["access-control-expose-headers"], r.h.vary, r.b];
  r = await ask("GET", "/cors/data", {});
  out.noorigin = [r.status, r.h["access-control-allow-origin"] || null, r.h.vary];
  r = await ask("OPTIONS", "/cors/data", { origin: "https://a.example" });
  out.plainoptions = [r.status, r.h.allow, r.h["access-control-allow-origin"]];
  r = await ask("GET", "/open/data", { origin: "https://any.example" });
  out.open = [r.status, r.h["access-control-allow-origin"], r.h.vary || null];
  r = await ask("OPTIONS", "/open/data", { origin: "https://any.example",
    "access-control-request-method": "DELETE", "access-control-request-headers": "x-one" });
  out.openpre = [r.status, r.h["access-control-allow-origin"], r.h["access-control-allow-headers"]];
  console.log(JSON.stringify(out));
})().catch(e => { console.log("error " + e); process.exit(1); });
]==], srv.port))
      assert.equal(0, code, out)
      assert.equal('{"pre":[204,"https://a.example","GET, HEAD, POST, PUT, PATCH, DELETE","content-type, x-token","600","true",' ..
        '"Origin, Access-Control-Request-Method, Access-Control-Request-Headers",""],' ..
        '"denied":[204,null,null],' ..
        '"get":[200,"https://b.example","true","x-total","accept, Origin","data\\n"],' ..
        '"noorigin":[200,null,"accept, Origin"],' ..
        '"plainoptions":[204,"GET, HEAD, PUT, OPTIONS","https://a.example"],' ..
        '"open":[200,"*",null],' ..
        '"openpre":[204,"*","x-one"]}\n', out)
    end)
  end)

  describe("set_headers", function()
    it("adds fields a response lacks, or replaces them with override, in any case", function()
      local res = get(srv, "/sh")
      assert.equal("DENY", res.headers.get("x-frame-options"))
      assert.equal(1, res.headers.count("cache-control"))
      assert.equal("max-age=5", res.headers.get("cache-control"))
      res = get(srv, "/sh-override")
      assert.equal(1, res.headers.count("cache-control"))
      assert.equal("no-store", res.headers.get("cache-control"))
      assert.equal("1", res.headers.get("x-a"))
    end)
  end)
end)

describe("layer options", function()
  -- any site could read what a logged-in user's browser gets: tower-http's
  -- CorsLayer refuses the same
  local CREDS = 'cors: credentials = true needs the origins named (a list, or a function): ' ..
    'with "*" every site could read answers made with the user\'s cookies'

  it("raise on an unknown option or one of the wrong type, naming it and the caller's line", function()
    local out, code = h.lua([[
local lhyper = require "lhyper"
local L = lhyper.layers
local function try(f)
  local ok, err = pcall(f)
  local file, msg = tostring(err):match("^([^:]*):%d+: (.*)$")
  print(ok and "accepted" or (file == arg[0] and msg or "elsewhere: " .. tostring(err)))
end
try(function() L.rate_limit { rate = 1, brust = 5 } end)
try(function() L.request_id { heder = "x-id" } end)
try(function() L.access_log { fromat = "json" } end)
try(function() L.access_log { format = "json", buffer = "big" } end)
try(function() L.metrics { pth = "/m" } end)
try(function() L.metrics { buckets = "1,2" } end)
try(function() L.cors { origin = "https://a.example" } end)
try(function() L.cors { credentials = "yes" } end)
try(function() L.cors { credentials = true } end)
try(function() L.cors { origins = "*", credentials = true } end)
try(function() L.set_headers({ a = "b" }, { overide = true }) end)
try(function() L.normalize_path { collapse = true } end)
try(function()
  L.rate_limit { rate = 1, burst = 2, key = print, max_keys = 5 }
  L.request_id { header = "x-id", generate = print }
  L.access_log { out = function() end, format = "json" }
  L.access_log { out = io.stderr, format = function() end, buffer = 4096, flush = 0.5 }
  L.metrics { path = "/m", buckets = { 1, 2 }, server = nil }
  L.cors { origins = { "https://a.example" }, methods = "GET", headers = { "x-a" }, expose = "x-b", max_age = 5, credentials = true }
  L.cors { origins = function() return true end }
  L.set_headers({ a = "b" }, { override = true })
  L.normalize_path()
end)
]])
    assert.equal(0, code, out)
    assert.equal(table.concat({
      "rate_limit: unknown option 'brust'",
      "request_id: unknown option 'heder'",
      "access_log: unknown option 'fromat'",
      "access_log: option 'buffer' must be number, got string",
      "metrics: unknown option 'pth'",
      "metrics: option 'buckets' must be table, got string",
      "cors: unknown option 'origin'",
      "cors: option 'credentials' must be boolean, got string",
      CREDS, CREDS,
      "set_headers: unknown option 'overide'",
      "normalize_path: unknown option 'collapse'",
      "accepted", "",
    }, "\n"), out)
  end)
end)

describe("normalize_path", function()
  local srv
  setup(function() srv = h.start_app("spec/router_app.lua", { normalize = true }) end)
  teardown(function() if srv then srv:stop() end end)

  it("collapses //, resolves . and .. (also %2e) before the router, 400 above the root", function()
    local cases = {
      { "/users//5", "user", "/users/5" }, { "/users/./5", "user", "/users/5" },
      { "/files/a/../b/./c", "file", "/files/b/c" }, { "/a/b/../../users/me", "me", "/users/me" },
      { "/files/x/%2e%2E/y", "file", "/files/y" }, { "//users///9", "user", "/users/9" },
    }
    for _, c in ipairs(cases) do
      local res = get(srv, c[1])
      assert.equal(200, res.status, c[1])
      local t = info(res.body)
      assert.equal(c[2], t.tag, c[1])
      assert.equal(c[3], t.path, c[1])
    end
    for _, p in ipairs { "/..", "/users/../../x", "/%2e%2e/etc/passwd", "/a/./../.." } do
      local res = get(srv, p)
      assert.equal(400, res.status, p)
    end
    -- curl sends the dots as they are with --path-as-is
    local out = h.curl(string.format("--path-as-is http://127.0.0.1:%d/users/x/../me", srv.port))
    assert.equal("me", info(out).tag, out)
  end)
end)
