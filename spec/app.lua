-- The test application, written to the public API contract in DESIGN.md.
-- Usage: lua5.4 spec/app.lua '<lua table literal of extra server options>'
-- Prints "PORT <port> PID <pid> PGID <pgid>" on stdout once listening.

local lhyper = require "lhyper"

local opts = assert(load("return " .. (arg[1] or "{}"), "=options", "t", {}))()

local shared = { max_in_flight = 0, in_flight = 0, cancelled = 0, errors = {}, error_infos = {},
  records = {}, load = { heads = 0, answered = 0, after_close = 0 } }

-- record_errors = true (an app option, not a server one) installs an on_error
-- that keeps the kinds of server-side errors for the /errors route.
local record_errors = opts.record_errors
opts.record_errors = nil
local server -- set below; used by /shutdown

local function qs(query)
  local t = {}
  for k, v in (query or ""):gmatch("([^&=]+)=?([^&]*)") do
    t[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return t
end

local CHUNK = string.rep("x", 65536)

local routes = {}

routes["/hello"] = function()
  return 200, { ["content-type"] = "text/plain" }, "Hello, World!"
end

-- One header table for every response (as the README suggests for constant
-- headers); /shared/check lists what it holds, to show lhyper left it alone.
local SHARED = { ["content-type"] = "text/plain", ["x-shared"] = { "a", "b" } }
routes["/shared"] = function()
  return 200, SHARED, "shared"
end
routes["/shared/check"] = function()
  local keys = {}
  for k, v in pairs(SHARED) do
    keys[#keys + 1] = k .. "=" .. (type(v) == "table" and table.concat(v, ",") .. "#" .. #v or tostring(v))
  end
  table.sort(keys)
  return 200, { ["content-type"] = "text/plain" }, table.concat(keys, ";")
end

-- Request fields, one "key=value" per line; ?h=name adds get/index/all lookups.
routes["/info"] = function(req, q)
  local out = {
    "method=" .. req.method, "target=" .. req.target, "path=" .. req.path,
    "query=" .. tostring(req.query), "version=" .. req.version,
    "remote_addr=" .. tostring(req.remote_addr), "remote_port=" .. tostring(req.remote_port),
  }
  for name, value in req.headers:each() do out[#out + 1] = "header=" .. name .. ": " .. value end
  if q.h then
    out[#out + 1] = "get=" .. tostring((req.headers:get(q.h)))
    out[#out + 1] = "index=" .. tostring(req.headers[q.h])
    out[#out + 1] = "all=" .. table.concat(req.headers:get_all(q.h), "|")
  end
  local n = 0
  for chunk in req:body() do n = n + #chunk end
  out[#out + 1] = "body=" .. n
  if q.seq then out[#out + 1] = "seq=" .. q.seq end
  return 200, { ["content-type"] = "text/plain", ["x-seq"] = q.seq }, table.concat(out, "\n") .. "\n"
end

-- Echo the request body (pulled with the iterator), method in a header.
routes["/echo"] = function(req, q)
  local parts = {}
  for chunk in req:body() do parts[#parts + 1] = chunk end
  local h = { ["x-method"] = req.method, ["x-version"] = req.version }
  if q.seq then h["x-seq"] = q.seq end
  return 200, h, table.concat(parts)
end

-- Count body bytes; ?delay= sleep before reading, ?slow= seconds per MiB read
-- (slept in steps of at least 10 ms, whatever the chunk sizes).
routes["/sink"] = function(req, q)
  local delay, slow = tonumber(q.delay), tonumber(q.slow)
  if delay then lhyper.sleep(delay) end
  local n, chunks, owed = 0, 0, 0
  for chunk in req:body() do
    n, chunks = n + #chunk, chunks + 1
    if slow then
      owed = owed + #chunk / 1048576 * slow
      if owed >= 0.01 then lhyper.sleep(owed); owed = 0 end
    end
  end
  return 200, { ["x-chunks"] = tostring(chunks) }, tostring(n)
end

-- ?n=BYTES streamed from an iterator in 64 KiB chunks; ?empty=1 adds empty
-- chunks in between; ?delay= sleeps between chunks; ?fail=BYTES raises there.
routes["/stream"] = function(req, q)
  local left = tonumber(q.n) or 0
  local sent, empty, delay, fail = 0, q.empty == "1", tonumber(q.delay), tonumber(q.fail)
  local give_empty = false
  local h = { ["content-type"] = "application/octet-stream" }
  return 200, h, function()
    if fail and sent >= fail then error("iterator failed on purpose") end
    if empty then
      give_empty = not give_empty
      if give_empty then return "" end
    end
    if left <= 0 then return nil end
    if delay then lhyper.sleep(delay) end
    local k = math.min(left, #CHUNK)
    left, sent = left - k, sent + k
    return k == #CHUNK and CHUNK or CHUNK:sub(1, k)
  end
end

-- Content-length responses: ?n= actual bytes, ?declared= announced length,
-- ?iter=1 sends the bytes through an iterator (head goes out first).
routes["/length"] = function(req, q)
  local n = tonumber(q.n) or 0
  local declared = q.declared or tostring(n)
  local body = string.rep("L", n)
  if q.iter == "1" then
    local pieces = { body:sub(1, n // 2), body:sub(n // 2 + 1) }
    local i = 0
    return 200, { ["content-length"] = declared }, function()
      i = i + 1
      return pieces[i]
    end
  end
  return 200, { ["content-length"] = declared }, body
end

-- Array-of-pairs headers keep order and repeat names; ?map=1 uses a map with a list.
routes["/headers"] = function(req, q)
  if q.map == "1" then
    return 200, { ["x-multi"] = { "one", "two" }, ["x-single"] = "s" }, "map"
  end
  return 200, {
    { "x-first", "1" }, { "set-cookie", "a=1" }, { "x-middle", "2" },
    { "set-cookie", "b=2" }, { "x-last", "3" },
  }, "pairs"
end

-- The same shapes of response again and again with parts changed, for the
-- server's kept head: ?s= status, ?n= body bytes, ?v= an x-v value, ?extra=1,
-- ?long=1 (a value too long to be an interned string), ?ct= content-type,
-- ?num=N (an x-num field with the number N as its value), ?many=1 (eight x-mK fields
-- more: nine in all).
routes["/vary"] = function(req, q)
  local h = { ["x-v"] = q.v or "" }
  if q.extra == "1" then h["x-extra"] = "e" end
  if q.num then h["x-num"] = tonumber(q.num) end
  if q.many == "1" then for k = 1, 8 do h["x-m" .. k] = "m" .. k end end
  if q.long == "1" then h["x-long"] = string.rep("L", 50) .. (q.v or "") end
  if q.ct then h["content-type"] = q.ct end
  return tonumber(q.s) or 200, h, string.rep("b", tonumber(q.n) or 0)
end

-- Header tables with metamethods, which lhyper reads raw (never calling them).
routes["/metaheaders"] = function(req, q)
  local boom = function() error("a header metamethod ran") end
  if q.k == "index" then
    return 200, { setmetatable({}, { __index = boom }) }, "x"
  elseif q.k == "len" then
    return 200, { { "x-a", setmetatable({}, { __len = boom, __index = boom }) } }, "x"
  end
  return 200, setmetatable({ ["x-a"] = "1" }, { __index = boom, __pairs = boom }), "map"
end

routes["/error"] = function() error("handler failed on purpose") end

routes["/badheader"] = function(req, q)
  if q.name == "1" then return 200, { ["x-bad\r\nx-injected"] = "yes" }, "nope" end
  if q.nul == "1" then return 200, { ["x-bad"] = "a\0b" }, "nope" end
  return 200, { ["x-bad"] = "a\r\nx-injected: yes" }, "nope"
end

-- ?s= a status the handler returns as given (string when ?str=1).
routes["/badstatus"] = function(req, q)
  if q.str == "1" then return "abc", nil, "nope" end
  return tonumber(q.s), nil, "nope"
end

-- Response trailers; ?bad=1 adds a field not allowed in trailers.
routes["/trailers"] = function(req, q)
  local parts, i = { "part one,", " part two" }, 0
  return 200, { ["trailer"] = "x-checksum" }, function()
    i = i + 1
    if parts[i] then return parts[i] end
    local t = { ["x-checksum"] = "abc123" }
    if q.bad == "1" then t["content-length"] = "5" end
    return nil, t
  end
end

-- Request trailers, after the body was read.
routes["/reqtrailers"] = function(req)
  local body = assert(req:read_all(1024 * 1024))
  local t = req:trailers()
  local v = t and t:get("x-trailer")
  return 200, { ["x-trailer-seen"] = tostring(v) }, body
end

-- Reads the body under pcall and reports the error kind (for mid-message EOF).
routes["/bodyerr"] = function(req)
  local n = 0
  local ok, err = pcall(function()
    for chunk in req:body() do n = n + #chunk end
  end)
  local kind = ok and "none" or (type(err) == "table" or type(err) == "userdata") and tostring(err.kind) or "string"
  return 200, { ["x-kind"] = kind, ["x-read"] = tostring(n) }, ok and "ok" or tostring(err)
end

-- Ignores the request body.
routes["/noread"] = function()
  return 200, { ["content-type"] = "text/plain" }, "not read"
end

routes["/sleep"] = function(req, q)
  local t0 = lhyper.now()
  lhyper.sleep(tonumber(q.s) or 0.1)
  return 200, { ["x-elapsed"] = string.format("%.3f", lhyper.now() - t0) }, "slept"
end

-- A spawned task passes its arguments back through shared state.
routes["/spawn"] = function(req, q)
  local key = q.key or "k"
  shared[key] = nil
  lhyper.spawn(function(a, b)
    lhyper.sleep(0.01)
    shared[key] = a .. "+" .. b
  end, "left", "right")
  for _ = 1, 200 do
    if shared[key] then break end
    lhyper.sleep(0.01)
  end
  return 200, nil, tostring(shared[key])
end

routes["/now"] = function()
  local t0 = lhyper.now()
  lhyper.sleep(0.05)
  return 200, nil, string.format("%.3f", lhyper.now() - t0)
end

-- read_all(max); ?mode=nothing returns nothing on failure (server answers 413).
routes["/readall"] = function(req, q)
  local body, err, kind = req:read_all(tonumber(q.max) or 1024)
  if body then return 200, nil, body end
  if q.mode == "nothing" then return end
  return 400, {
    ["x-kind"] = tostring(kind), ["x-err-kind"] = tostring(err.kind),
    ["x-err-message"] = tostring(err.message),
    ["x-is-timeout"] = tostring(err:is_timeout()), ["x-is-closed"] = tostring(err:is_closed()),
  }, tostring(err)
end

-- The handler asks for the connection to close after its response.
routes["/handlerclose"] = function()
  return 200, { ["connection"] = "close" }, "closing this connection"
end

-- Kinds of the server-side errors seen so far (with record_errors = true).
routes["/errors"] = function()
  return 200, nil, table.concat(shared.errors, ",")
end

routes["/empty"] = function() return 200, nil, nil end
routes["/emptystr"] = function() return 200, { ["x-empty"] = "1" }, "" end

-- Upgrade to a raw echo stream.
routes["/upgrade"] = function(req)
  local stream = req:upgrade({ ["upgrade"] = "echo", ["connection"] = "upgrade" })
  while true do
    local data = stream:read()
    if not data then break end
    stream:write(data)
  end
  stream:close()
end

-- Upgrade and keep the stream without reading it: the connection then keeps
-- nothing of libuv's busy (no read, no write, no deadline).
local parked = {}
routes["/upgrade-park"] = function(req)
  parked[#parked + 1] = req:upgrade({ ["upgrade"] = "echo", ["connection"] = "upgrade" })
end

-- Cancellation: a <close> variable records that the coroutine was closed.
routes["/cancel"] = function()
  local guard <close> = setmetatable({}, { __close = function()
    shared.cancelled = shared.cancelled + 1
  end })
  lhyper.sleep(5)
  return 200, nil, "finished"
end
routes["/cancelled"] = function()
  return 200, nil, tostring(shared.cancelled)
end

-- In-flight accounting for max_in_flight.
routes["/inflight"] = function(req, q)
  shared.in_flight = shared.in_flight + 1
  if shared.in_flight > shared.max_in_flight then shared.max_in_flight = shared.in_flight end
  lhyper.sleep(tonumber(q.s) or 0.2)
  shared.in_flight = shared.in_flight - 1
  return 200, nil, "done"
end
routes["/inflight/max"] = function()
  local m = shared.max_in_flight
  shared.max_in_flight = 0
  return 200, nil, tostring(m)
end

-- Graceful shutdown, triggered by a request: ?grace=seconds.
routes["/shutdown"] = function(req, q)
  local grace = tonumber(q.grace) or 1
  lhyper.spawn(function()
    shared.closing = true
    server:close(grace)
  end)
  return 200, nil, "closing"
end

-- Load under graceful close (graceful_load_spec): counts request heads that
-- reached a handler and responses handed back to the server, and of those
-- the ones answered after /shutdown started the close. ?s= seconds to sleep.
routes["/load"] = function(req, q)
  local load = shared.load
  load.heads = load.heads + 1
  lhyper.sleep(tonumber(q.s) or 0.01)
  load.answered = load.answered + 1
  if shared.closing then load.after_close = load.after_close + 1 end
  return 200, { ["content-type"] = "text/plain" }, "loaded"
end
routes["/load/count"] = function()
  local load = shared.load
  return 200, nil, string.format("heads=%d\nanswered=%d\nafter_close=%d\n",
    load.heads, load.answered, load.after_close)
end

-- Every value read_all returns (error_object_spec): n= count, then the
-- type of each, err.kind / err.message / tostring(err) when an error came back.
routes["/readall/pack"] = function(req, q)
  local r = table.pack(req:read_all(tonumber(q.max) or 1024))
  local out = { "n=" .. r.n }
  for i = 1, r.n do out[#out + 1] = "type" .. i .. "=" .. type(r[i]) end
  local err = r[2]
  if err ~= nil then
    out[#out + 1] = "kind=" .. tostring(err.kind)
    out[#out + 1] = "message=" .. tostring(err.message)
    out[#out + 1] = "tostring=" .. tostring(err)
    out[#out + 1] = "third=" .. tostring(r[3])
    out[#out + 1] = "is_user=" .. tostring(err:is_user())
  end
  return 200, nil, table.concat(out, "\n") .. "\n"
end

-- Server-side errors with their on_error info, one "kind|method|target|is_user|text" a line.
routes["/errors/info"] = function()
  return 200, nil, table.concat(shared.error_infos, "\n")
end

-- Dead connections (dead_conn_spec). ?key= names a record read back with
-- /record?key=. A <close> guard notes when the handler's coroutine ends.
--   mode=body:   sleep ?delay=, then pull the body under pcall and note the error
--   mode=spawn:  a task keeps req and, ?after= seconds later, pulls its body,
--                read_all()s it and tries req:upgrade; the handler sleeps 5 s
--   mode=stream: an endless response body; each iterator call holds a guard
--                across a short sleep (opened/closed counts)
-- Records how a pcall'd use of req ended: how=raised|returned_error|value,
-- and for an error its type, kind, is_closed() and text.
local function note(rec, prefix, ok, a, b, c)
  local e
  if not ok then rec[prefix .. "how"], e = "raised", a
  elseif a == nil and b ~= nil then rec[prefix .. "how"], e = "returned_error", b
  else rec[prefix .. "how"] = "value" end
  if c ~= nil then rec[prefix .. "third"] = tostring(c) end
  if e == nil then return end
  rec[prefix .. "type"] = type(e)
  if type(e) == "table" then
    rec[prefix .. "kind"] = tostring(e.kind)
    rec[prefix .. "is_closed"] = tostring(type(e.is_closed) == "function" and e:is_closed())
  end
  rec[prefix .. "text"] = tostring(e):gsub("\n", " ")
end

routes["/deadconn"] = function(req, q)
  local rec = { handler_done = "false", guard_closed = "false" }
  shared.records[q.key or "k"] = rec
  local guard <close> = setmetatable({}, { __close = function() rec.guard_closed = "true" end })
  if q.mode == "body" then
    lhyper.sleep(tonumber(q.delay) or 0)
    local n = 0
    local ok, err = pcall(function() for chunk in req:body() do n = n + #chunk end end)
    rec.read = tostring(n)
    note(rec, "body_", ok, err)
    rec.handler_done = "true"
    return 200, nil, "read " .. n
  elseif q.mode == "spawn" then
    lhyper.spawn(function()
      lhyper.sleep(tonumber(q.after) or 0.3)
      note(rec, "body_", pcall(function() for _ in req:body() do end end))
      note(rec, "readall_", pcall(req.read_all, req, 1024))
      note(rec, "upgrade_", pcall(req.upgrade, req, { upgrade = "echo", connection = "upgrade" }))
      rec.task_done = "true"
    end)
    lhyper.sleep(5)
    rec.handler_done = "true"
    return 200, nil, "slept"
  elseif q.mode == "stream" then
    rec.calls, rec.opened, rec.closed = 0, 0, 0
    local chunk = string.rep("s", 65536)
    return 200, nil, function()
      rec.calls = rec.calls + 1
      rec.opened = rec.opened + 1
      local g <close> = setmetatable({}, { __close = function() rec.closed = rec.closed + 1 end })
      lhyper.sleep(0.005)
      return chunk
    end
  end
  return 400, nil, "mode?"
end
routes["/record"] = function(req, q)
  local rec = shared.records[q.key or "k"]
  if not rec then return 404, nil, "no record" end
  local out = {}
  for k, v in pairs(rec) do out[#out + 1] = k .. "=" .. tostring(v) end
  table.sort(out)
  return 200, nil, table.concat(out, "\n") .. "\n"
end

-- /keep keeps its req object; /kept reads the kept ones after their
-- requests are over (pipelined requests share a coroutine, not a req).
local kept = {}
routes["/keep"] = function(req, q)
  kept[#kept + 1] = req
  return 200, { ["x-kept"] = tostring(#kept) }, "kept " .. q.n
end
routes["/kept"] = function()
  local out = {}
  for i, r in ipairs(kept) do
    out[i] = table.concat({ r.method, r.target, tostring(r.headers:get("x-k")) }, " ")
  end
  kept = {}
  return 200, nil, table.concat(out, "\n")
end

-- Used by the spec harness to stop the server cleanly, so that lua_close and
-- exit run (and sanitizers can report leaks) before it falls back to signals.
routes["/__quit"] = function()
  lhyper.stop()
  return 200, { ["connection"] = "close" }, "bye"
end

local function handler(req)
  local q = qs(req.query)
  local path = req.path or ""
  local route = routes[path]
  if route then return route(req, q) end
  local code = path:match("^/status/(%d+)$")
  if code then
    return tonumber(code), { ["x-status"] = code }, "status " .. code .. " body"
  end
  return 404, { ["content-type"] = "text/plain" }, "not found"
end

-- TLS: sni_certs = { [name] = { cert, key } } (an app option) becomes the
-- tls.sni function; /tls tells the request's TLS; /__reload_tls?cert=&key=
-- reloads the certificate with the server's other tls options.
local sni_certs = opts.sni_certs
opts.sni_certs = nil
if sni_certs then
  opts.tls.sni = function(name)
    local c = sni_certs[name]
    if name == "raise.test" then error("no certificate for raise.test") end
    if c then return c[1], c[2] end
  end
end
routes["/tls"] = function(req)
  local t = req.tls
  if not t then return 200, nil, "plain\n" end
  return 200, nil, string.format("version=%s\ncipher=%s\nalpn=%s\nsni=%s\nresumed=%s\n",
    t.version, t.cipher, tostring(t.alpn), tostring(t.sni), tostring(t.resumed))
end
-- /redirect?to=URL[&status=N]: a redirect (302 unless said)
routes["/redirect"] = function(req, q)
  return tonumber(q.status) or 302, { location = q.to }, ""
end
routes["/__reload_tls"] = function(req, q)
  local t = {}
  for k, v in pairs(opts.tls) do t[k] = v end
  t.cert, t.key = q.cert, q.key
  local ok, err, kind = server:reload_tls(t)
  if not ok then return 500, nil, tostring(kind) .. ": " .. tostring(err) end
  return 200, nil, "reloaded"
end

local config = { host = "127.0.0.1", port = 0, handler = handler }
if record_errors then
  config.on_error = function(err, info)
    shared.errors[#shared.errors + 1] = tostring(err.kind)
    shared.error_infos[#shared.error_infos + 1] = table.concat({
      tostring(err.kind), tostring(info and info.method), tostring(info and info.target),
      tostring(type(err.is_user) == "function" and err:is_user()), tostring(err):gsub("[\r\n|]", " "),
    }, "|")
  end
end
for k, v in pairs(opts) do config[k] = v end

server = assert(lhyper.server(config))
-- the helper's /__quit is plain HTTP, which a TLS port refuses: TERM stops
-- a TLS server the same way (lhyper.stop), so sanitizers and valgrind see
-- a normal exit
if config.tls then lhyper.on_signal("SIGTERM", function() lhyper.stop() end) end

local stat = assert(io.open("/proc/self/stat")):read("l")
local pid, pgid = stat:match("^(%d+) %b() %S+ %d+ (%d+)")
io.stdout:write(string.format("PORT %d PID %s PGID %s\n", server.port, pid, pgid))
io.stdout:flush()

lhyper.run()
io.stderr:write("app: lhyper.run() returned\n")
local load = shared.load
if load.heads > 0 then
  io.stderr:write(string.format("app: load heads=%d answered=%d after_close=%d\n",
    load.heads, load.answered, load.after_close))
end
