--- access_log{ format = "combined" | "json" | function(entry), out = ... }:
-- one line per exchange, written when its response ended (complete, or
-- given up: the client left, the handler raised mid-body).
--   out     a path (appended to), a file descriptor, a Lua file handle, a
--           log writer (lhyper.log_writer), or function(line); default
--           io.stdout. Files, descriptors and handles are written through
--           a log writer: buffered, written by libuv's thread pool (a slow
--           disk or pipe does not stop the loop), at least every second
--           (`flush`, seconds) and when it is closed or collected; past
--           `buffer` bytes (default 1 MiB) waiting, lines are dropped.
--   format  "combined": nginx's combined line and three fields more:
--             peer - - [time] "METHOD target HTTP/v" status bytes "referer"
--             "user-agent" duration_us "request-id" ok|aborted
--           "json": one object a line with the fields of `entry`
--           a function(entry) -> line
-- entry: time (seconds since the epoch, when the request reached the
-- layer), method, target, version, status (nil when no head went out),
-- bytes (body bytes sent), duration_us, peer, user_agent, referer,
-- request_id, route, complete (false: aborted).
local core = require "lhyper.core"
local check = require("lhyper.options").check

local type, error, tostring, getmetatable, format, gsub, byte, find, concat =
  type, error, tostring, getmetatable, string.format, string.gsub, string.byte,
  string.find, table.concat
local os_time, os_date, utf8_len = os.time, os.date, utf8.len
local hrtime, layer_service = core.hrtime, core.layer_service
local fast = core.tuning().fast_layers

-- combined: as nginx escapes (\" \\ and \xHH for other bytes outside printable ASCII)
local function esc_byte(c) return format("\\x%02X", byte(c)) end
local function esc(s)
  if s == nil then return "-" end
  if not find(s, '[^ !#-%[%]-~]') then return s end
  return (gsub(gsub(s, '[\\"]', "\\%0"), '[^ -~]', esc_byte))
end

local clf_sec, clf_str
local function clf_time(t)
  if t ~= clf_sec then clf_sec, clf_str = t, os_date("!%d/%b/%Y:%H:%M:%S +0000", t) end
  return clf_str
end

local function combined(e)
  return format('%s - - [%s] "%s %s HTTP/%s" %s %d "%s" "%s" %d "%s" %s\n',
    e.peer or "-", clf_time(e.time), e.method, esc(e.target), e.version,
    e.status and tostring(e.status) or "-", e.bytes, esc(e.referer), esc(e.user_agent),
    e.duration_us, esc(e.request_id), e.complete and "ok" or "aborted")
end

-- json: strings escaped per RFC 8259; bytes that are not UTF-8 as \u00XX
local JSON_ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function json_byte(c) return JSON_ESC[c] or format("\\u%04X", byte(c)) end -- as llayer.c
local function jstr(s)
  if s == nil then return "null" end
  s = tostring(s)
  if find(s, '[%c"\\]') then s = gsub(s, '[%c"\\]', json_byte) end
  if find(s, "[\128-\255]") and not utf8_len(s) then s = gsub(s, "[\128-\255]", json_byte) end
  return '"' .. s .. '"'
end

local iso_sec, iso_str
local function iso_time(t)
  if t ~= iso_sec then iso_sec, iso_str = t, os_date("!%Y-%m-%dT%H:%M:%SZ", t) end
  return iso_str
end

local function json(e)
  return concat {
    '{"time":', jstr(iso_time(e.time)), ',"peer":', jstr(e.peer), ',"method":', jstr(e.method),
    ',"target":', jstr(e.target), ',"version":', jstr(e.version),
    ',"status":', e.status and tostring(e.status) or "null", ',"bytes":', tostring(e.bytes),
    ',"duration_us":', tostring(e.duration_us), ',"user_agent":', jstr(e.user_agent),
    ',"referer":', jstr(e.referer), ',"request_id":', jstr(e.request_id),
    ',"route":', jstr(e.route), ',"complete":', e.complete and "true" or "false", "}\n",
  }
end

local OPTIONS = { format = "string|function", out = "string|number|userdata|function",
  buffer = "number", flush = "number" }

local function is_writer(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__name == "lhyper.log_writer"
end

return function(opts)
  if opts ~= nil and type(opts) ~= "table" then error("access_log: options table expected", 2) end
  opts = opts or {}
  check(OPTIONS, opts, "access_log")
  local fmt = opts.format or "combined"
  local line
  if fmt == "combined" then line = combined
  elseif fmt == "json" then line = json
  elseif type(fmt) == "function" then line = fmt
  else error('access_log: format must be "combined", "json" or a function(entry)', 2) end
  local out = opts.out
  local writer
  if type(out) ~= "function" then
    writer = out
    if not is_writer(writer) then
      local err
      writer, err = core.log_writer(out == nil and io.stdout or out, opts.buffer, opts.flush)
      if not writer then error("access_log: " .. tostring(err), 2) end
    end
  end

  local emit = out
  if writer then emit = function(s) writer:write(s) end end
  -- the line made in Lua, from req:on_end
  local function layer(inner)
    return function(req)
      local t0, time, peer = hrtime(), os_time(), req.remote_addr
      req:on_end(function(r, complete, status, bytes)
        local h = r.headers
        local s = line {
          time = time, method = r.method, target = r.target, version = r.version,
          status = status, bytes = bytes, duration_us = (hrtime() - t0) // 1000,
          peer = peer, user_agent = h["user-agent"], referer = h.referer,
          request_id = r.id, route = r.route, complete = complete,
        }
        if type(s) == "string" then
          if byte(s, -1) ~= 10 then s = s .. "\n" end
          emit(s)
        end
      end)
      return inner(req)
    end
  end
  if not (writer and type(fmt) == "string") then return layer end

  -- the built-in formats are made and written in C when the response ends;
  -- a request holds one such log, so the line of a second is made in Lua
  local log, begin = core.access_log(writer, fmt), core.access_log_begin
  return function(inner)
    local second = layer(inner)
    -- one C function does what the Lua one below does, without its frame
    if fast then return layer_service("access_log", log, inner, second) end
    return function(req)
      if begin(log, req) then return inner(req) end
      return second(req)
    end
  end
end
