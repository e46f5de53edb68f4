--- compression{ level = 6, min_size = 256, types = ..., algorithms = { "gzip", "deflate" } }:
-- compresses response bodies with gzip or deflate (zlib) when the request's
-- Accept-Encoding allows it (q-values honoured, gzip preferred on a tie).
-- A string body is compressed at once (sent as it was when that does not
-- make it smaller); an iterator body is compressed as it streams, each
-- chunk flushed so that a client sees it when the handler gives it.
-- HEAD gets the head GET would get. Left alone: 1xx/204/206/304, a response that already has a
-- Content-Encoding or a Content-Range, `Cache-Control: no-transform`, a
-- Content-Type the `types` predicate refuses (default: text/* but
-- text/event-stream, JSON, XML, JavaScript, SVG, wasm and a few more), a
-- body known to be under `min_size` bytes. A compressible response gets
-- `Vary: accept-encoding` whether compressed or not; a compressed one
-- loses its Content-Length (chunked, or the new length for a string) and
-- its ETag becomes weak.
local core = require "lhyper.core"
local check = require("lhyper.options").check
local headers = require "lhyper.layers.headers"

local type, error, tostring, tonumber, ipairs = type, error, tostring, tonumber, ipairs
local find, lower, match, gmatch, sub, concat = string.find, string.lower, string.match,
  string.gmatch, string.sub, table.concat
local deflater = core.deflater

local TYPES = {
  ["application/json"] = true, ["application/javascript"] = true, ["application/xml"] = true,
  ["application/xhtml+xml"] = true, ["application/rss+xml"] = true, ["application/atom+xml"] = true,
  ["application/wasm"] = true, ["application/x-javascript"] = true, ["application/ld+json"] = true,
  ["application/manifest+json"] = true, ["application/x-www-form-urlencoded"] = true,
  ["image/svg+xml"] = true, ["image/x-icon"] = true, ["image/bmp"] = true, ["font/ttf"] = true,
  ["font/otf"] = true, ["application/vnd.ms-fontobject"] = true,
}

-- the default `types`: true for a compressible media type (lower case, no parameters)
local function compressible(mt)
  if TYPES[mt] then return true end
  if sub(mt, 1, 5) == "text/" then return mt ~= "text/event-stream" end
  return find(mt, "^application/[%w.-]+%+json$") ~= nil or find(mt, "^application/[%w.-]+%+xml$") ~= nil
end

local KNOWN = { gzip = "gzip", ["x-gzip"] = "gzip", deflate = "deflate" }

-- choose(accept_encoding, allowed, order) -> "gzip" | "deflate" | nil: the
-- coding the client takes with the highest q (RFC 9110 12.5.3), among
-- `allowed` (a set), the first of `order` on a tie; nil for identity
local function choose(ae, allowed, order)
  if ae == nil or ae == "" then return nil end
  local q, star = {}, nil
  for item in gmatch(ae, "[^,]+") do
    local name, params = match(item, "^%s*([%w!#$%%&'*+.^_`|~-]+)%s*(.-)%s*$")
    if name then
      name = lower(name)
      local w = 1
      local qv = match(params, "^;%s*[qQ]%s*=%s*([%d.]+)")
      if qv then w = tonumber(qv) or 0 end
      if w > 1 then w = 1 end
      if name == "*" then star = w
      elseif KNOWN[name] then
        local c = KNOWN[name]
        if q[c] == nil or w > q[c] then q[c] = w end
      end
    end
  end
  local best, bw = nil, 0
  for _, c in ipairs(order) do
    if allowed[c] then
      local w = q[c]
      if w == nil then w = star or 0 end
      if w > bw then best, bw = c, w end
    end
  end
  return best
end

local function value_of(v)
  if type(v) == "table" then return concat(v, ", ") end
  return v ~= nil and tostring(v) or nil
end

-- the fields the layer reads of a response
local READ = { ["content-encoding"] = true, ["content-range"] = true, ["content-type"] = true,
  ["cache-control"] = true, vary = true, ["content-length"] = true, etag = true }
local pick = headers.pick

local OPTIONS = { level = "number", min_size = "number", types = "function|table",
  algorithms = "table" }

return function(opts)
  if opts ~= nil and type(opts) ~= "table" then error("compression: options table expected", 2) end
  opts = opts or {}
  check(OPTIONS, opts, "compression")
  local level = opts.level or 6
  if level ~= -1 and (math.type(level) ~= "integer" or level < 0 or level > 9) then
    error("compression: level must be an integer from 0 to 9", 2)
  end
  local min_size = opts.min_size or 256
  if min_size < 0 then error("compression: min_size must not be negative", 2) end
  local types = opts.types or compressible
  if type(types) == "table" then
    local set = {}
    for _, t in ipairs(types) do
      if type(t) ~= "string" then error("compression: types must list media types", 2) end
      set[lower(t)] = true
    end
    types = function(mt) return set[mt] == true end
  end
  local allowed, order = {}, {}
  for _, a in ipairs(opts.algorithms or { "gzip", "deflate" }) do
    if a ~= "gzip" and a ~= "deflate" then
      error('compression: algorithms are "gzip" and "deflate", not ' .. tostring(a), 2)
    end
    allowed[a] = true
    order[#order + 1] = a
  end
  if #order == 0 then error("compression: no algorithm", 2) end

  return function(inner)
    return function(req)
      local status, h, body = inner(req)
      if type(status) ~= "number" or status < 200 or status == 204 or status == 206 or status == 304 then
        return status, h, body
      end
      local f = pick(h, READ)
      if f["content-encoding"] or f["content-range"] then return status, h, body end
      local ct = value_of(f["content-type"])
      local mt = ct and lower(match(ct, "^%s*([^;%s]+)") or "")
      if not mt or not types(mt) then return status, h, body end
      local cc = value_of(f["cache-control"])
      if cc and find(lower(cc), "no-transform", 1, true) then return status, h, body end

      local vary = { { "vary", headers.vary_with(f.vary, "accept-encoding") } }
      local coding = choose(req.headers["accept-encoding"], allowed, order)
      local tb = type(body)
      if tb == "number" then body = tostring(body); tb = "string" end
      local cl = tonumber(value_of(f["content-length"]))
      -- HEAD: the fields GET would get, from the length the handler gave
      local head = req.method == "HEAD" and (body == nil or body == "")
      if not coding or (head and not (cl and cl >= min_size))
        or (not head and (body == nil or (tb == "string" and #body < min_size)))
        or (tb == "function" and cl and cl < min_size) then
        return status, headers.set(h, vary), body
      end

      local fields = { vary[1], { "content-encoding", coding }, { "content-length", nil },
        { "accept-ranges", nil } }
      local etag = value_of(f.etag)
      if etag and sub(etag, 1, 2) ~= "W/" then fields[#fields + 1] = { "etag", "W/" .. etag } end

      -- HEAD without the body: its compressed length is unknown, so the
      -- head says chunked, as GET's would for a stream
      if head then return status, headers.set(h, fields), function() return nil end end
      if tb == "string" then
        local d <close> = deflater(coding, level)
        local z = d:push(body, "finish")
        if #z >= #body then return status, headers.set(h, vary), body end
        return status, headers.set(h, fields), z
      end
      if tb ~= "function" then return status, h, body end -- not a body lhyper takes: it says so

      -- a stream: each chunk goes out flushed; the deflater is freed at the
      -- end of the body or of the exchange, whichever comes first
      local d = deflater(coding, level)
      req:on_end(function() d:close() end)
      local ended, trailers = false, nil
      return status, headers.set(h, fields), function()
        if ended then return nil, trailers end
        local chunk, t = body()
        if chunk == nil then
          ended, trailers = true, t
          local last = d:push("", "finish")
          if last ~= "" then return last end
          return nil, trailers
        end
        if chunk == "" then return "" end
        return d:push(tostring(chunk), "sync")
      end
    end
  end
end
