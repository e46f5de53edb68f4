--- Request helpers every application reaches for: the query string, the
-- decoded path, form and JSON bodies, multipart/form-data, cookies; and
-- res:json() on the client's responses. install() puts them in the method
-- tables of req and res, in one place.
local errors = require "lhyper.errors"
local url = require "lhyper.url"
local json = require "lhyper.json"
local cookie = require "lhyper.cookie"
local multipart = require "lhyper.multipart"

local type, error, tostring, pairs = type, error, tostring, pairs
local find, gsub, char, tonumber, lower, match = string.find, string.gsub, string.char, tonumber, string.lower, string.match

local M = {}

local DEFAULT_MAX = 1024 * 1024 -- form and JSON bodies read whole

local function check_max(max, who)
  if max == nil then return DEFAULT_MAX end
  if type(max) ~= "number" or not (max >= 0) then
    error("bad argument #1 to '" .. who .. "' (non-negative number expected)", 3)
  end
  return max
end

local function media_type(req)
  local ct = req.headers["content-type"]
  return ct and lower(match(ct, "^%s*([^;%s]*)")) or nil, ct
end

--- req:query_params() -> { name = value | { values } }, or nil, err, kind.
-- (req.query is the raw query string: the method needs its own name.)
function M.query_params(req)
  local q = req.query
  if not q or q == "" then return {} end
  local t, msg = url.parse(q)
  if not t then return errors.fail("parse", 400, "query", "invalid query string: " .. msg) end
  return t
end

local slash_modes = { keep = true, decode = true, reject = true }

--- req:path_decoded(slash) -> the path percent-decoded, or nil, err, kind.
-- slash says what %2F becomes: "keep" (default: stays "%2F", so "/" in
-- the result always separates segments), "decode" ("/") or "reject".
function M.path_decoded(req, slash)
  slash = slash or "keep"
  if not slash_modes[slash] then
    error("bad argument #1 to 'path_decoded' (\"keep\", \"decode\" or \"reject\" expected)", 2)
  end
  local p = req.path
  if not find(p, "%", 1, true) then return p end
  local bad = url.bad_escape(p)
  if bad then return errors.fail("parse", 400, "path", "invalid percent-escape '" .. bad .. "' in the path") end
  local why
  local out = gsub(p, "%%(%x%x)", function(h)
    local b = tonumber(h, 16)
    if b == 0 then why = "%00 (NUL) in the path" return "" end
    if b == 0x2F then
      if slash == "keep" then return "%2F" end
      if slash == "reject" then why = "%2F (an encoded /) in the path" return "" end
    end
    return char(b)
  end)
  if why then return errors.fail("parse", 400, "path", why) end
  return out
end

--- req:form(max) -> table as req:query_params(), or nil, err, kind
function M.form(req, max)
  max = check_max(max, "form")
  local mt = media_type(req)
  if mt ~= "application/x-www-form-urlencoded" then
    return errors.fail("parse", 415, "content_type",
      "expected an application/x-www-form-urlencoded body, got " .. tostring(mt or "none"))
  end
  local body, err, kind = req:read_all(max)
  if not body then return nil, err, kind end
  local t, msg = url.parse(body)
  if not t then return errors.fail("parse", 400, "form", "invalid form body: " .. msg) end
  return t
end

--- req:json(max) -> value, or nil, err, kind
function M.json(req, max)
  max = check_max(max, "json")
  local _, ct = media_type(req)
  if not json.is_json(ct) then
    return errors.fail("parse", 415, "content_type",
      "expected an application/json body, got " .. tostring(ct or "no content-type"))
  end
  local body, err, kind = req:read_all(max)
  if not body then return nil, err, kind end
  return json.decode(body)
end

--- res:json(max) -> value, or nil, err, kind (any content-type)
function M.res_json(res, max)
  max = check_max(max, "json")
  local body, err, kind = res:read_all(max)
  if not body then return nil, err, kind end
  return json.decode(body)
end

local multipart_defaults = {
  max_parts = 1000, max_header = 16 * 1024, max_field = 1024 * 1024, max_file = false,
}

--- req:multipart(opts) -> parts iterator, or nil, err, kind
function M.multipart(req, opts)
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #1 to 'multipart' (table expected)", 2) end
  local o = {}
  for k, d in pairs(multipart_defaults) do
    local v = opts and opts[k]
    if v == nil then v = d end
    if v ~= false and (type(v) ~= "number" or not (v >= 0)) then
      error("req:multipart: option '" .. k .. "' must be a non-negative number" .. (d == false and " or false" or ""), 2)
    end
    o[k] = v
  end
  if opts then
    for k in pairs(opts) do
      if multipart_defaults[k] == nil then error("req:multipart: unknown option '" .. tostring(k) .. "'", 2) end
    end
  end
  local _, ct = media_type(req)
  local boundary, why = multipart.boundary(ct)
  if not boundary then
    local status = (why == "not multipart/form-data" or why == "no content-type") and 415 or 400
    return errors.fail("parse", status, status == 415 and "content_type" or "multipart",
      "expected a multipart/form-data body: " .. why)
  end
  return multipart.new(req:body(), boundary, o)
end

--- req:cookies() -> { name = value }
function M.cookies(req)
  return cookie.parse(req.headers:get_all("cookie"))
end

--- req:cookie(name) -> value or nil
function M.cookie(req, name)
  if type(name) ~= "string" then error("bad argument #1 to 'cookie' (string expected)", 2) end
  return cookie.parse(req.headers:get_all("cookie"))[name]
end

--- install(methods, lhyper): the helpers as methods of req and res (through
-- core.methods, which adds methods to a C object type), and lhyper.json /
-- lhyper.cookie
function M.install(methods, module)
  methods("req", {
    query_params = M.query_params, path_decoded = M.path_decoded, form = M.form,
    json = M.json, multipart = M.multipart, cookies = M.cookies, cookie = M.cookie,
  })
  methods("res", { json = M.res_json })
  module.json = json.response
  module.cookie = cookie.build
end

return M
