-- Shared setup for the busted specs: start spec/app.lua as a subprocess, talk to
-- it over real sockets (LuaSocket) or with real clients (curl, python3, node),
-- and always clean up. Diagnostics go to stderr so TAP output stays parseable.

local socket = require "socket"

TEST_TIMEOUT = 5 -- seconds for any single network wait

local M = {}
package.loaded.helper = M

M.TEST_TIMEOUT = TEST_TIMEOUT
M.ROOT = os.getenv("LHYPER_ROOT") or "."
M.LUA = os.getenv("LUA") or "lua5.4"
M.SERVER_LIFETIME = 170 -- hard cap: a forgotten server dies on its own
-- Module search paths for subprocesses, relative to ROOT (overridable to run
-- the suite against another build).
M.LUA_PATH = os.getenv("LHYPER_SPEC_LUA_PATH") or "lua/?.lua;lua/?/init.lua;spec/?.lua;;"
M.LUA_CPATH = os.getenv("LHYPER_SPEC_LUA_CPATH") or "build/?.so;;"

-- Sanitizer runtimes (LHYPER_SPEC_PRELOAD, else LD_PRELOAD) are given to the
-- Lua processes that load lhyper.core, and taken from every other program.
local preload = os.getenv("LHYPER_SPEC_PRELOAD") or os.getenv("LD_PRELOAD")
M.CLIENT_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS "
M.PRELOAD_ENV = ""
-- LHYPER_SPEC_WRAP runs the server under a tool, e.g. "valgrind -q --leak-check=full"
M.WRAP = os.getenv("LHYPER_SPEC_WRAP") or ""
if M.WRAP ~= "" then M.WRAP = M.WRAP .. " " end
M.SANITIZED = (preload ~= nil and preload ~= "") or M.WRAP ~= "" -- RSS and timing are not meaningful then
if preload ~= nil and preload ~= "" then
  local keep = { "LD_PRELOAD=" .. preload }
  for _, v in ipairs({ "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS" }) do
    if os.getenv(v) then keep[#keep + 1] = v .. "=" .. os.getenv(v) end
  end
  for i, kv in ipairs(keep) do keep[i] = "'" .. kv:gsub("'", "'\\''") .. "'" end
  M.PRELOAD_ENV = "env " .. table.concat(keep, " ") .. " "
end

local function log(...)
  io.stderr:write("[spec] ", string.format(...), "\n")
end
M.log = log

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

local tmp_seq = 0
function M.tmpname(suffix)
  tmp_seq = tmp_seq + 1
  return string.format("/tmp/lhyper-spec-%d-%d-%d%s",
    math.floor(socket.gettime() * 1000) % 1000000, tmp_seq, math.random(1e6), suffix or "")
end

function M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.sleep(s) socket.sleep(s) end
function M.now() return socket.gettime() end

-- Serialize a flat options table into a Lua literal for the app's argv.
local function serialize(v)
  local t = type(v)
  if t == "string" then return string.format("%q", v)
  elseif t == "number" or t == "boolean" or t == "nil" then return tostring(v)
  elseif t == "table" then
    local parts = {}
    for k, x in pairs(v) do
      parts[#parts + 1] = "[" .. serialize(k) .. "]=" .. serialize(x)
    end
    table.sort(parts)
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("cannot serialize " .. t)
end
M.serialize = serialize

---------------------------------------------------------------------------
-- Processes
---------------------------------------------------------------------------

function M.proc_alive(pid)
  local s = M.read_file("/proc/" .. pid .. "/status")
  if not s then return false end
  local state = s:match("State:%s*(%a)")
  return state ~= "Z" and state ~= "X"
end

-- RSS and peak RSS (KiB) of a process, from /proc/PID/status.
function M.rss_kib(pid)
  local s = M.read_file("/proc/" .. pid .. "/status")
  if not s then return nil end
  return tonumber(s:match("VmRSS:%s*(%d+)")), tonumber(s:match("VmHWM:%s*(%d+)"))
end

-- CPU time (utime + stime, clock ticks) of a process, from /proc/PID/stat.
function M.cpu_ticks(pid)
  local s = M.read_file("/proc/" .. pid .. "/stat")
  if not s then return nil end
  local ut, st = s:match("^%d+ %b() %S+" .. string.rep(" %S+", 10) .. " (%d+) (%d+)")
  return tonumber(ut) + tonumber(st)
end

local live = {} -- servers not yet stopped, killed at exit as a last resort

local Server = {}
Server.__index = Server

-- Start spec/app.lua with `opts` (a flat table merged into lhyper.server{...})
-- under `timeout`, which puts it in its own process group. Returns a server
-- object with .port, .pid (the Lua process), .pgid, :stop(), :log().
-- `launch`, if given, is a command prefix for the server, e.g. "prlimit --nofile=48: --".
function M.start_server(opts, launch)
  return M.start_app("spec/app.lua", opts, launch)
end

-- The same for another app script (spec/<name>.lua) that follows app.lua's
-- protocol: options as a Lua table literal in arg[1], "PORT p PID pid PGID g"
-- on stdout once listening, GET /__quit stops it.
function M.start_app(script, opts, launch)
  local logfile = M.tmpname(".log")
  local cmd = string.format(
    "cd %s && LUA_PATH=%s LUA_CPATH=%s exec %s%stimeout -s KILL %d %s%s %s %s 2>%s",
    shell_quote(M.ROOT),
    shell_quote(M.LUA_PATH), shell_quote(M.LUA_CPATH), M.CLIENT_ENV,
    launch and launch .. " " or "", M.SERVER_LIFETIME, M.PRELOAD_ENV, M.WRAP .. M.LUA,
    shell_quote(script), shell_quote(serialize(opts or {})), shell_quote(logfile))
  local pipe = assert(io.popen(cmd, "r"))
  local line = pipe:read("l")
  local port, pid, pgid
  if line then port, pid, pgid = line:match("^PORT (%d+) PID (%d+) PGID (%d+)") end
  if not port then
    pipe:close()
    local text = M.read_file(logfile) or ""
    os.remove(logfile)
    error("server did not start (got " .. tostring(line) .. "):\n" .. text, 2)
  end
  local srv = setmetatable({
    port = tonumber(port), pid = tonumber(pid), pgid = tonumber(pgid),
    pipe = pipe, logfile = logfile, opts = opts,
  }, Server)
  live[srv] = true
  return srv
end

function Server:alive()
  return M.proc_alive(self.pid)
end

function Server:log()
  return M.read_file(self.logfile) or ""
end

-- Wait up to `t` seconds for the server process to exit by itself.
function Server:wait_exit(t)
  local deadline = socket.gettime() + t
  while socket.gettime() < deadline do
    if not self:alive() then return true end
    socket.sleep(0.02)
  end
  return not self:alive()
end

-- Wait up to `t` seconds for the server to exit by itself, then reap it.
-- Returns its exit code (128 + signal number when killed by a signal), or
-- nil when it is still running.
function Server:exit_code(t)
  if self.reaped then return self.code end
  if not self:wait_exit(t or 0) then return nil end
  local _, how, code = self.pipe:close() -- waits for `timeout`, which passes the code on
  self.reaped = true
  self.code = how == "signal" and 128 + code or code
  return self.code
end

-- Ask the app to quit through its /__quit route (lhyper.stop), so that the
-- process exits normally; true when it did within `t` seconds.
local function ask_quit(srv, t)
  if srv.opts and srv.opts.tls then
    -- a TLS port: curl speaks it (certificates are not checked here)
    M.run(string.format("%scurl -sk --max-time %d -o /dev/null https://127.0.0.1:%d/__quit",
      M.CLIENT_ENV, math.ceil(t), srv.port))
    return srv:wait_exit(t)
  end
  local sock = socket.tcp()
  sock:settimeout(t)
  if not sock:connect("127.0.0.1", srv.port) then sock:close(); return false end
  sock:send("GET /__quit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
  sock:receive("*a")
  sock:close()
  return srv:wait_exit(t)
end

-- An error valgrind reports. Under -q (as the valgrind pass runs it)
-- valgrind prints errors only, without the ERROR or LEAK SUMMARY, each
-- headed by a line "==pid== <what>": any such line but a warning is one.
local function valgrind_report(text)
  for what in text:gmatch("==%d+== (%u[^\n]*)") do
    if not what:find("^Warning") then return true end
  end
  return false
end
M.valgrind_report = valgrind_report

-- Lines a sanitizer (ASan/UBSan/LSan) or valgrind writes; such a log is always shown.
local function sanitizer_report(text)
  return text:find("Sanitizer", 1, true) or text:find("runtime error:", 1, true)
    or text:find("ERROR SUMMARY: [1-9]") or text:find("definitely lost: [1-9]")
    or valgrind_report(text)
end

-- Stop the server: a clean quit first, then TERM, then KILL to the whole
-- process group. The server's stderr is copied to ours when it holds a
-- sanitizer report or LHYPER_SPEC_SERVER_STDERR is set. Idempotent.
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  live[self] = nil
  if self:alive() and not ask_quit(self, 2) then
    os.execute(string.format("kill -TERM -%d 2>/dev/null", self.pgid))
    if not self:wait_exit(2) then
      os.execute(string.format("kill -KILL -%d 2>/dev/null", self.pgid))
      self:wait_exit(2)
    end
  end
  if not self.reaped then pcall(self.pipe.close, self.pipe) end -- reaps `timeout`
  local text = self:log()
  if sanitizer_report(text) or os.getenv("LHYPER_SPEC_SERVER_STDERR") then
    io.stderr:write(string.format("[spec] stderr of server pid %d %s:\n%s\n",
      self.pid, serialize(self.opts or {}), text))
  end
  if os.getenv("LHYPER_SPEC_KEEPLOG") then
    log("server log kept: %s", self.logfile)
  else
    os.remove(self.logfile)
  end
end

-- Last resort at lua_close (busted exits with os.exit(code, true)).
M._reaper = setmetatable({}, { __gc = function()
  for srv in pairs(live) do pcall(srv.stop, srv) end
end })

-- A port that was free a moment ago: bound to port 0 on 127.0.0.1, then released.
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- Other Lua programs (serve.lua, small scripts) run as a process of their own,
-- in their own process group under `timeout`, with stderr to a log file.
-- `args` is a string of already quoted arguments after the interpreter;
-- `env`, if given, a string of quoted NAME=value words for its environment;
-- `wrap`: under LHYPER_SPEC_WRAP's tool (valgrind) as the app servers are.
local Proc = {}
Proc.__index = Proc

function M.start_lua(args, lifetime, env, wrap)
  local logfile = M.tmpname(".log")
  local cmd = string.format(
    "cd %s && LUA_PATH=%s LUA_CPATH=%s %s exec %stimeout -s KILL %d sh -c %s sh %s%s %s 2>%s",
    shell_quote(M.ROOT), shell_quote(M.LUA_PATH), shell_quote(M.LUA_CPATH), env or "", M.CLIENT_ENV,
    lifetime or 30, shell_quote('echo "PID $$"; exec "$@"'), M.PRELOAD_ENV, (wrap and M.WRAP or "") .. M.LUA, args,
    shell_quote(logfile))
  local pipe = assert(io.popen(cmd, "r"))
  local line = pipe:read("l")
  local pid = line and tonumber(line:match("^PID (%d+)"))
  if not pid then
    pipe:close()
    os.remove(logfile)
    error("process did not start (got " .. tostring(line) .. ")", 2)
  end
  local stat = M.read_file("/proc/" .. pid .. "/stat") or ""
  local pgid = tonumber(stat:match("^%d+ %b() %S+ %d+ (%d+)"))
  local p = setmetatable({ pid = pid, pgid = pgid, pipe = pipe, logfile = logfile }, Proc)
  live[p] = true
  return p
end

-- A Lua program `src`, written to a temp file, started as start_lua does
-- (wrapped) with `opts` serialized as its argument; the file goes at stop.
function M.start_script(src, opts, lifetime)
  local file = M.tmpname(".lua")
  M.write_file(file, src)
  local ok, p = pcall(M.start_lua, file .. " " .. shell_quote(M.serialize(opts or {})), lifetime, nil, true)
  if not ok then
    os.remove(file)
    error(p, 2)
  end
  p.file = file
  return p
end

Proc.alive = Server.alive
Proc.log = Server.log
Proc.wait_exit = Server.wait_exit
Proc.exit_code = Server.exit_code

-- Send a signal by name ("TERM", "INT", "USR1") to the process itself.
function Proc:kill(sig)
  return os.execute(string.format("kill -%s %d 2>/dev/null", sig, self.pid))
end

-- Wait up to `t` seconds until stderr holds `text` (a plain string).
function Proc:wait_log(text, t)
  local deadline = socket.gettime() + (t or TEST_TIMEOUT)
  repeat
    if self:log():find(text, 1, true) then return true end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return false
end

-- Wait up to `t` seconds for the "PORT n" line a script writes to stderr
-- once it listens; returns n, nil if it did not come.
function Proc:port(t)
  local deadline = socket.gettime() + (t or TEST_TIMEOUT)
  repeat
    local port = tonumber(self:log():match("PORT (%d+)\n"))
    if port then return port end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return nil
end

-- TERM, then KILL to the whole process group; reaps and removes the log. Idempotent.
function Proc:stop()
  if self.stopped then return end
  self.stopped = true
  live[self] = nil
  if self:alive() and self.pgid then
    os.execute(string.format("kill -TERM -%d 2>/dev/null", self.pgid))
    if not self:wait_exit(2) then
      os.execute(string.format("kill -KILL -%d 2>/dev/null", self.pgid))
      self:wait_exit(2)
    end
  end
  if not self.reaped then pcall(self.pipe.close, self.pipe) end
  local text = self:log()
  if sanitizer_report(text) or os.getenv("LHYPER_SPEC_SERVER_STDERR") then
    io.stderr:write(string.format("[spec] stderr of pid %d:\n%s\n", self.pid, text))
  end
  os.remove(self.logfile)
  if self.file then os.remove(self.file) end
end

---------------------------------------------------------------------------
-- Raw sockets
---------------------------------------------------------------------------

local Reader = {}
Reader.__index = Reader

-- Buffered reader over a LuaSocket TCP client; keeps every byte in .raw.
function M.reader(sock)
  return setmetatable({ sock = sock, buf = "", raw = {}, closed = false }, Reader)
end

-- Pull whatever is available, waiting at most `t` seconds. Returns true when
-- bytes were added, false on timeout/EOF (see .closed, .err).
function Reader:fill(t)
  if self.closed then return false end
  local sock = self.sock
  if not sock:dirty() then
    local r = socket.select({ sock }, nil, t or TEST_TIMEOUT)
    if not r[1] and not r[sock] then return false end
  end
  sock:settimeout(0)
  local data, err, partial = sock:receive(65536)
  sock:settimeout(TEST_TIMEOUT)
  data = data or partial
  if err and err ~= "timeout" then
    self.closed = true
    self.err = err
  end
  if data and #data > 0 then
    self.buf = self.buf .. data
    self.raw[#self.raw + 1] = data
    return true
  end
  return false
end

function Reader:raw_string() return table.concat(self.raw) end

-- A line without its CRLF, or nil, err.
function Reader:line(t)
  local deadline = socket.gettime() + (t or TEST_TIMEOUT)
  while true do
    local i = self.buf:find("\n", 1, true)
    if i then
      local l = self.buf:sub(1, i - 1):gsub("\r$", "")
      self.buf = self.buf:sub(i + 1)
      return l
    end
    if #self.buf > 1024 * 1024 then return nil, "line too long" end
    local left = deadline - socket.gettime()
    if left <= 0 then return nil, "timeout" end
    if not self:fill(left) and self.closed then return nil, "closed" end
  end
end

-- Exactly n bytes, or nil, err, partial.
function Reader:bytes(n, t)
  local deadline = socket.gettime() + (t or TEST_TIMEOUT)
  while #self.buf < n do
    local left = deadline - socket.gettime()
    if left <= 0 then
      local p = self.buf; self.buf = ""
      return nil, "timeout", p
    end
    if not self:fill(left) and self.closed then
      local p = self.buf; self.buf = ""
      return nil, "closed", p
    end
  end
  local s = self.buf:sub(1, n)
  self.buf = self.buf:sub(n + 1)
  return s
end

-- Everything until EOF. Returns data, "closed" or data, "timeout".
function Reader:rest(t)
  local deadline = socket.gettime() + (t or TEST_TIMEOUT)
  while not self.closed do
    local left = deadline - socket.gettime()
    if left <= 0 then break end
    self:fill(left)
  end
  local s = self.buf; self.buf = ""
  return s, self.closed and "closed" or "timeout"
end

-- Waits for the peer to close. Returns true when it closed having sent nothing
-- more; false, extra_bytes_or_"timeout" otherwise.
function Reader:expect_close(t)
  local data, how = self:rest(t or 3)
  if how == "closed" and data == "" then return true end
  if how ~= "closed" then return false, "timeout (" .. #data .. " extra bytes)" end
  return false, data
end

-- True when nothing arrives and the connection stays open for `t` seconds.
function Reader:quiet(t)
  local before = #self.buf
  local deadline = socket.gettime() + t
  while socket.gettime() < deadline and not self.closed do
    self:fill(deadline - socket.gettime())
  end
  return #self.buf == before and not self.closed
end

local function parse_headers(r, into)
  local list, map = into.list, into.map
  while true do
    local l, err = r:line()
    if not l then return nil, "headers: " .. err end
    if l == "" then return true end
    local name, value = l:match("^([^:%s]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, "bad header line: " .. l end
    list[#list + 1] = { name, value }
    local k = name:lower()
    map[k] = map[k] or {}
    table.insert(map[k], value)
  end
end

local function header_obj()
  local h = { list = {}, map = {} }
  function h.get(name) local v = h.map[name:lower()]; return v and v[1] end
  function h.all(name) return h.map[name:lower()] or {} end
  function h.count(name) return #(h.map[name:lower()] or {}) end
  return h
end

-- Read one response (1xx interim responses are returned as they come).
-- opts.method = "HEAD" for a response with no body. Result fields: status,
-- version, reason, headers (:get/:all/:count, .list, .map), body, framing
-- ("length" | "chunked" | "close" | "none"), chunks (sizes seen), trailers,
-- complete (false when the connection ended inside the body), raw_head.
function Reader:response(opts)
  opts = opts or {}
  local line, err = self:line(opts.timeout)
  if not line then return nil, "status line: " .. err end
  local version, status, reason = line:match("^HTTP/(%d%.%d) (%d%d%d) ?(.*)$")
  if not version then return nil, "bad status line: " .. line end
  local res = { version = version, status = tonumber(status), reason = reason,
    status_line = line, headers = header_obj(), complete = true }
  local ok, herr = parse_headers(self, res.headers)
  if not ok then return nil, herr end
  local st = res.status
  if (st >= 100 and st < 200) or st == 204 or st == 304 or opts.method == "HEAD" then
    res.framing, res.body = "none", ""
    return res
  end
  local te = res.headers.get("transfer-encoding")
  local cl = res.headers.get("content-length")
  if te and te:lower():match("chunked%s*$") then
    res.framing, res.chunks = "chunked", {}
    local parts = {}
    while true do
      local l, e = self:line()
      if not l then res.complete = false; res.err = e; break end
      local size = tonumber(l:match("^(%x+)") or "", 16)
      if not size then return nil, "bad chunk size line: " .. l end
      res.chunks[#res.chunks + 1] = size
      if size == 0 then
        res.trailers = header_obj()
        local tok, terr = parse_headers(self, res.trailers)
        if not tok then res.complete = false; res.err = terr end
        break
      end
      local data, e2, partial = self:bytes(size)
      if not data then
        parts[#parts + 1] = partial; res.complete = false; res.err = e2; break
      end
      parts[#parts + 1] = data
      local crlf = self:bytes(2)
      if crlf ~= "\r\n" then return nil, "chunk not followed by CRLF" end
    end
    res.body = table.concat(parts)
  elseif cl then
    res.framing = "length"
    local n = tonumber(cl)
    local data, e, partial = self:bytes(n)
    if data then res.body = data
    else res.body = partial; res.complete = false; res.err = e end
  else
    res.framing = "close"
    local data, how = self:rest(opts.timeout)
    res.body = data
    if how ~= "closed" then res.complete = false; res.err = how end
  end
  return res
end

-- Skips interim 1xx responses (except 101) and returns the final one.
function Reader:final_response(opts)
  while true do
    local res, err = self:response(opts)
    if not res then return nil, err end
    if res.status >= 200 or res.status == 101 then return res end
  end
end

-- Open a connection to the server (a port number or a server object).
function M.connect(port)
  if type(port) == "table" then port = port.port end
  local sock = assert(socket.tcp())
  sock:settimeout(TEST_TIMEOUT)
  local ok, err = sock:connect("127.0.0.1", port)
  if not ok then sock:close(); return nil, err end
  sock:setoption("tcp-nodelay", true)
  return sock, M.reader(sock)
end

-- Send `raw` bytes on a new connection and read one final response.
-- Returns res, reader (socket already closed) or nil, err, reader.
function M.raw_request(port, raw, opts)
  local sock, r = M.connect(port)
  assert(sock, r)
  local ok, err = sock:send(raw)
  if not ok and err ~= "closed" then sock:close(); error("send: " .. err) end
  local res, rerr = r:final_response(opts)
  if opts and opts.keep then return res, r, sock, rerr end
  sock:close()
  if not res then return nil, rerr, r end
  return res, r
end

-- Build a request: M.req("GET", "/hello", {["x-a"]="1"}, body, "1.1").
-- A Host header is added unless headers.host == false.
function M.req(method, target, headers, body, version)
  local out = { string.format("%s %s HTTP/%s\r\n", method, target, version or "1.1") }
  headers = headers or {}
  if headers.host == nil and headers.Host == nil then out[#out + 1] = "Host: 127.0.0.1\r\n" end
  local names = {}
  for k in pairs(headers) do if type(k) == "string" then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do
    local v = headers[k]
    if v ~= false then
      if type(v) == "table" then
        for _, x in ipairs(v) do out[#out + 1] = k .. ": " .. x .. "\r\n" end
      else
        out[#out + 1] = k .. ": " .. v .. "\r\n"
      end
    end
  end
  for _, pair in ipairs(headers) do out[#out + 1] = pair[1] .. ": " .. pair[2] .. "\r\n" end
  if body and not (headers["content-length"] or headers["transfer-encoding"]) then
    out[#out + 1] = "Content-Length: " .. #body .. "\r\n"
  end
  out[#out + 1] = "\r\n"
  out[#out + 1] = body or ""
  return table.concat(out)
end

-- Encode `parts` (array of strings) as a chunked body with optional trailer text.
function M.chunked(parts, trailer)
  local out = {}
  for _, p in ipairs(parts) do
    out[#out + 1] = string.format("%x\r\n%s\r\n", #p, p)
  end
  out[#out + 1] = "0\r\n" .. (trailer or "") .. "\r\n"
  return table.concat(out)
end

-- Parse the "key=value" lines the app's /info route answers with.
function M.parse_info(body)
  local t = { headers = {} }
  for line in body:gmatch("[^\n]+") do
    local k, v = line:match("^([^=]+)=(.*)$")
    if k == "header" then
      t.headers[#t.headers + 1] = v
    elseif k then
      t[k] = v
    end
  end
  return t
end

-- Parse a line of tab-separated "key=value" fields (an on_error report as
-- spec/app.lua's record_errors keeps it).
function M.parse_fields(line)
  local t = {}
  for k, v in line:gmatch("([%w_]+)=([^\t]*)") do t[k] = v end
  return t
end

-- What spec/app.lua's /record route keeps under `key` on the server at
-- `port`, parsed; nil when it has nothing (not 200).
function M.record(port, key)
  local res = assert(M.raw_request(port, M.req("GET", "/record?key=" .. key)))
  if res.status ~= 200 then return nil end
  return M.parse_info(res.body)
end

-- Polls f() every `step` seconds (0.05) until pred(value) holds or `t`
-- seconds (3) pass; returns the last value and whether pred held.
function M.wait_for(f, pred, t, step)
  local deadline = M.now() + (t or 3)
  local v
  repeat
    v = f()
    if pred(v) then return v, true end
    M.sleep(step or 0.05)
  until M.now() > deadline
  return v, false
end

-- How many established TCP connections have `port` as either end, as
-- ss (iproute2) sees them.
function M.established(port)
  local out = M.run(string.format("ss -Htn state established '( sport = :%d or dport = :%d )' 2>&1",
    port, port))
  local n = 0
  for _ in out:gmatch("[^\n]+") do n = n + 1 end
  return n
end

---------------------------------------------------------------------------
-- External clients
---------------------------------------------------------------------------

-- Run a shell command, capturing stdout (add 2>&1 to capture stderr too).
-- Returns output, exit code.
function M.run(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

-- curl with a time limit; `args` is a string of already quoted arguments.
function M.curl(args, limit)
  limit = limit or 20
  return M.run(string.format("%stimeout -s KILL %d curl -sS --max-time %d %s 2>&1", M.CLIENT_ENV,
    limit + 2, limit, args))
end

-- Run a python3 script (source text) with arguments; stdout+stderr captured.
function M.python(src, args, limit)
  local file = M.tmpname(".py")
  M.write_file(file, src)
  local out, code = M.run(string.format("%stimeout -s KILL %d python3 %s %s 2>&1",
    M.CLIENT_ENV, limit or 20, file, args or ""))
  os.remove(file)
  return out, code
end

-- Run a node script (source text) with arguments; stdout+stderr captured.
function M.node(src, args, limit)
  local file = M.tmpname(".js")
  M.write_file(file, src)
  local out, code = M.run(string.format("%stimeout -s KILL %d node %s %s 2>&1",
    M.CLIENT_ENV, limit or 20, file, args or ""))
  os.remove(file)
  return out, code
end

-- busted runs only the last function a test gives to finally(). A test
-- with several things to undo makes a list, gives its run to finally once,
-- and adds to it: local undo = h.undo(); finally(undo.run);
-- undo.add(function() ... end). They run newest first, each protected.
function M.undo()
  local fns = {}
  return {
    add = function(fn) fns[#fns + 1] = fn end,
    run = function() for i = #fns, 1, -1 do pcall(fns[i]) end end,
  }
end

-- Run a Lua 5.4 snippet with the module paths set (for API misuse checks
-- that must not run inside the busted process). `env`: more variables for
-- it, "NAME=value ..." (e.g. "LHYPER_ROUTER_C=0").
function M.lua(src, limit, env)
  local file = M.tmpname(".lua")
  M.write_file(file, src)
  local out, code = M.run(string.format(
    "cd %s && LUA_PATH=%s LUA_CPATH=%s %stimeout -s KILL %d %s%s%s %s 2>&1",
    shell_quote(M.ROOT), shell_quote(M.LUA_PATH), shell_quote(M.LUA_CPATH), M.CLIENT_ENV,
    limit or 10, M.PRELOAD_ENV, env and "env " .. env .. " " or "", M.LUA, file))
  os.remove(file)
  return out, code
end

-- A temporary directory holding `files` (a path under it -> the file's
-- bytes; directories made as needed). Remove it with M.remove_tree.
function M.make_tree(files)
  local root = M.tmpname(".d")
  os.execute("mkdir -p " .. shell_quote(root))
  for rel, data in pairs(files) do
    local dir = rel:match("^(.*)/")
    if dir then os.execute("mkdir -p " .. shell_quote(root .. "/" .. dir)) end
    M.write_file(root .. "/" .. rel, data)
  end
  return root
end

function M.remove_tree(root) os.execute("rm -rf " .. shell_quote(root)) end

-- A file of `n` bytes of a repeating pattern, for uploads. Caller removes it.
function M.make_file(n)
  local path = M.tmpname(".bin")
  local f = assert(io.open(path, "wb"))
  local block = string.rep("0123456789abcdef", 4096) -- 64 KiB
  local left = n
  while left > 0 do
    local k = math.min(left, #block)
    f:write(block:sub(1, k))
    left = left - k
  end
  f:close()
  return path
end

-- True when lhyper.core has been built (used to skip with a clear message).
function M.module_built()
  local f = io.open(M.ROOT .. "/build/lhyper/core.so", "rb")
  if f then f:close() end
  return f ~= nil
end

return M
