--- lhyper.websocket: WebSocket servers and clients (RFC 6455, RFC 7692).
-- The opening handshake lives here; frames, UTF-8, masking and
-- permessage-deflate are C (lws.c over csrc/core/ws.c). A ws is pull-based
-- like a request body: the socket is read only while a task waits in
-- ws:receive(), ws:messages() or ws:frames().
local core = require "lhyper.core"
local client = require "lhyper.client"

local type, tostring, pairs, ipairs, tonumber = type, tostring, pairs, ipairs, tonumber
local error, concat = error, table.concat

local M = {}

local check_types = require("lhyper.options").check

local function types(extra)
  local t = {
    protocols = "table", max_message = "number", max_frame = "number|false",
    fragment_size = "number", ping_interval = "number|false", ping_timeout = "number|false",
    close_timeout = "number|false", compress = "boolean|table", headers = "table",
  }
  for k, v in pairs(extra) do t[k] = v end
  return t
end
local accept_types = types { origin = "function|table" }
local connect_types = types { origin = "string", timeout = "number|false", connect_timeout = "number|false",
  tls = "table" }
local compress_types = {
  server_no_context_takeover = "boolean", client_no_context_takeover = "boolean",
  server_max_window_bits = "number", client_max_window_bits = "number",
  level = "number", mem_level = "number",
}

-- what the types do not say; raises at the caller's caller
local function check_values(opts, who)
  for _, k in ipairs { "max_message", "max_frame", "fragment_size" } do
    local v = opts[k]
    if type(v) == "number" and (v < 1 or v ~= math.floor(v)) then
      error(("%s: option '%s' must be a positive integer"):format(who, k), 3)
    end
  end
  local c = opts.compress
  if type(c) == "table" then
    for k, v in pairs(c) do
      local want = compress_types[k]
      if not want then error(who .. ": unknown compress option '" .. tostring(k) .. "'", 3) end
      if type(v) ~= want then error(("%s: compress option '%s' must be a %s"):format(who, k, want), 3) end
    end
    for _, k in ipairs { "server_max_window_bits", "client_max_window_bits" } do
      local v = c[k]
      if v and (v < 8 or v > 15 or v ~= math.floor(v)) then
        error(("%s: compress option '%s' must be an integer 8..15"):format(who, k), 3)
      end
    end
    if c.level and (c.level < 0 or c.level > 9) then error(who .. ": compress option 'level' must be 0..9", 3) end
    if c.mem_level and (c.mem_level < 1 or c.mem_level > 9) then error(who .. ": compress option 'mem_level' must be 1..9", 3) end
  end
  if opts.protocols then
    for _, p in ipairs(opts.protocols) do
      if type(p) ~= "string" or not p:find("^[!#$%%&'*+%-.^_`|~%w]+$") then
        error(who .. ": protocols must be tokens (RFC 6455 4.1)", 3)
      end
    end
  end
end

-- the options the C side reads, with the defaults
local function settings(opts)
  local max_message = opts.max_message or 1024 * 1024
  local function secs(v, def) if v == nil then return def end return v or 0 end
  return {
    max_message = max_message,
    max_frame = opts.max_frame or max_message,
    fragment_size = opts.fragment_size or 65536,
    ping_interval = secs(opts.ping_interval, 20),
    ping_timeout = secs(opts.ping_timeout, 20),
    close_timeout = secs(opts.close_timeout, 10),
  }
end

-- 1 when the comma-separated header value list holds token (case-insensitive)
local function has_token(values, token)
  for _, v in ipairs(values) do
    for t in v:gmatch("[^,]+") do
      if t:match("^%s*(.-)%s*$"):lower() == token then return true end
    end
  end
  return false
end

local function list(headers, name)
  local all = headers:get_all(name)
  local out = {}
  for _, v in ipairs(all) do
    for t in v:gmatch("[^,]+") do
      t = t:match("^%s*(.-)%s*$")
      if t ~= "" then out[#out + 1] = t end
    end
  end
  return out
end

--- lhyper.websocket.check_accept_options(opts, who, level): raises, at the
-- given level, on options accept would refuse (router:ws checks them when
-- the route is added)
function M.check_accept_options(opts, who, level)
  if type(opts) ~= "table" then error(who .. ": options table expected", level) end
  local ok, err = pcall(function()
    check_types(accept_types, opts, who, true)
    check_values(opts, who)
  end)
  if not ok then error(tostring(err):gsub("^[^:]*:%d+: ", ""), level) end
end

--- lhyper.websocket.is_request(req) -> true when req asks for a WebSocket
function M.is_request(req)
  local h = req.headers
  return req.method == "GET" and has_token(h:get_all("upgrade"), "websocket")
    and has_token(h:get_all("connection"), "upgrade")
end

local function refuse(req, status, why, extra)
  local h = { ["content-type"] = "text/plain", connection = "close" }
  for k, v in pairs(extra or {}) do h[k] = v end
  req:_respond(status, h, why .. "\n")
  local e = core.error("parse", "WebSocket handshake refused: " .. why, "websocket_handshake")
  e.status = status
  return nil, e, e.kind
end

local function origin_ok(check_origin, origin, req)
  if type(check_origin) == "function" then return check_origin(origin, req) end
  for _, o in ipairs(check_origin) do
    if o == origin then return true end
  end
  return false
end

local function pick_protocol(offered, supported)
  if not supported or #offered == 0 then return nil end
  local set = {}
  for _, p in ipairs(offered) do set[p] = true end
  for _, p in ipairs(supported) do
    if set[p] then return p end
  end
  return nil
end

local function deflate_conf(c)
  if c == true then return {} end
  return c
end

--- lhyper.websocket.accept(req, opts) -> ws | nil, err, kind
-- Checks the opening handshake (RFC 6455 4.2.1) and answers a bad one
-- itself: 405 not GET, 426 no Upgrade/Connection or a version other than
-- 13, 400 a bad key or a request with a body, 403 refused by `origin`.
-- Then negotiates the subprotocol and permessage-deflate and switches
-- protocols with req:upgrade.
function M.accept(req, opts)
  opts = opts or {}
  check_types(accept_types, opts, "lhyper.websocket.accept", true)
  check_values(opts, "lhyper.websocket.accept")
  local h = req.headers
  if req.method ~= "GET" then return refuse(req, 405, "a WebSocket handshake is a GET", { allow = "GET" }) end
  if req.version == "1.0" then return refuse(req, 400, "a WebSocket handshake needs HTTP/1.1") end
  if not has_token(h:get_all("upgrade"), "websocket") or not has_token(h:get_all("connection"), "upgrade") then
    return refuse(req, 426, "this resource speaks WebSocket (Upgrade: websocket)",
      { upgrade = "websocket", connection = "upgrade, close" })
  end
  local version = h:get_all("sec-websocket-version")
  if #version ~= 1 or version[1]:match("^%s*(.-)%s*$") ~= "13" then
    return refuse(req, 426, "unsupported Sec-WebSocket-Version", { ["sec-websocket-version"] = "13" })
  end
  local keys = h:get_all("sec-websocket-key")
  local accept_key = #keys == 1 and core.ws_accept_key(keys[1]:match("^%s*(.-)%s*$"))
  if not accept_key then return refuse(req, 400, "missing or invalid Sec-WebSocket-Key") end
  local cl, te = h:get("content-length"), h:get("transfer-encoding")
  if te or (cl and cl:match("^%s*0*%s*$") == nil) then return refuse(req, 400, "a WebSocket handshake has no body") end
  if opts.origin and not origin_ok(opts.origin, h:get("origin"), req) then
    return refuse(req, 403, "origin not allowed")
  end
  local cfg = settings(opts)
  local out = { upgrade = "websocket", ["sec-websocket-accept"] = accept_key }
  for k, v in pairs(opts.headers or {}) do out[k] = v end
  local protocol = pick_protocol(list(h, "sec-websocket-protocol"), opts.protocols)
  if protocol then
    out["sec-websocket-protocol"] = protocol
    cfg.protocol = protocol
  end
  if opts.compress then
    local offers = h:get_all("sec-websocket-extensions")
    if #offers > 0 then
      local params, resp = core.ws_deflate_accept(concat(offers, ", "), deflate_conf(opts.compress))
      if params == nil then return refuse(req, 400, "malformed Sec-WebSocket-Extensions") end
      if params then
        local c = opts.compress
        if type(c) == "table" then params.level, params.mem_level = c.level, c.mem_level end
        cfg.deflate = params
        cfg.extensions = resp
        out["sec-websocket-extensions"] = resp
      end
    end
  end
  local stream, err, kind = req:upgrade(out)
  if not stream then return nil, err, kind end
  return core.ws_new(stream, "server", cfg)
end

local function handshake_error(msg, status)
  local e = core.error("parse", "WebSocket handshake failed: " .. msg, "websocket_handshake")
  e.status = status
  return nil, e, e.kind
end

--- lhyper.websocket.connect(url, opts) -> ws | nil, err, kind
-- url: ws://host[:port]/path, or wss:// over TLS (the client's https, with
-- opts.tls as a request's tls option: ca, verify, cert, key, sni, ...)
function M.connect(url, opts)
  opts = opts or {}
  check_types(connect_types, opts, "lhyper.websocket.connect", true)
  check_values(opts, "lhyper.websocket.connect")
  if type(url) ~= "string" then error("lhyper.websocket.connect: url (a string) expected", 2) end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  scheme = scheme and scheme:lower()
  local http_url
  if scheme == "ws" or scheme == "http" then
    http_url = "http://" .. rest
  elseif scheme == "wss" or scheme == "https" then
    http_url = "https://" .. rest
  else
    error("lhyper.websocket.connect: invalid URL '" .. url .. "' (expected ws:// or wss://host[:port]/path)", 2)
  end
  client.parse_url(http_url) -- raises on a bad URL
  if opts.tls then client.check_tls(opts.tls, "lhyper.websocket.connect", 2) end
  local key = core.ws_new_key()
  local headers = {
    upgrade = "websocket", connection = "Upgrade",
    ["sec-websocket-key"] = key, ["sec-websocket-version"] = "13",
  }
  if opts.protocols and #opts.protocols > 0 then headers["sec-websocket-protocol"] = concat(opts.protocols, ", ") end
  local conf = opts.compress and deflate_conf(opts.compress)
  if conf then headers["sec-websocket-extensions"] = core.ws_deflate_offer(conf) end
  if opts.origin then headers.origin = opts.origin end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local res, err, kind = client.request {
    url = http_url, headers = headers, timeout = opts.timeout, connect_timeout = opts.connect_timeout,
    tls = opts.tls,
  }
  if not res then return nil, err, kind end
  local h = res.headers
  if res.status ~= 101 then
    res:close()
    return handshake_error("the server answered " .. res.status .. " " .. (res.reason or ""), res.status)
  end
  if not has_token(h:get_all("upgrade"), "websocket") or not has_token(h:get_all("connection"), "upgrade") then
    res:close()
    return handshake_error("101 without Upgrade: websocket and Connection: upgrade", 101)
  end
  local accepts = h:get_all("sec-websocket-accept")
  if #accepts ~= 1 or accepts[1]:match("^%s*(.-)%s*$") ~= core.ws_accept_key(key) then
    res:close()
    return handshake_error("wrong Sec-WebSocket-Accept", 101)
  end
  local cfg = settings(opts)
  local protos = list(h, "sec-websocket-protocol")
  if #protos > 1 then
    res:close()
    return handshake_error("more than one Sec-WebSocket-Protocol", 101)
  elseif #protos == 1 then
    local offered = false
    for _, p in ipairs(opts.protocols or {}) do offered = offered or p == protos[1] end
    if not offered then
      res:close()
      return handshake_error("subprotocol '" .. protos[1] .. "' was not offered", 101)
    end
    cfg.protocol = protos[1]
  end
  local exts = h:get_all("sec-websocket-extensions")
  if #exts > 0 then
    local params = conf and core.ws_deflate_check(concat(exts, ", "), conf)
    if not params then
      res:close()
      return handshake_error("extensions not offered or not valid: " .. concat(exts, ", "), 101)
    end
    if type(conf) == "table" then params.level, params.mem_level = conf.level, conf.mem_level end
    cfg.deflate = params
    cfg.extensions = concat(exts, ", ")
  end
  local ws
  ws, err, kind = core.ws_new(res, "client", cfg)
  if not ws then res:close() end
  return ws, err, kind
end

return M
