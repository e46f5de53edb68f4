--- set_headers(t, { override = false }): adds the fields of t (name ->
-- string, number or list of values) to every response; a field the
-- response already has stays, unless override.
local headers = require "lhyper.layers.headers"
local check = require("lhyper.options").check

local type, error, pairs, lower, find, sort = type, error, pairs, string.lower, string.find, table.sort

return function(t, opts)
  if type(t) ~= "table" then error("set_headers: a table { name = value } expected", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("set_headers: options table expected", 2) end
  if opts then check({ override = "boolean" }, opts, "set_headers") end
  local keep = not (opts and opts.override)
  local fields = {}
  for name, v in pairs(t) do
    if type(name) ~= "string" or not find(name, "^[%w!#$%%&'*+.^_`|~-]+$") then
      error("set_headers: bad field name " .. tostring(name), 2)
    end
    local tv = type(v)
    if tv ~= "string" and tv ~= "number" and tv ~= "table" then
      error("set_headers: the value of " .. name .. " must be a string, number or list", 2)
    end
    fields[#fields + 1] = { lower(name), v }
  end
  sort(fields, function(a, b) return a[1] < b[1] end)
  return function(inner)
    return function(req)
      local status, h, body = inner(req)
      return status, headers.set(h, fields, keep), body
    end
  end
end
