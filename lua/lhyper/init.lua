--- lhyper: a hyper-style HTTP/1.1 server for Lua 5.4 on libuv.
-- The C core (lhyper.core) does the protocol; this file checks options and
-- runs each request's handler.
local core = require "lhyper.core"

local M = {
  _VERSION = "lhyper scm",
  sleep = core.sleep,
  spawn = core.spawn,
  timeout = core.timeout,
  defer = core.defer,
  channel = core.channel,
  condition = core.condition,
  now = core.now,
  run = core.run,
  stop = core.stop,
  error = core.error,
  on_signal = core.on_signal,
}

local type = type

--- lhyper.every(seconds, fn, ...) -> task: fn(...) in a task of its own
-- every `seconds`, the first time `seconds` from now. A run that has not
-- ended when the next is due makes that one skip (no overlap, no backlog).
-- The waits do not keep lhyper.run() going: once nothing else does, the
-- loop returns. The returned task is the timer: cancel it to stop; it is a
-- child of the running task, stopped when that one ends.
function M.every(seconds, fn, ...)
  if type(seconds) ~= "number" or seconds <= 0 or seconds ~= seconds then
    error("bad argument #1 to 'every' (positive number expected)", 2)
  end
  if type(fn) ~= "function" then error("bad argument #2 to 'every' (function expected)", 2) end
  local args = table.pack(...)
  local spawn, now, sleep_idle, unpack = core.spawn, core.now, core.sleep_idle, table.unpack
  return spawn(function()
    local due, run = now() + seconds, nil
    while true do
      sleep_idle(due - now())
      if not run or run.done then run = spawn(fn, unpack(args, 1, args.n)) end
      due = due + seconds
      local t = now()
      if due <= t then due = t + seconds end
    end
  end)
end

-- The core runs each handler in its own coroutine, answers with what it
-- returns and pumps a body iterator in the same coroutine. Methods written
-- in Lua join the C objects through core.methods.
local read_all = require("lhyper.body").read_all
local function too_large(req) req:_too_large() end

core.methods("req", {
  --- req:read_all(max_bytes) -> body string, or nil, err, kind
  read_all = function(req, max) return read_all(req, max, too_large) end,
  --- req:on_end(function(req, complete, status, bytes) ... end): runs once
  -- the response was written to its end or given up (csrc/lua/llayer.c)
  on_end = core.req_on_end,
})

local option_types = {
  host = "string", port = "number", handler = "function",
  keep_alive = "boolean", half_close = "boolean",
  header_read_timeout = "number|false", idle_timeout = "number|false",
  stream_idle_timeout = "number|false",
  max_buf_size = "number", max_headers = "number", max_target = "number",
  max_connections = "number|false", max_in_flight = "number|false",
  pipeline_flush = "boolean", title_case_headers = "boolean", date_header = "boolean",
  reuseport = "boolean", backlog = "number", on_error = "function|false",
  fd = "number", ready_path = "string", drain_delay = "number", drain_idle = "number",
  tls = "table",
}

local tls_types = {
  cert = "string", key = "string", ciphers = "string", ciphersuites = "string",
  min_version = "string", max_version = "string", alpn = "table", sni = "function",
  session_tickets = "boolean", ticket_rotation = "number", client_ca = "string",
}

local tls = require "lhyper.tls"

-- the tls option of a server (or server:reload_tls's argument)
local function check_tls(t, who, level)
  if type(t) ~= "table" then error(who .. ": tls options table expected", level) end
  tls.fields(tls_types, t, who, level)
  if not t.cert or not t.key then error(who .. ": tls options 'cert' and 'key' are required", level) end
  tls.versions(t, who, level)
  if t.min_version == "1.3" and t.max_version == "1.2" then
    error(who .. ": tls min_version is above max_version", level)
  end
  local r = t.ticket_rotation
  if r and (r < 1 or r ~= math.floor(r)) then
    error(who .. ": tls option 'ticket_rotation' must be a positive integer (seconds)", level)
  end
  if t.alpn then
    for i, name in ipairs(t.alpn) do
      if type(name) ~= "string" or #name == 0 or #name > 255 then
        error(("%s: tls alpn[%d] must be a protocol name of 1 to 255 bytes"):format(who, i), level)
      end
    end
  end
end

-- a server TLS context from checked options; keys_from: a context whose
-- ticket keys it shares (SNI certificates, reloads: tickets stay good)
local function server_ctx(t, keys_from)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  o.sni, o._keys_from = nil, keys_from
  return core.tls_ctx("server", o)
end

-- The user's sni(name) -> cert, key (nothing: the default certificate)
-- as the core calls it: name -> context. A context is made once per
-- cert/key pair and kept until the next reload_tls (at most 256).
local function sni_function(t, keys_from)
  local user = t.sni
  if not user then return nil end
  local cache, n = {}, 0
  return function(name)
    local cert, key = user(name)
    if cert == nil then return nil end
    if type(cert) ~= "string" or type(key) ~= "string" then
      error("tls.sni must return cert and key (strings), or nothing for the default certificate", 0)
    end
    local id = cert .. "\0" .. key
    local ctx = cache[id]
    if not ctx then
      local o = {}
      for k, v in pairs(t) do o[k] = v end
      o.cert, o.key = cert, key
      local err
      ctx, err = server_ctx(o, keys_from)
      if not ctx then error("tls.sni(" .. name .. "): " .. tostring(err), 0) end
      if n >= 256 then cache, n = {}, 0 end
      cache[id], n = ctx, n + 1
    end
    return ctx
  end
end

local check = require("lhyper.options").check

local function check_options(opts)
  check(option_types, opts, "lhyper.server")
  if type(opts.handler) ~= "function" then error("lhyper.server: option 'handler' (a function) is required", 3) end
  local port = opts.port
  if port ~= nil and (port ~= math.floor(port) or port < 0 or port > 65535) then
    error("lhyper.server: option 'port' must be an integer 0..65535", 3)
  end
  for _, k in ipairs { "max_buf_size", "max_headers", "max_target", "max_connections", "max_in_flight", "backlog" } do
    local v = opts[k]
    if type(v) == "number" and (v < 1 or v ~= math.floor(v)) then
      error(("lhyper.server: option '%s' must be a positive integer"):format(k), 3)
    end
  end
  for _, k in ipairs { "header_read_timeout", "idle_timeout", "stream_idle_timeout" } do
    local v = opts[k]
    if type(v) == "number" and v <= 0 then
      error(("lhyper.server: option '%s' must be positive (or false for none)"):format(k), 3)
    end
  end
  if opts.fd ~= nil and (opts.fd ~= math.floor(opts.fd) or opts.fd < 0) then
    error("lhyper.server: option 'fd' must be a descriptor number (an integer >= 0)", 3)
  end
  if opts.ready_path ~= nil and opts.ready_path:sub(1, 1) ~= "/" then
    error("lhyper.server: option 'ready_path' must be a path starting with '/'", 3)
  end
  if opts.drain_delay ~= nil and opts.drain_delay < 0 then
    error("lhyper.server: option 'drain_delay' must be >= 0", 3)
  end
  if opts.drain_idle ~= nil and opts.drain_idle <= 0 then
    error("lhyper.server: option 'drain_idle' must be positive", 3)
  end
  if type(opts.max_buf_size) == "number" and opts.max_buf_size < 8192 then
    error("lhyper.server: option 'max_buf_size' must be at least 8192", 3)
  end
  if opts.tls then check_tls(opts.tls, "lhyper.server", 4) end
end

local service = require "lhyper.service"

-- Servers in the order they were made (weak: a closed, forgotten one goes):
-- lhyper.workers shares their listeners with the workers.
local servers, nservers = setmetatable({}, { __mode = "v" }), 0

local READY_HEADERS = { ["content-type"] = "text/plain", ["cache-control"] = "no-store" }

-- ready_path: answered before the handler, 200 until server:drain, then 503
local function with_readiness(opts)
  local copy = {}
  for k, v in pairs(opts) do copy[k] = v end
  local inner, path, server = opts.handler, opts.ready_path, nil
  copy.handler = function(req)
    if req.path == path then
      if server.ready then return 200, READY_HEADERS, "ready\n" end
      return 503, READY_HEADERS, "draining\n"
    end
    return inner(req)
  end
  return copy, function(s) server = s end
end

local tls_of = setmetatable({}, { __mode = "k" }) -- server -> its current TLS context

--- lhyper.server(opts) -> server, or nil, err, kind
function M.server(opts)
  if type(opts) == "table" and opts.handler ~= nil and type(opts.handler) ~= "function" then
    -- a router or another callable service: its function
    local copy = {}
    for k, v in pairs(opts) do copy[k] = v end
    copy.handler = service.of(opts.handler, "lhyper.server: option 'handler'")
    opts = copy
  end
  check_options(opts)
  local ctx, sni
  if opts.tls then
    local err, kind
    ctx, err, kind = server_ctx(opts.tls)
    if not ctx then return nil, err, kind end
    sni = sni_function(opts.tls, ctx)
  end
  local set_server
  if opts.ready_path then opts, set_server = with_readiness(opts) end
  local server, err, kind = core.listen(opts, ctx, sni)
  if not server then return nil, err, kind end
  tls_of[server] = ctx
  if set_server then set_server(server) end
  nservers = nservers + 1
  servers[nservers] = server
  return server
end

-- server:drain(grace), server:on_drain(fn): the drain itself is the C
-- core's (_drain, and _retire for workers.lua); functions given to on_drain run
-- as tasks when it begins, so what the server cannot end gently by itself
-- (an upgraded connection: a WebSocket's 1001 Going Away) can be ended by
-- the program
local drain_hooks = setmetatable({}, { __mode = "k" })

local function run_drain_hooks(server)
  local hooks = drain_hooks[server]
  if not hooks or hooks.ran then return end
  hooks.ran = true
  -- detached: they belong to the server, not to whoever called drain
  for _, fn in ipairs(hooks) do core.spawn(fn, server):detach() end
end

core.methods("server", {
  drain = function(server, grace)
    if grace ~= nil and type(grace) ~= "number" then error("server:drain: grace must be a number", 2) end
    run_drain_hooks(server)
    server:_drain(grace)
  end,
  on_drain = function(server, fn)
    if type(fn) ~= "function" then error("server:on_drain: function expected", 2) end
    local hooks = drain_hooks[server]
    if not hooks then
      hooks = {}
      drain_hooks[server] = hooks
    end
    hooks[#hooks + 1] = fn
  end,
})

M._run_drain_hooks = run_drain_hooks

-- the servers still open, in the order they were made
function M._servers()
  local list = {}
  for i = 1, nservers do
    local s = servers[i]
    if s and not s.closed then list[#list + 1] = s end
  end
  return list
end

M.stack = service.stack
M.error_status = service.error_status
M.router = require("lhyper.router").new
M.layers = require "lhyper.layers"
M.static = require "lhyper.static"
M.log_writer = core.log_writer

core.methods("server", {
  --- server:reload_tls(tls) -> true, or nil, err, kind: new connections get
  -- these certificates; open ones keep theirs; session tickets stay good
  reload_tls = function(server, t)
    check_tls(t, "server:reload_tls", 3)
    local ctx, err, kind = server_ctx(t, tls_of[server])
    if not ctx then return nil, err, kind end
    local ok
    ok, err, kind = server:_set_tls(ctx, sni_function(t, ctx))
    if not ok then return nil, err, kind end
    tls_of[server] = ctx
    return true
  end,
})

local client = require "lhyper.client"
M.request, M.client = client.request, client.new

-- query, form, multipart, cookies, JSON: methods of req and res
require("lhyper.request").install(core.methods, M)

M.workers = require("lhyper.workers").new(M)
M.websocket = require "lhyper.websocket"

return M
