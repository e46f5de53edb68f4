--- Cookies (RFC 6265): the request's Cookie fields read into a table, and
-- Set-Cookie values built from checked parts.
local type, pairs, tostring, error, floor = type, pairs, tostring, error, math.floor
local find, sub, match, lower, format = string.find, string.sub, string.match, string.lower, string.format
local concat, date = table.concat, os.date

local M = {}

--- parse(values) -> { name = value }: every cookie of the Cookie fields
-- (an array of field values). Pairs are split at ";" and at their first
-- "="; blanks around them and one pair of quotes around a value are
-- removed; a pair without "=" or with an empty name is skipped. A name
-- seen twice keeps its first value (RFC 6265 5.4: the most specific path
-- comes first). Values are not decoded.
function M.parse(values)
  local t = {}
  for _, v in ipairs(values) do
    for pair in v:gmatch("[^;]+") do
      local eq = find(pair, "=", 1, true)
      if eq then
        local name = match(sub(pair, 1, eq - 1), "^%s*(.-)%s*$")
        local value = match(sub(pair, eq + 1), "^%s*(.-)%s*$")
        if #value >= 2 and sub(value, 1, 1) == '"' and sub(value, -1) == '"' then value = sub(value, 2, -2) end
        if name ~= "" and t[name] == nil then t[name] = value end
      end
    end
  end
  return t
end

-- RFC 6265 4.1.1: cookie-name is a token; cookie-value is cookie-octets,
-- optionally in double quotes (no space, DQUOTE, comma, semicolon,
-- backslash or control character)
local function is_token(s) return s ~= "" and not find(s, "[^!#$%%&'*+%-.^_`|~%w]") end
local function is_value(s)
  if #s >= 2 and sub(s, 1, 1) == '"' and sub(s, -1) == '"' then s = sub(s, 2, -2) end
  return not find(s, '[\0-\32"\44;\\\127-\255]')
end
-- attribute values: any CHAR but CTLs or ";" (RFC 6265 4.1.1 av-octet)
local function is_av(s) return not find(s, "[\0-\31;\127]") end

local same_sites = { strict = "Strict", lax = "Lax", none = "None" }
local known = { max_age = true, expires = true, path = true, domain = true,
  secure = true, http_only = true, same_site = true }

local function bad(msg) error("lhyper.cookie: " .. msg, 3) end

--- build(name, value, opts) -> Set-Cookie field value; raises on a name,
-- value or attribute that would not be a valid cookie
function M.build(name, value, opts)
  if type(name) ~= "string" or not is_token(name) then
    bad("invalid cookie name " .. format("%q", tostring(name)) .. " (a token is required)")
  end
  if type(value) == "number" then value = tostring(value) end
  if type(value) ~= "string" then bad("cookie value must be a string") end
  if not is_value(value) then
    bad("invalid cookie value for '" .. name .. "' (no spaces, quotes, commas, semicolons, backslashes or control bytes; encode it first)")
  end
  opts = opts or {}
  if type(opts) ~= "table" then bad("options must be a table") end
  for k in pairs(opts) do
    if not known[k] then bad("unknown option '" .. tostring(k) .. "'") end
  end
  local out = { name .. "=" .. value }
  local max_age = opts.max_age
  if max_age ~= nil then
    if type(max_age) ~= "number" or max_age ~= floor(max_age) then bad("max_age must be an integer (seconds)") end
    out[#out + 1] = format("Max-Age=%d", max_age)
  end
  local expires = opts.expires
  if expires ~= nil then
    if type(expires) == "number" then
      expires = date("!%a, %d %b %Y %H:%M:%S GMT", floor(expires))
    elseif type(expires) ~= "string" or not is_av(expires) then
      bad("expires must be a time (seconds since the epoch) or a date string")
    end
    out[#out + 1] = "Expires=" .. expires
  end
  for _, k in ipairs { "domain", "path" } do
    local v = opts[k]
    if v ~= nil then
      if type(v) ~= "string" or v == "" or not is_av(v) then bad(k .. " must be a non-empty string without ';' or control bytes") end
      out[#out + 1] = (k == "path" and "Path=" or "Domain=") .. v
    end
  end
  if opts.secure then out[#out + 1] = "Secure" end
  if opts.http_only then out[#out + 1] = "HttpOnly" end
  local ss = opts.same_site
  if ss ~= nil then
    local canon = type(ss) == "string" and same_sites[lower(ss)]
    if not canon then bad("same_site must be \"Strict\", \"Lax\" or \"None\"") end
    if canon == "None" and not opts.secure then bad("same_site = \"None\" needs secure = true (browsers refuse it otherwise)") end
    out[#out + 1] = "SameSite=" .. canon
  end
  -- cookie prefixes (RFC 6265bis 4.1.3): browsers refuse these otherwise
  if sub(name, 1, 9) == "__Secure-" and not opts.secure then bad("a __Secure- cookie needs secure = true") end
  if sub(name, 1, 7) == "__Host-" and (not opts.secure or opts.path ~= "/" or opts.domain ~= nil) then
    bad("a __Host- cookie needs secure = true, path = \"/\" and no domain")
  end
  return concat(out, "; ")
end

return M
