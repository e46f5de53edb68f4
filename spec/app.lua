-- The test application, written to the public API contract in DESIGN.md.
-- Usage: lua5.4 spec/app.lua '<lua table literal of extra server options>'
-- Prints "PORT <port> PID <pid> PGID <pgid>" on stdout once listening.

local lhyper = require "lhyper"
local support = require "app_support"

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

-- /vary behind the request_id layer, whose field (x-request-id) follows the
-- handler's: ?cl=1 the handler's own content-length, ?own=1 its own
-- x-request-id ("own"), which the layer leaves alone.
local vary_id = lhyper.stack { lhyper.layers.request_id(), function(req)
  local q = qs(req.query)
  local s, hd, body = routes["/vary"](req, q)
  if q.cl == "1" then hd["content-length"] = tostring(#body) end
  if q.own == "1" then hd["x-request-id"] = "own" end
  return s, hd, body
end }
routes["/vary_id"] = function(req) return vary_id(req) end

-- The bench's handler shapes (bench/hello.lua, VARIANT) for the fast path
-- spec, which compares their bytes with those of a server whose shortcuts
-- are off: ?v= the shape, ?n= body bytes, ?s= status, ?cl= a content-length
-- of the handler's other than the body's length (a string; a number for
-- cl_num, "f" there for the length as a float), ?x= x-count's value.
local COOKIE = "sid=31d4d96e407aad42; Path=/; Secure; HttpOnly"
local fast = {
  hello = function() return { ["content-type"] = "text/plain" } end,
  cl = function(req, q, body) return { ["content-type"] = "text/plain", ["content-length"] = q.cl or tostring(#body) } end,
  CL = function(req, q, body) return { ["Content-Length"] = q.cl or tostring(#body), ["content-type"] = "text/plain" } end,
  cl_num = function(req, q, body)
    local n = q.cl == "f" and #body + 0.0 or math.tointeger(tonumber(q.cl)) or #body
    return { ["content-type"] = "text/plain", ["content-length"] = n }
  end,
  cl_twice = function(req, q, body)
    return { ["content-length"] = tostring(#body), ["Content-Length"] = q.cl or tostring(#body) }
  end,
  path = function(req) return { ["content-type"] = "text/plain", ["x-path"] = req.path } end,
  query = function(req) return { ["content-type"] = "text/plain", ["x-query"] = req.query or "none" } end,
  header = function(req) return { ["content-type"] = "text/plain", ["x-host"] = req.headers["host"] } end,
  headers3 = function(req)
    local h = req.headers
    return { ["content-type"] = "text/plain", ["x-host"] = h["host"], ["x-ua"] = h["user-agent"] or "none",
      ["x-accept"] = h["Accept"] or "none" }
  end,
  cookie = function() return { ["content-type"] = "text/plain", ["set-cookie"] = COOKIE } end,
  number = function(req, q)
    return { ["content-type"] = "text/plain", ["x-count"] = math.tointeger(tonumber(q.x)) or tonumber(q.x) or 42 }
  end,
  table = function()
    local h = {}
    h["content-type"] = "text/plain"
    return h
  end,
  table3 = function()
    local h = {}
    h["content-type"] = "text/plain"
    h["cache-control"] = "no-store"
    h["x-content-type-options"] = "nosniff"
    return h
  end,
}
routes["/fast"] = function(req, q)
  local body = string.rep("h", tonumber(q.n) or 13)
  return tonumber(q.s) or 200, fast[q.v](req, q, body), body
end

-- req's and headers' __index called by hand on what they are not: each must
-- raise, naming the type it wanted
routes["/wrongself"] = function(req)
  local ridx, hidx = getmetatable(req).__index, getmetatable(req.headers).__index
  local out = {}
  for _, c in ipairs({ { ridx, req.headers }, { hidx, req }, { ridx, {} }, { hidx, io.stdout }, { ridx, 1 } }) do
    local ok, err = pcall(c[1], c[2], "path")
    out[#out + 1] = tostring(ok) .. ":" .. (tostring(err):match("lhyper%.%a+") or "?")
  end
  return 200, nil, table.concat(out, " ")
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

-- An outbound exchange whose failure the handler raises (upstream_error_spec):
-- ?up= the upstream's port, ?path= the (percent-encoded) target there,
-- ?timeout= the request's; mode=stream passes the upstream body through as
-- the response's iterator, otherwise it is read whole with read_all.
routes["/proxy"] = function(req, q)
  local res = assert(lhyper.request { url = "http://127.0.0.1:" .. q.up .. (q.path or "/hello"),
    timeout = tonumber(q.timeout) })
  if q.mode == "stream" then return 200, nil, res:body() end
  return 200, nil, assert(res:read_all())
end

-- Errors of kind closed and canceled that are not about the client: a
-- closed channel, a child task cancelled before its join.
routes["/raise/channel"] = function()
  local ch = lhyper.channel(1)
  ch:close()
  assert(ch:send("x"))
end
routes["/raise/join"] = function()
  local t = lhyper.spawn(function() lhyper.sleep(10) end)
  t:cancel()
  assert(t:join())
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

-- read_all(max); ?mode=nothing returns nothing on failure (server answers 413),
-- ?mode=assert raises the error object.
routes["/readall"] = function(req, q)
  if q.mode == "assert" then return 200, nil, assert(req:read_all(tonumber(q.max) or 1024)) end
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
-- nothing of libuv's busy (no read, no write, no deadline). The handler
-- waits on a condition nobody signals (its stream would close with it),
-- which keeps nothing busy either.
local parked = {}
routes["/upgrade-park"] = function(req)
  parked[#parked + 1] = req:upgrade({ ["upgrade"] = "echo", ["connection"] = "upgrade" })
  lhyper.condition():wait()
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
  -- detached: a child of the handler would be cancelled when it returns
  lhyper.spawn(function()
    shared.closing = true
    server:close(grace)
  end):detach()
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
    -- detached, so that it outlives the handler's cancellation
    lhyper.spawn(function()
      lhyper.sleep(tonumber(q.after) or 0.3)
      note(rec, "body_", pcall(function() for _ in req:body() do end end))
      note(rec, "readall_", pcall(req.read_all, req, 1024))
      note(rec, "upgrade_", pcall(req.upgrade, req, { upgrade = "echo", connection = "upgrade" }))
      rec.task_done = "true"
    end):detach()
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

-- Structured concurrency (structured_spec): what a handler opens ends with
-- it. Records are read back with /record?key=.
local function guard(rec, name)
  rec[name] = "open"
  return setmetatable({}, { __close = function()
    rec[name] = "closed"
    rec.order = (rec.order or "") .. name .. ";"
  end })
end
routes["/tree/child"] = function(req, q)
  -- a child task and the handler both wait; the client leaves
  local rec = {}
  shared.records[q.key or "k"] = rec
  local outer <close> = guard(rec, "handler")
  local child = lhyper.spawn(function()
    local g <close> = guard(rec, "child")
    lhyper.sleep(30)
  end)
  rec.child_task = child
  lhyper.sleep(30)
  return 200, nil, "never"
end
routes["/tree/orphan"] = function(req, q)
  -- the handler returns at once; its child must not outlive it
  local rec = {}
  shared.records[q.key or "k"] = rec
  lhyper.spawn(function()
    local g <close> = guard(rec, "child")
    rec.child_ran = "true"
    lhyper.sleep(30)
  end)
  return 200, nil, "returned"
end
routes["/tree/res"] = function(req, q)
  -- an outbound request whose body the handler does not read to its end;
  -- mode=task: a child task makes it and the handler returns;
  -- mode=close: the handler closes it with a <close> variable;
  -- mode=join: a child returns the res, the handler reads it
  local rec = {}
  shared.records[q.key or "k"] = rec
  local url = "http://127.0.0.1:" .. q.up .. "/stream?n=" .. (q.n or 100000000)
  if q.mode == "task" then
    lhyper.spawn(function()
      local res = assert(lhyper.request { url = url })
      rec.local_port = res.local_port
      res:body()()
      lhyper.sleep(30)
    end)
    lhyper.sleep(0.2)
    return 200, nil, "returned"
  elseif q.mode == "join" then
    local res = assert(lhyper.spawn(function() return assert(lhyper.request { url = url }) end):join())
    rec.local_port = res.local_port
    return 200, nil, tostring(#assert(res:read_all()))
  end
  if q.mode == "close" then
    do
      local res <close> = assert(lhyper.request { url = url })
      rec.local_port = res.local_port
      res:body()()
      res:close() -- and <close> again at the end of the block: idempotent
    end
    lhyper.sleep(0.3)
    return 200, nil, "closed early"
  end
  -- the handler keeps it in a local (alive until collected) and returns
  local res = assert(lhyper.request { url = url })
  rec.local_port = res.local_port
  res:body()()
  shared.kept_res = res
  return 200, nil, "partial"
end
routes["/tree/stream-return"] = function(req)
  -- the handler upgrades and returns: the stream ends with it
  local stream = req:upgrade({ upgrade = "echo", connection = "upgrade" })
  stream:write("bye")
end
routes["/tree/stream-close"] = function(req, q)
  -- a child waits in stream:read(); the handler closes the stream
  local rec = {}
  shared.records[q.key or "k"] = rec
  local stream = req:upgrade({ upgrade = "echo", connection = "upgrade" })
  local reader = lhyper.spawn(function()
    local g <close> = guard(rec, "reader")
    local data, err, kind = stream:read()
    rec.read = tostring(data) .. "|" .. tostring(kind) .. "|" .. tostring(err and err:is_closed())
  end)
  lhyper.sleep(0.1)
  stream:close()
  reader:join()
  rec.joined = "true"
end
routes["/tree/stream-timeout"] = function(req)
  -- stream:read(timeout): a read that times out leaves the stream usable
  local stream = req:upgrade({ upgrade = "echo", connection = "upgrade" })
  local data, err, kind = stream:read(0.1)
  stream:write("first:" .. tostring(data) .. "|" .. tostring(kind) .. "\n")
  data = stream:read(5)
  stream:write("second:" .. tostring(data) .. "\n")
  stream:close()
end
routes["/tree/stream-idle"] = function(req, q)
  -- with stream_idle_timeout: a read waiting when the stream goes idle
  local rec = {}
  shared.records[q.key or "k"] = rec
  local stream = req:upgrade({ upgrade = "echo", connection = "upgrade" })
  while true do
    local data, err, kind = stream:read()
    if not data then
      rec.ended = tostring(kind)
      break
    end
    stream:write(data)
  end
end
routes["/tree/duplex"] = function(req)
  -- a child reads the stream while the handler writes to it (backpressure)
  local stream = req:upgrade()
  local n = 0
  local reader = lhyper.spawn(function()
    while true do
      local data = stream:read()
      if not data then break end
      n = n + #data
    end
  end)
  local block = string.rep("w", 65536)
  for _ = 1, 64 do assert(stream:write(block)) end
  reader:join(10)
  stream:write("got:" .. n)
end
routes["/tree/timeout-body"] = function(req)
  -- the request body read from a child task (lhyper.timeout)
  local body = lhyper.timeout(5, function() return assert(req:read_all()) end)
  return 200, nil, body
end
routes["/tree/server-wait"] = function(req)
  local other = assert(lhyper.server { port = 0, handler = function() return 200 end })
  local r1, _, k1 = other:wait(0.01)
  lhyper.spawn(function() lhyper.sleep(0.05) other:close(1) end)
  local r2 = other:wait(5)
  local closed_by
  do
    local s3 <close> = assert(lhyper.server { port = 0, handler = function() return 200 end })
    closed_by = s3
  end
  local r3 = closed_by:wait(5)
  return 200, nil, table.concat({ tostring(r1), tostring(k1), tostring(r2), tostring(other.closed),
    tostring(r3) }, ",")
end
routes["/tree/task-status"] = function(req, q)
  local rec = shared.records[q.key or "k"]
  return 200, nil, rec and rec.child_task and rec.child_task.status or "none"
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

-- WebSocket echo: every message sent back as it came (spec/wsconf.py, the
-- conformance client, and the ws specs). ?compress=0 turns permessage-deflate
-- off; ?max= sets max_message.
routes["/ws/echo"] = function(req, q)
  local ws = lhyper.websocket.accept(req, {
    compress = q.compress ~= "0", max_message = tonumber(q.max) or 20 * 1024 * 1024,
  })
  if not ws then return end
  for msg, kind in ws:messages() do
    if not ws:send(msg, kind) then break end
  end
end

-- The same echo from a detached ws's callback (ws:detach)
routes["/ws/detached"] = function(req, q)
  local ws = lhyper.websocket.accept(req, {
    compress = q.compress ~= "0", max_message = tonumber(q.max) or 20 * 1024 * 1024,
  })
  if not ws then return end
  ws:detach(function(ws, msg, kind) ws:send(msg, kind) end)
end

-- The Lua state's live bytes after a full collection (the idle WebSocket
-- memory spec in spec/websocket_spec.lua)
routes["/lua_mem"] = function()
  collectgarbage()
  collectgarbage()
  return 200, nil, string.format("%.0f", collectgarbage("count") * 1024)
end

-- ws:messages() called twice: "same" when both gave the one iterator and
-- the ws as its state; then echoes through that iterator
routes["/ws/iter"] = function(req)
  local ws = lhyper.websocket.accept(req)
  if not ws then return end
  local f1, s1 = ws:messages()
  local f2, s2 = ws:messages()
  ws:send((rawequal(f1, f2) and rawequal(s1, ws) and rawequal(s2, ws)) and "same" or "different")
  for msg, kind in f1, s1 do ws:send(msg, kind) end
end

-- WebSocket behaviours (spec/websocket_spec.lua). What a handler saw is kept
-- under ?id= and read back with GET /ws/result?id=.
shared.ws = {}
local function ws_note(id, k, v)
  if not id then return end
  local rec = shared.ws[id] or {}
  shared.ws[id] = rec
  rec[k] = tostring(v)
end

local function ws_opts(q)
  local o = { compress = q.compress == "1" }
  if q.protocols then
    o.protocols = {}
    for p in q.protocols:gmatch("[^,]+") do o.protocols[#o.protocols + 1] = p end
  end
  if q.origin then o.origin = { q.origin } end
  if q.max then o.max_message = tonumber(q.max) end
  if q.max_frame then o.max_frame = tonumber(q.max_frame) end
  if q.close_timeout then o.close_timeout = tonumber(q.close_timeout) end
  if q.ping then o.ping_interval, o.ping_timeout = tonumber(q.ping), tonumber(q.ping) end
  return o
end

routes["/ws/result"] = function(_, q)
  local rec = shared.ws[q.id] or {}
  local out = {}
  for k, v in pairs(rec) do out[#out + 1] = k .. "=" .. v end
  table.sort(out)
  return 200, { ["content-type"] = "text/plain" }, table.concat(out, "\n")
end

-- echo; records how it ended: the close code and reason, receive's error
routes["/ws/record"] = function(req, q)
  local ws, err = lhyper.websocket.accept(req, ws_opts(q))
  if not ws then ws_note(q.id, "refused", err.status) return end
  ws_note(q.id, "protocol", ws.protocol)
  ws_note(q.id, "extensions", ws.extensions)
  while true do
    local msg, kind_or_err, kind = ws:receive()
    if not msg then
      ws_note(q.id, "err_kind", kind)
      break
    end
    ws:send(msg, kind_or_err)
  end
  ws_note(q.id, "code", ws.close_code)
  ws_note(q.id, "reason", ws.close_reason)
  ws_note(q.id, "state", ws.state)
end

-- a WebSocket echo for WebSocket requests, a page for the rest
routes["/ws/maybe"] = function(req)
  if not lhyper.websocket.is_request(req) then
    return 200, { ["content-type"] = "text/plain" }, "plain page"
  end
  local ws = lhyper.websocket.accept(req)
  if not ws then return end
  for msg, kind in ws:messages() do ws:send(msg, kind) end
end

-- after the first message: ws:close(?code, ?reason); records its result
routes["/ws/close"] = function(req, q)
  local ws = lhyper.websocket.accept(req, ws_opts(q))
  if not ws then return end
  ws:receive()
  local t0 = lhyper.now()
  local ok, err = ws:close(tonumber(q.code), q.reason)
  ws_note(q.id, "close", ok)
  ws_note(q.id, "close_err", err and err.kind)
  ws_note(q.id, "waited", lhyper.now() - t0 >= (tonumber(q.close_timeout) or 10) * 0.8)
  ws_note(q.id, "code", ws.close_code)
  ws_note(q.id, "state", ws.state)
end

-- after the first message the handler ends (?how=return|raise)
routes["/ws/end"] = function(req, q)
  local ws = lhyper.websocket.accept(req, ws_opts(q))
  if not ws then return end
  ws:receive()
  if q.how == "raise" then error("handler gave up") end
end

-- sleeps ?delay seconds before reading, then counts messages until close
routes["/ws/lazy"] = function(req, q)
  local ws = lhyper.websocket.accept(req, ws_opts(q))
  if not ws then return end
  ws_note(q.id, "accepted", true)
  lhyper.sleep(tonumber(q.delay) or 1)
  local n, bytes = 0, 0
  for msg in ws:messages() do
    n, bytes = n + 1, bytes + #msg
    ws_note(q.id, "count", n)
    ws_note(q.id, "bytes", bytes)
    if msg == "done" then ws:send(n .. " " .. bytes) end
  end
end

-- sends ?n messages of ?size bytes, noting how many went out so far
routes["/ws/push"] = function(req, q)
  local ws = lhyper.websocket.accept(req, ws_opts(q))
  if not ws then return end
  local msg = string.rep("p", tonumber(q.size) or 1048576)
  for i = 1, tonumber(q.n) or 32 do
    local ok = ws:send(msg, "binary")
    if not ok then break end
    ws_note(q.id, "sent", i)
  end
  ws:close()
end

-- streams each message with ws:frames(): answers "pieces bytes" at its end
routes["/ws/frames"] = function(req, q)
  local ws = lhyper.websocket.accept(req, ws_opts(q))
  if not ws then return end
  local pieces, bytes = 0, 0
  for piece, kind, fin in ws:frames() do
    pieces, bytes = pieces + 1, bytes + #piece
    if fin then
      ws:send(pieces .. " " .. bytes .. " " .. kind)
      pieces, bytes = 0, 0
    end
  end
end

-- one task receives while another sends ticks; a third receive is refused
routes["/ws/tasks"] = function(req, q)
  local ws = lhyper.websocket.accept(req, ws_opts(q))
  if not ws then return end
  local ticker = lhyper.spawn(function()
    for i = 1, 3 do
      lhyper.sleep(0.05)
      ws:send("tick " .. i)
    end
  end)
  lhyper.spawn(function()
    lhyper.sleep(0.02)
    local ok, err = pcall(ws.receive, ws)
    ws_note(q.id, "second_receive", ok and "allowed" or tostring(err):match("another task") and "refused" or err)
  end)
  for msg in ws:messages() do ws:send("echo " .. msg) end
  ticker:cancel()
end

-- a page that opens a WebSocket to /ws/echo, echoes text and binary, closes
-- and reports what it saw to /ws/report (spec/websocket_interop_spec.lua, Chromium)
routes["/ws/page"] = function(_, q)
  local id = (q.id or "page"):gsub("[^%w]", "")
  return 200, { ["content-type"] = "text/html; charset=utf-8" }, ([[
<!doctype html><html><head><meta charset="utf-8"></head><body><pre id="out">running</pre><script>
const out = [];
const ws = new WebSocket("ws://" + location.host + "/ws/echo?compress=1");
ws.binaryType = "arraybuffer";
const text = "h\u00e9llo \u03ba\u1f79\u03c3\u03bc\u03b5 " + "x".repeat(100000);
let step = 0;
function report() {
  document.getElementById("out").textContent = out.join(";");
  fetch("/ws/report?id=ID&r=" + encodeURIComponent(out.join(";")));
}
ws.onopen = () => { out.push("open " + ws.extensions.split(";")[0]); ws.send(text); };
ws.onmessage = (e) => {
  if (step === 0) {
    out.push("text " + (e.data === text));
    step = 1;
    ws.send(new Uint8Array([0, 1, 2, 255]));
  } else {
    const a = new Uint8Array(e.data);
    out.push("binary " + (a.length === 4 && a[0] === 0 && a[3] === 255));
    ws.close(1000, "page done");
  }
};
ws.onerror = () => out.push("error");
ws.onclose = (e) => { out.push("close " + e.code + " " + e.wasClean); report(); };
</script></body></html>]]):gsub("ID", id)
end

routes["/ws/report"] = function(_, q)
  ws_note(q.id, "report", q.r)
  return 204
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

-- Errors for on_error's reports (report_spec); ?key= tags the target.
local MARKED = lhyper.error("timeout", "upstream slow")
MARKED.marker = "kept"
routes["/err/none"] = function() return end
routes["/err/nilfirst"] = function() return nil, { ["x-a"] = "1" }, "body" end
routes["/err/table"] = function() error({ code = 42 }) end
routes["/err/object"] = function() error(MARKED) end
routes["/err/string"] = function()
  local function deep_in_the_handler() error("string failure") end
  deep_in_the_handler()
end
routes["/err/slow"] = function(req, q)
  lhyper.sleep(tonumber(q.s) or 0.2)
  error("slow failure")
end
routes["/err/iter"] = function()
  local n = 0
  return 200, { ["content-type"] = "text/plain" }, function()
    n = n + 1
    if n == 1 then return "first chunk\n" end
    local function deep_in_the_iterator() error("iterator failure") end
    deep_in_the_iterator()
  end
end
routes["/err/task"] = function()
  lhyper.spawn(function()
    local function deep_in_the_task() error("task failure") end
    deep_in_the_task()
  end)
  lhyper.sleep(0.1)
  return 200, nil, "handler done"
end
-- Header mistakes (headers_spec): ?case= picks one
local HEADER_CASES = {
  map = { ["x-a"] = { a = 1 } },
  boolean = { ["x-b"] = true },
  cl_abc = { ["content-length"] = "abc" },
  dup = { ["Content-Type"] = "text/plain", ["content-type"] = "text/html" },
  dup3 = { ["X-One"] = "1", ["x-two"] = "2", ["X-TWO"] = "3" },
  empty = { ["x-e"] = {}, ["X-Fine"] = "yes" },
  name = { ["x y"] = "v" },
  crlf = { ["x-c"] = "a\r\nx-injected: 1" },
  cl_twice = { { "content-length", "3" }, { "content-length", "4" } },
  pair = { "x-a" },
  pairname = { { 42, "v" } },
  nested = { ["x-n"] = { "a", { "b" } } },
  notable = "x-a: 1",
}
routes["/hdr"] = function(req, q)
  return 200, HEADER_CASES[q.case], "abc"
end
routes["/hdr/upgrade"] = function(req)
  req:upgrade({ ["x-bad"] = false })
end

-- Smaller mistakes (misuse_spec)
routes["/misuse/upgrade-bare"] = function(req)
  -- no headers: the request's protocol is answered
  local stream = req:upgrade()
  stream:write("up")
  stream:close()
end
routes["/misuse/upgrade-twice"] = function(req)
  -- req:upgrade() again, at once and after a pause in which the quiet
  -- stream may give back its dispatcher (at once under LHYPER_DOZE=0)
  local stream = req:upgrade({ upgrade = "echo", connection = "upgrade" })
  local out = {}
  for i = 1, 2 do
    if i == 2 then lhyper.sleep(0.3) end
    local ok, err = pcall(req.upgrade, req, { upgrade = "echo" })
    out[i] = tostring(ok) .. "|" .. tostring(err):gsub("\n.*", "")
  end
  stream:write(table.concat(out, "\n") .. "\n")
  stream:close()
end
routes["/misuse/after"] = function(req, q)
  -- a task uses the req after its handler returned
  local rec = {}
  shared.records[q.key or "k"] = rec
  lhyper.spawn(function()
    lhyper.sleep(0.1)
    local ok, err = pcall(function() for _ in req:body() do end end)
    rec.body = tostring(ok) .. "|" .. tostring(err):gsub("\n.*", "")
    ok, err = pcall(req.upgrade, req, { upgrade = "echo" })
    rec.upgrade = tostring(ok) .. "|" .. tostring(err):gsub("\n.*", "")
    rec.done = "true"
  end):detach()
  return 200, nil, "returned"
end
routes["/misuse/readall-twice"] = function(req)
  local first = assert(req:read_all())
  local ok, err = pcall(req.read_all, req)
  return 200, nil, first .. "|" .. tostring(ok) .. "|" .. tostring(err):gsub("\n.*", "")
end

-- every report so far, one a line: key=value fields separated by tabs
shared.reports = {}
routes["/reports"] = function()
  return 200, nil, table.concat(shared.reports, "\n")
end

local function report_line(err, info)
  local f = {}
  local function put(k, v) f[#f + 1] = k .. "=" .. tostring(v):gsub("[\t\r\n]", " ") end
  put("kind", type(err) == "table" and err.kind)
  put("what", type(err) == "table" and err.what)
  put("upstream", type(err) == "table" and err.upstream)
  put("message", type(err) == "table" and err.message or err)
  put("marker", type(err) == "table" and err.marker)
  local cause = type(err) == "table" and err.cause
  put("cause_code", type(cause) == "table" and cause.code)
  put("is_error", getmetatable(err) == getmetatable(MARKED))
  for _, k in ipairs { "method", "target", "phase", "status", "remote_addr", "remote_port", "peer" } do
    put(k, info and info[k])
  end
  put("duration", info and info.duration and string.format("%.3f", info.duration))
  return table.concat(f, "\t")
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
    shared.reports[#shared.reports + 1] = report_line(err, info)
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

support.announce(server)

lhyper.run()
io.stderr:write("app: lhyper.run() returned\n")
local load = shared.load
if load.heads > 0 then
  io.stderr:write(string.format("app: load heads=%d answered=%d after_close=%d\n",
    load.heads, load.answered, load.after_close))
end
