--- Option tables checked against the types they may hold, for
-- lhyper.server, lhyper.client and client:request: one checker for all.
local type, tostring, pairs, error = type, tostring, pairs, error

local M = {}

--- check(types, opts, who[, nonnegative]): raises at the caller's caller
-- (level 3) on a table that is not one, an unknown option, or a value whose
-- type is not in types[k] ("number|false": a number, or false for none; a
-- plain "boolean" takes both); nonnegative: numbers must not be < 0 or NaN.
function M.check(types, opts, who, nonnegative)
  if type(opts) ~= "table" then error(who .. ": options table expected", 3) end
  for k, v in pairs(opts) do
    local want = types[k]
    if not want then error(who .. ": unknown option '" .. tostring(k) .. "'", 3) end
    local t = type(v)
    local okay = want:find(t, 1, true) ~= nil
    if t == "boolean" and v == false and want:find("false", 1, true) then okay = true end
    if t == "boolean" and v == true and not want:find("boolean", 1, true) then okay = false end
    if not okay then
      error(("%s: option '%s' must be %s, got %s"):format(who, k, want:gsub("|", " or "), t), 3)
    end
    if nonnegative and t == "number" and (v < 0 or v ~= v) then
      error(("%s: option '%s' must not be negative"):format(who, k), 3)
    end
  end
end

return M
