--- lhyper.client: the HTTP/1.1 client (the dispatcher's other role).
-- Option checks, URL parsing and header normalisation live here; the C core
-- (lclient.c) writes the request, pools connections and reads the response.
local core = require "lhyper.core"

local type, tostring, pairs, ipairs, tonumber = type, tostring, pairs, ipairs, tonumber
local concat, pcall, error = table.concat, pcall, error
local send = core.client_send

local M = {}

local client_option_types = {
  pool_max_idle_per_host = "number", pool_idle_timeout = "number|false",
  connect_timeout = "number|false", read_timeout = "number|false", timeout = "number|false",
  expect_timeout = "number", keep_alive = "boolean",
  max_buf_size = "number", max_headers = "number", follow_redirects = "number|false",
  tls = "table", decompress = "boolean",
}

local request_option_types = {
  method = "string", url = "string", headers = "table", body = "string|function",
  timeout = "number|false", read_timeout = "number|false", connect_timeout = "number|false",
  expect_continue = "boolean", expect_timeout = "number", follow_redirects = "number|false",
  tls = "table", decompress = "boolean",
}

-- https: what a client's or a request's tls table may hold
local tls_types = {
  ca = "string", verify = "boolean", cert = "string", key = "string", sni = "string",
  ciphers = "string", ciphersuites = "string", min_version = "string", max_version = "string",
}

local check = require("lhyper.options").check
local tls = require "lhyper.tls"

-- raises at `level` (2: the caller of the function that checks)
local function check_tls(t, who, level)
  level = level + 1
  tls.fields(tls_types, t, who, level)
  tls.versions(t, who, level)
  if (t.cert == nil) ~= (t.key == nil) then
    error(who .. ": tls options 'cert' and 'key' go together", level)
  end
end

M.check_tls = check_tls

--- lhyper.client(opts) -> client
-- Options (defaults): pool_max_idle_per_host (32), pool_idle_timeout (90 s,
-- false: none), connect_timeout (10 s), read_timeout (60 s: silence while a
-- response is awaited), timeout (false: the whole exchange), expect_timeout
-- (1 s), keep_alive (true), max_buf_size (400 KiB: largest response head),
-- max_headers (100).
function M.new(opts)
  opts = opts or {}
  check(client_option_types, opts, "lhyper.client", true)
  if opts.tls then check_tls(opts.tls, "lhyper.client", 2) end
  local n = opts.pool_max_idle_per_host
  if n and n ~= math.floor(n) then error("lhyper.client: option 'pool_max_idle_per_host' must be an integer", 2) end
  local c = assert(core.client_new(opts))
  -- per-request defaults, kept beside the C object
  M.defaults_[c] = {
    connect_timeout = opts.connect_timeout == nil and 10 or opts.connect_timeout or 0,
    read_timeout = opts.read_timeout == nil and 60 or opts.read_timeout or 0,
    timeout = opts.timeout or 0,
    expect_timeout = opts.expect_timeout or 1,
    follow_redirects = opts.follow_redirects or false,
    decompress = opts.decompress or false,
    tls = opts.tls or {},
    tls_ctx = {}, -- contexts made for this client, by their options
  }
  return c
end
M.defaults_ = setmetatable({}, { __mode = "k" })

--- URL -> host, port, authority (for Host), target, https; raises on what
-- is neither http nor https (at `level`, 2 when the user called it)
local function parse_url(url, level)
  level = (level or 1) + 1
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then error("lhyper.request: invalid URL '" .. url .. "' (expected http://host[:port]/path)", level) end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    error("lhyper.request: unsupported URL scheme '" .. scheme .. "' in " .. url, level)
  end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  if authority:find("@", 1, true) then
    error("lhyper.request: credentials in the URL are not supported (send an authorization header)", level)
  end
  target = target:gsub("#.*$", "")
  if target == "" then target = "/"
  elseif target:sub(1, 1) == "?" then target = "/" .. target end
  if target:find("[%s%c]") then error("lhyper.request: invalid URL (space or control character in the path): " .. url, level) end
  local host, port
  if authority:sub(1, 1) == "[" then
    host, port = authority:match("^%[([%x:.]+[^%]]*)%]:?(%d*)$")
  else
    host, port = authority:match("^([^:]+):?(%d*)$")
  end
  if not host or host == "" then error("lhyper.request: invalid host in URL " .. url, level) end
  port = port ~= "" and tonumber(port) or (scheme == "https" and 443 or 80)
  if port < 1 or port > 65535 then error("lhyper.request: invalid port in URL " .. url, level) end
  return host, port, authority, target, scheme == "https"
end
M.parse_url = parse_url

-- parsed URLs, reused: a client tends to call the same few (bounded: the
-- cache is dropped when it fills)
local url_cache, url_cached = {}, 0
local function parse_url_cached(url, level)
  local t = url_cache[url]
  if t then return t[1], t[2], t[3], t[4], t[5] end
  local host, port, authority, target, https = parse_url(url, level + 1)
  if url_cached >= 256 then url_cache, url_cached = {}, 0 end
  url_cache[url] = { host, port, authority, target, https }
  url_cached = url_cached + 1
  return host, port, authority, target, https
end

-- the TLS context of a request (client options, then the request's), made
-- once per set of options and client; and the name to ask for
local function tls_for(d, req_tls)
  local o = d.tls
  if req_tls then
    o = {}
    for k, v in pairs(d.tls) do o[k] = v end
    for k, v in pairs(req_tls) do o[k] = v end
  end
  local id = table.concat({ tostring(o.ca), tostring(o.verify), tostring(o.cert), tostring(o.key),
    tostring(o.ciphers), tostring(o.ciphersuites), tostring(o.min_version), tostring(o.max_version) }, "\0")
  local ctx = d.tls_ctx[id]
  if not ctx then
    local err, kind
    ctx, err, kind = core.tls_ctx("client", o)
    if not ctx then return nil, err, kind end
    d.ntls = (d.ntls or 0) + 1
    if d.ntls > 64 then d.tls_ctx, d.ntls = {}, 1 end
    d.tls_ctx[id] = ctx
  end
  return ctx, o.sni
end

-- headers (map or array of pairs) -> flat array name, value, ...; and what
-- the request needs to know of them. Mistakes raise at `level` and name
-- the header, as the server's do.
local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"

-- appends one field (or each of an array of values) to the flat list f
-- (f.n entries); notes host, expect and content-length in f
local function add(f, name, value, level)
  if type(name) ~= "string" then
    error("lhyper.request: header names must be strings, not a " .. type(name), level + 1)
  end
  if not name:find(TOKEN) then error("lhyper.request: header name '" .. name .. "' is not a token", level + 1) end
  local tv = type(value)
  if tv == "table" then
    if #value == 0 and next(value) ~= nil then
      error("lhyper.request: header '" .. name .. "': a table value must be an array of values", level + 1)
    end
    for _, v in ipairs(value) do add(f, name, v, level + 1) end
    return
  elseif tv == "number" then value = tostring(value)
  elseif tv ~= "string" then
    error("lhyper.request: header '" .. name .. "': value must be a string, a number or an array of them, not a "
      .. tv, level + 1)
  end
  if value:find("[\r\n%z]") then
    error("lhyper.request: header '" .. name .. "': value holds CR, LF or NUL", level + 1)
  end
  local n = f.n
  f[n + 1], f[n + 2] = name, value
  f.n = n + 2
  local c = name:byte(1)
  if c == 104 or c == 72 or c == 101 or c == 69 or c == 99 or c == 67 or c == 97 or c == 65 then -- h, e, c, a
    local lname = name:lower()
    if lname == "host" then f.has_host = true
    elseif lname == "accept-encoding" then f.has_ae = true
    elseif lname == "expect" then f.expect = value:lower() == "100-continue"
    elseif lname == "content-length" then
      if not value:find("^%d+$") then
        error("lhyper.request: header 'content-length': '" .. value .. "' is not a non-negative integer", level + 1)
      end
      f.length = value
    end
  end
end

-- names of a map that differ only in case would send the field twice
local function map_dups(headers, level)
  local seen = {}
  for k in pairs(headers) do
    local l = type(k) == "string" and k:lower()
    if l then
      if seen[l] then
        error(("lhyper.request: headers '%s' and '%s' in one table are the same field: use one name (with an array of values)")
          :format(seen[l], k), level + 1)
      end
      seen[l] = k
    end
  end
end

local function flatten(headers, authority, level)
  local f = { n = 0 }
  if headers then
    if type(headers[1]) == "table" then
      for i, pair in ipairs(headers) do
        if type(pair) ~= "table" then
          error("lhyper.request: headers[" .. i .. "] must be a {name, value} pair", level + 1)
        end
        add(f, pair[1], pair[2], level + 1)
      end
    else
      local upper = false
      for k, v in pairs(headers) do
        add(f, k, v, level + 1)
        upper = upper or k:find("%u") ~= nil
      end
      if upper then map_dups(headers, level + 1) end
    end
  end
  if not f.has_host and authority then
    -- RFC 9112 3.2: Host is the URL's authority
    f[f.n + 1], f[f.n + 2] = "host", authority
    f.n = f.n + 2
  end
  return f, f.expect, f.length
end

local function trailer_list(t)
  if t == nil then return nil end
  if type(t) ~= "table" then error("lhyper.request: body trailers must be a table", 3) end
  return (flatten(t, nil, 3))
end

local idempotent = { GET = true, HEAD = true, OPTIONS = true, TRACE = true, PUT = true, DELETE = true }

-- a request that failed on a reused connection before any response came is
-- retried once on a new one, when sending it twice is harmless (the
-- keep-alive race: the server closed the idle connection as it was taken)
local function retryable(res, method, body, err)
  if not res.reused or type(body) == "function" or not idempotent[method] then return false end
  local k = err and err.kind
  return k == "incomplete" or k == "closed" or k == "io"
end

local function pump(res, body)
  while true do
    local ok, chunk, trailers = pcall(body)
    if not ok then
      res:_abort()
      local e = core.error("user_body", "request body iterator failed: " .. tostring(chunk))
      return nil, e, e.kind
    end
    if chunk == nil then return res:_finish(trailer_list(trailers)) end
    if type(chunk) ~= "string" then
      if type(chunk) ~= "number" then
        res:_abort()
        local e = core.error("user_body", "request body iterator returned a " .. type(chunk))
        return nil, e, e.kind
      end
      chunk = tostring(chunk)
    end
    if #chunk > 0 then
      local ok2, err, kind = res:_write(chunk)
      if not ok2 then return nil, err, kind end
    end
  end
end

-- a per-request option, else the client's default (false: 0, none)
local function opt(opts, d, k)
  local v = opts[k]
  if v == nil then return d[k] end
  return v or 0
end

-- one try of the request: spec is what send (lclient.c) writes it from
local function attempt(client, d, opts, spec)
  local body = opts.body
  local streamed = spec.body == true
  local expect = spec.expect
  local res, err, kind = send(client, spec)
  if not res then return nil, err, kind end
  if expect then
    local go
    go, err, kind = res:_continue(opt(opts, d, "expect_timeout"))
    if go == nil then return nil, err, kind, res end
    if go then
      local ok
      if streamed then ok, err, kind = pump(res, body)
      else
        ok, err, kind = true, nil, nil
        if body and #body > 0 then ok, err, kind = res:_write(body) end
        if ok then ok, err, kind = res:_finish() end
      end
      if not ok then return nil, err, kind, res end
    end
  elseif streamed then
    local ok
    ok, err, kind = pump(res, body)
    if not ok then
      -- the server may have answered (and closed) before taking the whole body
      local r2 = res:_wait()
      if r2 then return r2 end
      return nil, err, kind, res
    end
  end
  local r
  r, err, kind = res:_wait()
  if not r then return nil, err, kind, res end
  return r
end

-- the fields of a request: its headers checked (raising at `level`), the
-- expect and content-length they imply
local function prepare(opts, authority, level, decompress)
  local fields, expect, length = flatten(opts.headers, authority, level + 1)
  if decompress and not fields.has_ae then add(fields, "accept-encoding", "gzip, deflate", level + 1) end
  if opts.expect_continue then
    if not expect then add(fields, "expect", "100-continue", level + 1) end
    expect = true
  end
  local body = opts.body
  if type(body) == "string" and length and tonumber(length) ~= #body then
    error("lhyper.request: content-length header does not match the body", level + 1)
  end
  if expect and (body == nil or body == "") then expect = false end
  return fields, expect
end

-- one request and its response head, retried once on a fresh connection
-- when the kept-alive one it took turned out dead
local function exchange(client, d, opts, method, host, port, target, fields, expect, tls_ctx, tls_name)
  local body = opts.body
  local spec = {
    method = method, host = host, port = port, target = target, fields = fields,
    body = type(body) == "function" or body, expect = expect,
    timeout = opt(opts, d, "timeout"), read_timeout = opt(opts, d, "read_timeout"),
    connect_timeout = opt(opts, d, "connect_timeout"),
    tls_ctx = tls_ctx, tls_name = tls_name,
  }
  local res, err, kind, failed = attempt(client, d, opts, spec)
  if not res and failed and retryable(failed, method, body, err) then
    res, err, kind = attempt(client, d, opts, spec)
  end
  if not res then return nil, err, kind end
  return res
end

--- Redirects (opt-in: follow_redirects = N)

local redirects = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

-- RFC 3986 5.2.4: "." and ".." segments of an absolute path
local function remove_dots(path)
  local out, segs = {}, {}
  for seg in (path:sub(2) .. "/"):gmatch("(.-)/") do segs[#segs + 1] = seg end
  for i, seg in ipairs(segs) do
    if seg == ".." then
      out[#out] = nil
      if i == #segs then out[#out + 1] = "" end
    elseif seg == "." then
      if i == #segs then out[#out + 1] = "" end
    else
      out[#out + 1] = seg
    end
  end
  return "/" .. concat(out, "/")
end

-- a Location value resolved against the URL it answered (RFC 9110 10.2.2:
-- it may be relative; a relative one keeps the base's scheme); nil when it
-- is neither http nor https
local function resolve(base, loc)
  loc = loc:gsub("#.*$", "")
  if loc:match("^%a[%w+.-]*:") then
    return loc:match("^[hH][tT][tT][pP][sS]?://") and loc or nil
  end
  local scheme, authority, path = base:match("^(%a[%w+.-]*)://([^/?#]*)([^#]*)$")
  if not authority then return nil end
  scheme = scheme:lower()
  if loc:sub(1, 2) == "//" then return scheme .. ":" .. loc end
  local p, q = loc:match("^([^?]*)(.*)$")
  if p == "" then -- only a query, or nothing
    local bp = path:match("^[^?]*")
    return scheme .. "://" .. authority .. (bp == "" and "/" or bp) .. (q ~= "" and q or path:match("%?.*$") or "")
  end
  if p:sub(1, 1) ~= "/" then
    p = (path:match("^([^?]*/)") or "/") .. p
  end
  return scheme .. "://" .. authority .. remove_dots(p) .. q
end
M.resolve_ = resolve

-- the caller's headers as pairs, less the names in drop (lower-case)
local function headers_without(headers, drop)
  local out = {}
  if not headers then return out end
  local function keep(name, value)
    if type(name) ~= "string" or not drop[name:lower()] then out[#out + 1] = { name, value } end
  end
  if type(headers[1]) == "table" then
    for _, pair in ipairs(headers) do keep(pair[1], pair[2]) end
  else
    for k, v in pairs(headers) do keep(k, v) end
  end
  return out
end

-- fields that describe a body, dropped with it (fetch's request-body-header names)
local body_fields = { ["content-length"] = true, ["content-type"] = true, ["content-encoding"] = true,
  ["content-language"] = true, ["content-location"] = true, ["transfer-encoding"] = true,
  expect = true }
-- credentials a redirect to another origin must not carry
local credentials = { authorization = true, cookie = true, ["proxy-authorization"] = true }

-- the options for following res (a redirect of the request opts made), or
-- nil when it cannot be followed
local function next_hop(opts, method, res, host, port)
  local loc = res.headers.location
  local url = loc and resolve(opts.url, loc)
  if not url then return nil end
  local ok, nhost, nport, _, _, nhttps = pcall(parse_url, url)
  if not ok then return nil end
  local https = select(5, parse_url_cached(opts.url, 2))
  local body, drop = opts.body, { host = true }
  local status = res.status
  if (status == 303 and method ~= "HEAD") or ((status == 301 or status == 302) and method == "POST") then
    -- RFC 9110 15.4.4 and 15.4.2/15.4.3: the redirect is fetched with GET
    method, body = "GET", nil
    for k in pairs(body_fields) do drop[k] = true end
  elseif type(body) == "function" then
    return nil -- 301/302/307/308 keep the body, and an iterator cannot be sent twice
  end
  if nhost:lower() ~= host:lower() or nport ~= port or nhttps ~= https then
    for k in pairs(credentials) do drop[k] = true end
  end
  local n = {}
  for k, v in pairs(opts) do n[k] = v end
  n.url, n.method, n.body = url, method, body
  n.headers = headers_without(opts.headers, drop)
  return n, method, nhost, nport
end

-- methods are sent upper-case, as Node and Python's requests send them
-- (RFC 9110 9.1: standard methods are upper-case; "get" would be another)
local methods_upper = setmetatable({}, { __mode = "k", __index = function(t, m)
  local u = m:upper()
  t[m] = u
  return u
end })

-- decompress: a response body in gzip or deflate (one coding) is decoded
-- as res:body() gives it; the head stays as it came (Content-Encoding,
-- Content-Length of the wire)
local CODINGS = { gzip = "gzip", ["x-gzip"] = "gzip", deflate = "deflate" }
local function decoded(res, method)
  local st = res.status
  if method == "HEAD" or st < 200 or st == 204 or st == 304 then return res end
  local ce = res.headers["content-encoding"]
  local fmt = ce and CODINGS[ce:match("^%s*(.-)%s*$"):lower()]
  if not fmt then return res end
  res:_decode(function(raw)
    local inf = core.inflater(fmt)
    local started, ended = false, false
    return function()
      while true do
        local chunk = raw()
        if chunk == nil then
          if started and not ended then
            inf:close()
            local e = core.error("incomplete", "the " .. fmt .. " body ended before its end", "body")
            e.status, e.upstream = 502, true
            error(e, 0)
          end
          return nil
        end
        if not ended then -- bytes after the end are left out
          started = true
          local out, fin, kind = inf:push(chunk)
          if not out then
            local e = core.error("parse", fin, "content_encoding")
            e.status, e.upstream = 502, true
            error(e, 0)
          end
          ended = fin
          if out ~= "" then return out end
        end
      end
    end
  end)
  return res
end

--- client:request{ method, url, headers, body, timeout, ... } -> res | nil, err, kind
-- (lhyper.request calls it as a tail call: errors at level 2 are the user's line)
local function request(client, opts)
  if not core.in_task() then
    error("lhyper.request: not inside an lhyper handler or task (start one with lhyper.spawn and run the loop)", 2)
  end
  check(request_option_types, opts, "lhyper.request", true)
  if type(opts.url) ~= "string" then error("lhyper.request: option 'url' (a string) is required", 2) end
  local d = M.defaults_[client]
  if not d then error("lhyper.request: not a client made by lhyper.client", 2) end
  local follow = opts.follow_redirects
  if follow == nil then follow = d.follow_redirects end
  if follow and follow ~= math.floor(follow) then
    error("lhyper.request: option 'follow_redirects' must be an integer or false", 2)
  end
  local method = opts.method and methods_upper[opts.method] or "GET"
  if not method:find(TOKEN) then error("lhyper.request: method '" .. method .. "' is not a token", 2) end
  if opts.tls then check_tls(opts.tls, "lhyper.request", 2) end
  local decompress = opts.decompress
  if decompress == nil then decompress = d.decompress end
  local host, port, authority, target, https = parse_url_cached(opts.url, 2)
  local fields, expect = prepare(opts, authority, 2, decompress)
  local hops = 0
  while true do
    local tls_ctx, tls_name
    if https then
      local ctx, name_or_err, kind = tls_for(d, opts.tls)
      if not ctx then return nil, name_or_err, kind end
      tls_ctx, tls_name = ctx, name_or_err
    end
    local res, err, kind = exchange(client, d, opts, method, host, port, target, fields, expect,
      tls_ctx, tls_name)
    if not res then return nil, err, kind end
    if not follow or hops >= follow or not redirects[res.status] then
      if decompress then return decoded(res, method) end
      return res
    end
    local nopts, nmethod, nhost, nport = next_hop(opts, method, res, host, port)
    if not nopts then
      if decompress then return decoded(res, method) end
      return res
    end
    -- the redirect's own body is read (a little of it) so its connection
    -- can serve the next hop
    res:read_all(64 * 1024)
    res:close()
    hops = hops + 1
    opts, method, host, port = nopts, nmethod, nhost, nport
    local _
    _, _, authority, target, https = parse_url_cached(opts.url, 2)
    fields, expect = prepare(opts, authority, 2, decompress)
  end
end

core.methods("client", { request = request })

local read_all = require("lhyper.body").read_all
local function close(res) res:close() end

core.methods("res", {
  --- res:read_all(max_bytes) -> body string | nil, err, kind
  read_all = function(res, max) return read_all(res, max, close) end,
})

local default_client

--- lhyper.request{...}: a request through the default client
function M.request(opts)
  if not default_client then default_client = M.new() end
  return request(default_client, opts)
end

return M
