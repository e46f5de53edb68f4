-- Support for the client specs: run a client script in its own lua5.4 (a
-- crash or a sanitizer report fails one test, not the run), and start real
-- servers to talk to: Node's http/net modules and Debian's nginx, each under
-- `timeout` in its own process group, killed at teardown.

local h = require "helper"
local socket = require "socket"
local check = require "luassert" -- busted's assert: a failed check fails the test

local M = {}

local shell_quote = h.shell_quote

-- A program running `src` as the body of a task, lhyper loaded (locals
-- `lhyper`, `say` = print, and what `prelude` defines). The loop stops when
-- the task ends; a raised error prints "ERROR <message>".
function M.program(src, prelude)
  return [[
local lhyper = require "lhyper"
local say = print
io.stdout:setvbuf("line")
]] .. (prelude or "") .. [[
local function main()
]] .. src .. [[

end
lhyper.spawn(function()
  local ok, err = xpcall(main, debug.traceback)
  if not ok then print("ERROR " .. tostring(err)) end
  lhyper.stop()
end)
lhyper.run()
]]
end

-- Runs M.program(src) in a fresh lua5.4. Returns stdout+stderr, exit code.
function M.client(src, limit)
  return h.lua(M.program(src), limit or 20)
end

-- M.client with `vars` (name -> string) as locals before `src`, failing the
-- test unless it exits 0 and raises nothing; its output parsed, and raw.
function M.run(src, vars, limit)
  local pre = {}
  for k, v in pairs(vars or {}) do pre[#pre + 1] = string.format("local %s = %q\n", k, v) end
  local out, code = M.client(table.concat(pre) .. src, limit or 40)
  check.equal(0, code, out)
  check.is_nil(out:find("ERROR", 1, true), out)
  return M.parse(out), out
end

-- Lines "key=value" of a client script's output -> table (last value wins).
function M.parse(out)
  local t = {}
  for line in out:gmatch("[^\n]+") do
    local k, v = line:match("^([%w_.]+)=(.*)$")
    if k then t[k] = v end
  end
  return t
end

function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- A port where connections are refused for as long as the returned socket
-- stays open: bound and not listening, so no other bind to port 0 (another
-- test's server, or the server under test itself) can be given it.
-- Close the socket when done.
function M.dead_port()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  return tonumber(port), s
end

local Proc = {}
Proc.__index = Proc
local live = {}

-- `cmd` runs under timeout, in its own process group; its first line on
-- stdout names the group: "PGID <n>" (and "PORT <n>" when it knows it).
local function spawn(cmd, logfile)
  local pipe = assert(io.popen(string.format("exec timeout -s KILL %d %s 2>%s",
    h.SERVER_LIFETIME, cmd, shell_quote(logfile)), "r"))
  local line = pipe:read("l") or ""
  local pgid = tonumber(line:match("PGID (%d+)"))
  if not pgid then
    pipe:close()
    error("upstream did not start (" .. line .. "):\n" .. (h.read_file(logfile) or ""), 3)
  end
  local p = setmetatable({ pipe = pipe, pgid = pgid, logfile = logfile,
    port = tonumber(line:match("PORT (%d+)")), pid = tonumber(line:match("PID (%d+)")) }, Proc)
  live[p] = true
  return p
end

function Proc:stop()
  if self.stopped then return end
  self.stopped = true
  live[self] = nil
  os.execute(string.format("kill -TERM -%d 2>/dev/null", self.pgid))
  local deadline = socket.gettime() + 2
  while socket.gettime() < deadline and os.execute(string.format("kill -0 -%d 2>/dev/null", self.pgid)) do
    socket.sleep(0.02)
  end
  os.execute(string.format("kill -KILL -%d 2>/dev/null", self.pgid))
  self.pipe:close()
  if self.files then os.execute("rm -rf " .. shell_quote(self.files)) end
  os.remove(self.logfile)
end

function Proc:log() return h.read_file(self.logfile) or "" end

M._reaper = setmetatable({}, { __gc = function()
  for p in pairs(live) do pcall(p.stop, p) end
end })

local function wait_listening(port, t)
  local deadline = socket.gettime() + (t or 5)
  while socket.gettime() < deadline do
    local s = socket.tcp()
    s:settimeout(0.2)
    local ok = s:connect("127.0.0.1", port)
    s:close()
    if ok then return true end
    socket.sleep(0.02)
  end
  return false
end

-- Node: `src` must listen on port 0 on 127.0.0.1 and then call ready(server).
-- env: variables for node, e.g. "NODE_PATH=/usr/share/nodejs".
function M.node(src, env)
  local file = h.tmpname(".js")
  h.write_file(file, [[
function ready(server) {
  console.log("PORT " + server.address().port + " PGID " + process.ppid);
}
]] .. src)
  local p = spawn((env and "env " .. env .. " " or "") .. "node " .. shell_quote(file), h.tmpname(".log"))
  p.files = file
  return p
end

-- A Lua script of this repo (lhyper on the module paths) that prints a line
-- with "http://host:PORT" once listening; .pid is the Lua process.
function M.lua_script(path, args)
  local cmd = "sh -c " .. shell_quote(string.format("echo PGID $PPID PID $$; cd %s && LUA_PATH=%s LUA_CPATH=%s exec %s%s%s %s %s",
    shell_quote(h.ROOT), shell_quote(h.LUA_PATH), shell_quote(h.LUA_CPATH), h.PRELOAD_ENV, h.WRAP, h.LUA, path, args or ""))
  local p = spawn(cmd, h.tmpname(".log"))
  local line = p.pipe:read("l") or ""
  p.port = tonumber(line:match("http://[^:]+:(%d+)"))
  if not p.port then
    local log = p:log()
    p:stop()
    error("script did not start (" .. line .. "):\n" .. log, 2)
  end
  return p
end

-- Python (/usr/bin/python3, with Debian's modules): `src` must print
-- "PGID <os.getppid()> PORT <port>" once listening.
function M.python(src)
  local file = h.tmpname(".py")
  h.write_file(file, src)
  local p = spawn("/usr/bin/python3 " .. shell_quote(file), h.tmpname(".log"))
  p.files = file
  return p
end

-- any command whose first line on stdout is "PGID <n> [PORT <n>]"
M.spawn = function(cmd) return spawn(cmd, h.tmpname(".log")) end

function M.have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end

-- A Python script (Debian's /usr/bin/python3, which has trustme and the
-- like) that prints "PORT <n>" once listening; its group is the caller's.
function M.python(src, args)
  local file = h.tmpname(".py")
  h.write_file(file, src)
  local p = spawn(string.format("sh -c %s", shell_quote(
    "echo PGID $PPID; exec /usr/bin/python3 -u " .. shell_quote(file) .. " " .. (args or ""))), h.tmpname(".log"))
  p.files = file
  local line = p.pipe:read("l") or ""
  p.port = tonumber(line:match("PORT (%d+)"))
  if not p.port then
    local log = p:log()
    p:stop()
    error("python server did not start (" .. line .. "):\n" .. log, 2)
  end
  return p
end

-- nginx with `locations` (server block body) on a free loopback port, in a
-- temp prefix holding `files` (name -> content) under static/; extra.main
-- and extra.http: lines for the main and http contexts
-- (modules, Lua paths); extra.ssl makes the port a TLS one (the server block
-- then names its certificate).
function M.nginx(locations, files, extra)
  extra = extra or {}
  local prefix = h.tmpname("-nginx")
  assert(os.execute("mkdir -p " .. shell_quote(prefix .. "/static") .. " " .. shell_quote(prefix .. "/dav")))
  for name, content in pairs(files or {}) do h.write_file(prefix .. "/static/" .. name, content) end
  local port = M.free_port()
  local user = h.run("id -u"):match("^0") and "user root;\n" or ""
  h.write_file(prefix .. "/nginx.conf", (user .. (extra.main or "") .. [[
worker_processes 1;
error_log PREFIX/error.log warn;
pid PREFIX/nginx.pid;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path PREFIX/body;
  proxy_temp_path PREFIX/proxy;
  fastcgi_temp_path PREFIX/fastcgi;
  uwsgi_temp_path PREFIX/uwsgi;
  scgi_temp_path PREFIX/scgi;
  default_type application/octet-stream;
  HTTPEXTRA
  server {
    listen 127.0.0.1:PORT SSL;
    LOCATIONS
  }
}
]]):gsub("HTTPEXTRA", ((extra.http or ""):gsub("%%", "%%%%"))):gsub("PREFIX", prefix)
    :gsub("PORT SSL", tostring(port) .. (extra.ssl and " ssl" or "")):gsub("LOCATIONS", (locations:gsub("%%", "%%%%")))
    :gsub("ROOT", prefix))
  local cmd = string.format([[sh -c 'echo PGID $PPID; exec nginx -p %s -c %s -g "daemon off;"']],
    prefix, prefix .. "/nginx.conf")
  local p = spawn(cmd, h.tmpname(".log"))
  p.files = prefix
  p.port = port
  p.prefix = prefix
  if not wait_listening(port) then
    local log = p:log() .. (h.read_file(prefix .. "/error.log") or "")
    p:stop()
    error("nginx did not start:\n" .. log, 2)
  end
  return p
end

return M
