--- Checks of a tls option table shared by the server (lhyper.server,
-- server:reload_tls) and the client (lhyper.client, client:request,
-- websocket.connect). What only one side takes stays with its caller.
local type, tostring, pairs, ipairs, error = type, tostring, pairs, ipairs, error

local M = {}

-- Each function raises at `level` as seen by its caller (the level that
-- caller would pass to error itself).

--- fields(types, t, who, level): every key of t is in types and its value
-- has that type
function M.fields(types, t, who, level)
  level = level + 1
  for k, v in pairs(t) do
    local want = types[k]
    if not want then error(who .. ": unknown tls option '" .. tostring(k) .. "'", level) end
    if type(v) ~= want then
      error(("%s: tls option '%s' must be a %s, got %s"):format(who, k, want, type(v)), level)
    end
  end
end

--- versions(t, who, level): min_version and max_version, if set, are
-- "1.2" or "1.3"
function M.versions(t, who, level)
  level = level + 1
  for _, k in ipairs { "min_version", "max_version" } do
    if t[k] and t[k] ~= "1.2" and t[k] ~= "1.3" then
      error(who .. ": tls option '" .. k .. "' must be \"1.2\" or \"1.3\"", level)
    end
  end
end

return M
