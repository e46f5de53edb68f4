--- JSON through lua-cjson: request and response bodies, and a response
-- helper for handlers. A cjson instance of lhyper's own, so that settings
-- made by the application on the global cjson module do not change it.
local errors = require "lhyper.errors"

local type, pairs, ipairs, pcall, error, tostring = type, pairs, ipairs, pcall, error, tostring
local tointeger, mtype = math.tointeger, math.type
local find, gsub = string.find, string.gsub

local M = {}

local cj -- made on first use: lhyper loads without lua-cjson until JSON is used

local function codec()
  if cj then return cj end
  local ok, cjson = pcall(require, "cjson")
  if not ok then error("lhyper: JSON needs the lua-cjson module (Debian: lua-cjson, rock: lua-cjson)", 3) end
  cj = cjson.new()
  cj.decode_invalid_numbers(false) -- JSON has no NaN, Infinity or hex numbers
  cj.encode_invalid_numbers(false)
  cj.decode_max_depth(100)         -- bounds the walk below as well
  cj.encode_max_depth(100)
  return cj
end

local huge = math.huge
local OUT_OF_RANGE = "number out of range (past a double's largest)"

-- a number as a Lua 5.4 program would have written it: lua-cjson 2.1.0
-- decodes every number as a float, and one past a double's range (1e400)
-- as inf, which no JSON could carry back: that raises
local function number(x)
  if x == huge or x == -huge then error(OUT_OF_RANGE, 0) end
  return tointeger(x) or x
end

local function integers(v)
  if type(v) == "table" then
    for k, x in pairs(v) do
      if mtype(x) == "float" then
        v[k] = number(x)
      elseif type(x) == "table" then
        integers(x)
      end
    end
    return v
  end
  if mtype(v) == "float" then return number(v) end
  return v
end

local function decode(s) return integers(codec().decode(s)) end

--- decode(s) -> value, or nil, err, kind (a parse error whose status is 400)
function M.decode(s)
  local ok, v = pcall(decode, s)
  if not ok then
    return errors.fail("parse", 400, "json", "invalid JSON: " .. tostring(v):gsub("^.-: ", ""))
  end
  return v
end

--- encode(value) -> string; raises on what JSON cannot hold (a function,
-- NaN or inf, a cycle, an array with more holes than values past index 10)
function M.encode(v)
  local ok, s = pcall(codec().encode, v)
  if not ok then error("lhyper.json: cannot encode: " .. tostring(s), 3) end
  -- lua-cjson 2.1.0 writes "/" as "\/"; every "/" it writes is escaped so,
  -- and a backslash of the text is "\\", so dropping the escape is exact
  if find(s, "/", 1, true) then s = gsub(s, "\\/", "/") end
  return s
end

local JSON_TYPE = "application/json"
local CT = { ["content-type"] = JSON_TYPE } -- shared and never modified

-- the caller's headers with a content-type added when it has none; the
-- caller's table is left as it is
local function with_type(h)
  if h == nil then return CT end
  if type(h) ~= "table" then error("lhyper.json: headers must be a table", 3) end
  local out = {}
  if type(h[1]) == "table" then
    local has = false
    for i, pair in ipairs(h) do
      out[i] = pair
      if type(pair[1]) == "string" and pair[1]:lower() == "content-type" then has = true end
    end
    if not has then out[#out + 1] = { "content-type", JSON_TYPE } end
    return out
  end
  local has = false
  for k, v in pairs(h) do
    out[k] = v
    if type(k) == "string" and k:lower() == "content-type" then has = true end
  end
  if not has then out["content-type"] = JSON_TYPE end
  return out
end

--- lhyper.json(status, value[, headers]) -> status, headers, body
function M.response(status, value, headers)
  return status, with_type(headers), M.encode(value)
end

-- application/json, or any type with a +json suffix (RFC 6839)
local function is_json(ct)
  if not ct then return false end
  local mt = ct:match("^%s*([^;%s]+)")
  if not mt then return false end
  mt = mt:lower()
  return mt == JSON_TYPE or (mt:match("^application/[%w!#$&^_.%-]+%+json$") ~= nil)
end
M.is_json = is_json

return M
