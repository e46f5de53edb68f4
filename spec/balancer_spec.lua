local h = require "helper"
local socket = require "socket"

-- Issue 21: restarts and reloads behind real load balancers lose nothing.
-- Two lhyper backends, each a master with 2 workers, behind Debian's nginx
-- (upstream keepalive 32, proxy_http_version 1.1) and behind HAProxy
-- (option httpchk on /ready, http-reuse safe); wrk sends a mixed GET + POST
-- load while each backend is restarted (SIGTERM: drain, exit, start again
-- on the same port) and reloaded (SIGHUP) in turn, ROUNDS times
-- (LHYPER_LB_ROUNDS, 3: 6 restarts and 6 reloads). The client
-- must see no socket error and no non-2xx response, every POST it got an
-- answer for was processed exactly once with its body intact, and no POST
-- was processed twice. Also SIGHUP under the same load without a balancer.
-- Bounded: wrk runs until the restarts are done (SIGINT), at most 300 s.
-- Tagged nosan: the sanitizer runs would make it minutes long.

local ROUNDS = tonumber(os.getenv("LHYPER_LB_ROUNDS") or "3")

-- The backend: /hello, /post (echo; the body's id is appended to a file per
-- process), /ready through ready_path.
local BACKEND = [[
local lhyper = require "lhyper"
local port, dir = tonumber(arg[1]), arg[2]
local ids, ids_pid
local function mypid() return io.open("/proc/self/stat"):read("l"):match("^(%d+)") end
local server = assert(lhyper.server { host = "127.0.0.1", port = port, ready_path = "/ready",
  drain_delay = 0.8, drain_idle = 0.5, backlog = 1024,
  handler = function(req)
    if req.path == "/post" then
      local body = assert(req:read_all(1e6))
      local id = body:match("^P(%d+):")
      if ids_pid == nil then
        ids_pid = mypid()
        ids = assert(io.open(dir .. "/ids-" .. ids_pid, "a"))
        ids:setvbuf("line")
      end
      ids:write(tostring(id), "\n")
      return 200, { ["content-type"] = "text/plain" }, body
    end
    return 200, { ["content-type"] = "text/plain" }, "hello"
  end })
local id = lhyper.workers { n = 2, grace = 5 }
if id then io.stderr:write("READY ", id, "\n") end
lhyper.run()
if ids then ids:close() end
]]

-- wrk: odd requests GET /hello, even ones POST /post with a body made from
-- an id unique over threads; a response must be 200 and "hello" or the
-- exact body of its POST (found from the id it carries); acked POST ids go
-- to a file per thread.
local WRK = [[
local dir = os.getenv("LB_DIR")
local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end
local function body_of(id)
  return "P" .. id .. ":" .. string.rep(string.format("%x", id % 4096), 40 + id % 200) .. ":end"
end
function init(args)
  n, posts, acked, bad, non2xx, responses = 0, 0, 0, 0, 0, 0
  out = io.open(dir .. "/acked-" .. tid, "w")
end
function request()
  n = n + 1
  if n % 2 == 0 then
    posts = posts + 1
    return wrk.format("POST", "/post", { ["Content-Type"] = "text/plain" }, body_of(tid * 100000000 + n))
  end
  return wrk.format("GET", "/hello", {})
end
function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if non2xx <= 5 then io.stderr:write("non-2xx ", status, " ", tostring(body):sub(1, 200), "\n") end
    return
  end
  local id = body:match("^P(%d+):")
  if id then
    if body == body_of(tonumber(id)) then
      acked = acked + 1
      out:write(id, "\n")
      out:flush()
    else
      bad = bad + 1
    end
  elseif body ~= "hello" then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local p, a, b, x, r = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    p, a, b, x, r = p + t:get("posts"), a + t:get("acked"), b + t:get("bad"), x + t:get("non2xx"), r + t:get("responses")
  end
  local e = summary.errors
  io.write(string.format("WRK requests=%d responses=%d posts=%d acked=%d bad=%d non2xx=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, r, p, a, b, x, e.connect, e.read, e.write, e.status, e.timeout))
end
]]

local function have(cmd) return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true end

-- a program in its own process group under timeout; first line "PGID n"
local Proc = {}
Proc.__index = Proc
local function spawn(cmd, lifetime)
  local log = h.tmpname(".log")
  local pipe = assert(io.popen(string.format("exec %stimeout -s KILL %d sh -c %s 2>%s",
    h.CLIENT_ENV, lifetime, h.shell_quote("echo PGID $PPID; exec " .. cmd), h.shell_quote(log)), "r"))
  local pgid = tonumber((pipe:read("l") or ""):match("PGID (%d+)"))
  assert(pgid, "did not start: " .. cmd)
  return setmetatable({ pipe = pipe, pgid = pgid, logfile = log }, Proc)
end
function Proc:log() return h.read_file(self.logfile) or "" end
function Proc:signal(sig) os.execute(string.format("kill -%s %d 2>/dev/null", sig, self.pgid)) end
function Proc:stop()
  if self.stopped then return end
  self.stopped = true
  os.execute(string.format("kill -TERM -%d 2>/dev/null", self.pgid))
  local deadline = h.now() + 3
  while h.now() < deadline and os.execute(string.format("kill -0 -%d 2>/dev/null", self.pgid)) do h.sleep(0.02) end
  os.execute(string.format("kill -KILL -%d 2>/dev/null", self.pgid))
  pcall(self.pipe.close, self.pipe)
  os.remove(self.logfile)
end

local function wait_port(port, t)
  local deadline = h.now() + (t or 10)
  while h.now() < deadline do
    local s = socket.tcp()
    s:settimeout(0.2)
    local ok = s:connect("127.0.0.1", port)
    s:close()
    if ok then return true end
    h.sleep(0.02)
  end
  return false
end

-- a backend (master + 2 workers) on a fixed port
local Backend = {}
Backend.__index = Backend
local function backend(file, port, dir)
  local b = setmetatable({ file = file, port = port, dir = dir, gens = 0 }, Backend)
  b:start()
  return b
end
function Backend:start()
  self.p = h.start_lua(string.format("%s %d %s", self.file, self.port, h.shell_quote(self.dir)), 400)
  self.gens = 0
  local deadline = h.now() + 15
  repeat
    local _, n = self.p:log():gsub("READY ", "")
    if n >= 2 then return end
    h.sleep(0.02)
  until h.now() > deadline or not self.p:alive()
  error("backend did not start:\n" .. self.p:log())
end
-- SIGTERM: drain, exit 0; then a new master on the same port
function Backend:restart()
  assert(self.p:kill("TERM"))
  local code = self.p:exit_code(15)
  assert(code == 0, "backend exited with " .. tostring(code) .. ":\n" .. self.p:log())
  local log = self.p:log()
  assert(not log:find("killed", 1, true), log)
  self.p:stop()
  self:start()
end
function Backend:reload()
  self.gens = self.gens + 1
  assert(self.p:kill("HUP"))
  assert(self.p:wait_log(string.format("generation %d serves", self.gens), 20), self.p:log())
end
function Backend:stop()
  if self.p then
    self.p:stop()
    os.execute(string.format("kill -KILL -%d 2>/dev/null", self.p.pgid))
  end
end

-- the POST ids processed by the backends: { [id] = times }
local function processed(dir)
  local seen = {}
  for file in h.run("ls " .. h.shell_quote(dir)):gmatch("ids%-%d+") do
    for id in (h.read_file(dir .. "/" .. file) or ""):gmatch("%d+") do seen[id] = (seen[id] or 0) + 1 end
  end
  return seen
end

local function acked(dir)
  local ids = {}
  for file in h.run("ls " .. h.shell_quote(dir)):gmatch("acked%-%d+") do
    for id in (h.read_file(dir .. "/" .. file) or ""):gmatch("%d+") do ids[#ids + 1] = id end
  end
  return ids
end

-- runs wrk against url while `work()` runs, then stops it; checks the result
local CONNECTIONS = 8
local function load_while(url, dir, work, lb_log)
  local script = dir .. "/load.lua"
  h.write_file(script, WRK)
  local wrk = spawn(string.format("env LB_DIR=%s wrk -t2 -c%d -d300s --timeout 10s -s %s %s",
    h.shell_quote(dir), CONNECTIONS, h.shell_quote(script), h.shell_quote(url)), 320)
  local ok, err = pcall(function()
    h.sleep(1) -- load before anything happens
    work()
    h.sleep(1) -- and after
  end)
  wrk:signal("INT") -- wrk prints its summary on SIGINT
  local out = wrk.pipe:read("a")
  local wlog = wrk:log()
  wrk.stopped = true
  pcall(wrk.pipe.close, wrk.pipe)
  os.execute(string.format("kill -KILL -%d 2>/dev/null", wrk.pgid))
  os.remove(wrk.logfile)
  assert(ok, err)
  if lb_log then wlog = wlog .. "\nload balancer log:\n" .. lb_log() end
  local r = {}
  local line = out:match("WRK [^\n]+")
  assert(line, "wrk said:\n" .. out .. wlog)
  for k, v in line:gmatch("(%w+)=(%d+)") do r[k] = tonumber(v) end
  h.log("%s", line)
  assert.is_true(r.responses > 200, "too little load went through:\n" .. out)
  assert.equal(0, r.non2xx, out .. wlog)
  assert.equal(0, r.bad, out .. wlog)
  for _, k in ipairs { "connect", "read", "write", "status", "timeout" } do
    assert.equal(0, r[k], k .. " errors:\n" .. out .. wlog)
  end
  -- every POST the client got an answer for was processed once; none twice;
  -- processed but unanswered only for what was in flight when wrk stopped
  local seen, got = processed(dir), acked(dir)
  assert.equal(r.acked, #got)
  for _, id in ipairs(got) do
    assert.equal(1, seen[id], "POST " .. id .. " processed " .. tostring(seen[id]) .. " times")
  end
  local total, twice = 0, 0
  for _, n in pairs(seen) do
    total = total + n
    if n > 1 then twice = twice + 1 end
  end
  assert.equal(0, twice, "POSTs processed twice")
  assert.is_true(total - #got <= CONNECTIONS, ("%d POSTs processed, %d answered"):format(total, #got))
  assert.is_true(r.posts - r.acked <= CONNECTIONS, ("%d POSTs sent, %d answered"):format(r.posts, r.acked))
  return r
end

describe("restarts and reloads behind a load balancer #nosan", function()
  if not (have("wrk") and have("nginx") and have("haproxy")) then
    pending("needs wrk, nginx and haproxy")
    return
  end
  if h.SANITIZED then
    pending("load timing is not meaningful under sanitizers")
    return
  end

  local dir, file, a, b, lb
  before_each(function()
    dir = h.tmpname("-lb")
    assert(os.execute("mkdir -p " .. h.shell_quote(dir)))
    file = dir .. "/backend.lua"
    h.write_file(file, BACKEND)
    a = backend(file, h.free_port(), dir)
    b = backend(file, h.free_port(), dir)
  end)
  after_each(function()
    if lb then lb:stop() end
    if a then a:stop() end
    if b then b:stop() end
    lb, a, b = nil, nil, nil
    os.execute("rm -rf " .. h.shell_quote(dir))
  end)

  local function rounds(healthy)
    for round = 1, ROUNDS do
      for _, be in ipairs { a, b } do
        be:restart()
        healthy(be)
        be:reload()
        healthy(be)
      end
      h.log("round %d of %d done", round, ROUNDS)
    end
  end

  it("nginx (keepalive 32, HTTP/1.1 upstream): no error, every POST once", function()
    local port = h.free_port()
    local conf = dir .. "/nginx.conf"
    local user = h.run("id -u"):match("^0%s") and "user root;\n" or ""
    h.write_file(conf, (user .. [[
worker_processes 1;
error_log DIR/nginx-error.log warn;
pid DIR/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path DIR/body;
  proxy_temp_path DIR/proxy;
  fastcgi_temp_path DIR/fastcgi;
  uwsgi_temp_path DIR/uwsgi;
  scgi_temp_path DIR/scgi;
  upstream lhyper {
    server 127.0.0.1:APORT max_fails=0;
    server 127.0.0.1:BPORT max_fails=0;
    keepalive 32;
  }
  server {
    listen 127.0.0.1:PORT;
    location / {
      proxy_pass http://lhyper;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
]]):gsub("DIR", dir):gsub("APORT", tostring(a.port)):gsub("BPORT", tostring(b.port)):gsub("PORT", tostring(port)))
    lb = spawn(string.format("nginx -p %s -c %s -g 'daemon off;'", h.shell_quote(dir), h.shell_quote(conf)), 400)
    assert(wait_port(port), lb:log() .. (h.read_file(dir .. "/nginx-error.log") or ""))
    load_while("http://127.0.0.1:" .. port .. "/", dir, function()
      rounds(function(be) assert(wait_port(be.port)) end)
    end, function() return h.read_file(dir .. "/nginx-error.log") or "" end)
  end)

  it("HAProxy (httpchk on /ready, http-reuse safe): no error, every POST once", function()
    local port, stats = h.free_port(), h.free_port()
    local conf = dir .. "/haproxy.cfg"
    h.write_file(conf, ([[
global
  maxconn 1024
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout check 1s
  retries 3
  option redispatch
listen stats
  bind 127.0.0.1:STATS
  stats enable
  stats uri /stats
frontend fe
  bind 127.0.0.1:PORT
  default_backend be
backend be
  balance roundrobin
  option httpchk
  http-check send meth GET uri /ready ver HTTP/1.1 hdr Host lb
  http-reuse safe
  default-server inter 100ms fall 2 rise 1
  server a 127.0.0.1:APORT check
  server b 127.0.0.1:BPORT check
]]):gsub("STATS", tostring(stats)):gsub("APORT", tostring(a.port)):gsub("BPORT", tostring(b.port))
      :gsub("PORT", tostring(port)))
    lb = spawn(string.format("haproxy -db -f %s", h.shell_quote(conf)), 400)
    assert(wait_port(port), lb:log())
    -- a backend is healthy once HAProxy says it is UP
    local function up(name)
      local sock = socket.tcp()
      sock:settimeout(2)
      if not sock:connect("127.0.0.1", stats) then sock:close(); return false end
      sock:send("GET /stats;csv HTTP/1.0\r\n\r\n")
      local text = sock:receive("*a") or ""
      sock:close()
      local head = text:match("# ([^\r\n]+)")
      if not head then return false end
      local col = 0
      for i, f in ipairs((function() local t = {} for x in (head .. ","):gmatch("([^,]*),") do t[#t + 1] = x end return t end)()) do
        if f == "status" then col = i end
      end
      for line in text:gmatch("be,[^\r\n]+") do
        local f = {}
        for x in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = x end
        if f[2] == name then return f[col] == "UP" end
      end
      return false
    end
    local function healthy(be)
      local name = be == a and "a" or "b"
      local deadline = h.now() + 10
      while not up(name) do
        assert(h.now() < deadline, "HAProxy never saw backend " .. name .. " up")
        h.sleep(0.05)
      end
    end
    healthy(a)
    healthy(b)
    load_while("http://127.0.0.1:" .. port .. "/", dir, function() rounds(healthy) end,
      function() return lb:log() end)
  end)
end)

describe("SIGHUP under load #nosan", function()
  if not have("wrk") then
    pending("needs wrk")
    return
  end
  if h.SANITIZED then
    pending("load timing is not meaningful under sanitizers")
    return
  end

  it("reloads a master with 2 workers 6 times under wrk: no error, every POST once", function()
    local dir = h.tmpname("-hup")
    assert(os.execute("mkdir -p " .. h.shell_quote(dir)))
    local file = dir .. "/backend.lua"
    h.write_file(file, BACKEND)
    local be = backend(file, h.free_port(), dir)
    finally(function()
      be:stop()
      os.execute("rm -rf " .. h.shell_quote(dir))
    end)
    load_while("http://127.0.0.1:" .. be.port .. "/", dir, function()
      for _ = 1, 6 do
        be:reload()
        h.sleep(0.3)
      end
    end)
    -- the old generations are gone: 2 workers left
    h.sleep(1)
    local out = h.run(string.format("pgrep -P %d", be.p.pid))
    local _, n = out:gsub("%d+", "")
    assert.equal(2, n, be.p:log())
  end)
end)
