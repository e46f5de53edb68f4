--- Response header tables as layers change them. A handler's table is
-- never modified (it may be a constant shared by every response): a layer
-- gets a copy, in the same shape (a map, or an array of { name, value }).
-- Names given here are lower case; the handler's may be in any case.
local type, next, rawlen, tostring, lower, gmatch, concat =
  type, next, rawlen, tostring, string.lower, string.gmatch, table.concat

local M = {}

local function same(k, name)
  return k == name or (type(k) == "string" and #k == #name and lower(k) == name)
end

--- get(h, name) -> the value of field `name` in h, or nil
function M.get(h, name)
  if h == nil then return nil end
  local n = rawlen(h)
  if n > 0 then
    for i = 1, n do
      local p = h[i]
      if type(p) == "table" and same(p[1], name) then return p[2] end
    end
    return nil
  end
  local v = h[name]
  if v ~= nil then return v end
  for k, x in next, h do
    if same(k, name) then return x end
  end
  return nil
end

--- pick(h, names) -> { name = value } for the fields of h whose names
-- (in any case) are in the set `names` (lower case), read in one pass;
-- the first of a name given twice
function M.pick(h, names)
  local out = {}
  if h == nil then return out end
  local n = rawlen(h)
  if n > 0 then
    for i = 1, n do
      local p = h[i]
      local k = type(p) == "table" and p[1]
      if type(k) == "string" then
        k = lower(k)
        if names[k] and out[k] == nil then out[k] = p[2] end
      end
    end
    return out
  end
  for k, v in next, h do
    if type(k) == "string" then
      if not names[k] then k = lower(k) end
      if names[k] and out[k] == nil then out[k] = v end
    end
  end
  return out
end

--- set(h, fields, keep) -> a copy of h with fields ({ {name, value}, ... })
-- set, replacing fields of the same names; with keep, a field h already
-- has stays as it is; a field given with a nil value is removed
function M.set(h, fields, keep)
  if h == nil then
    local out = {}
    for i = 1, #fields do out[fields[i][1]] = fields[i][2] end
    return out
  end
  local nf = #fields
  local n = rawlen(h)
  local out = {}
  local have = {}
  if n > 0 then
    local j = 0
    for i = 1, n do
      local p = h[i]
      local drop = false
      if type(p) == "table" then
        for f = 1, nf do
          if same(p[1], fields[f][1]) then
            if keep then have[f] = true else drop = true end
          end
        end
      end
      if not drop then j = j + 1; out[j] = p end
    end
    for f = 1, nf do
      if not have[f] and fields[f][2] ~= nil then j = j + 1; out[j] = fields[f] end
    end
    return out
  end
  for k, v in next, h do
    local drop = false
    for f = 1, nf do
      if same(k, fields[f][1]) then
        if keep then have[f] = true else drop = true end
      end
    end
    if not drop then out[k] = v end
  end
  for f = 1, nf do
    if not have[f] then out[fields[f][1]] = fields[f][2] end
  end
  return out
end

--- with(h, name, value) -> a copy of h with one field set
function M.with(h, name, value)
  if h == nil then return { [name] = value } end
  if rawlen(h) > 0 then return M.set(h, { { name, value } }) end
  local out, n = {}, #name
  for k, v in next, h do
    if k ~= name and not (type(k) == "string" and #k == n and lower(k) == name) then out[k] = v end
  end
  out[name] = value
  return out
end

--- vary_with(v, add) -> a Vary value: v (a field value, a list of them,
-- or nil) with the names in `add` ("Origin", "accept-encoding", ...) that
-- it lacks appended, compared in any case; "*" stays as it is
function M.vary_with(v, add)
  if type(v) == "table" then v = concat(v, ", ") end
  if v == nil or v == "" then return add end
  v = tostring(v)
  local lv = lower(v)
  for tok in gmatch(lv, "[^,%s]+") do
    if tok == "*" then return v end
  end
  for name in gmatch(add, "[^,%s]+") do
    local ln = lower(name)
    local seen = false
    for tok in gmatch(lv, "[^,%s]+") do if tok == ln then seen = true end end
    if not seen then v = v .. ", " .. name; lv = lv .. ", " .. ln end
  end
  return v
end

return M
