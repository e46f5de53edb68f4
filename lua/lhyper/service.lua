--- Services and layers, after tower's Service and Layer.
-- A service is a function(req) -> status, headers, body (a handler); a
-- router is a service too. A layer is a function(inner) -> service.
local core = require "lhyper.core"

local type, error, rawget, getmetatable = type, error, rawget, getmetatable
local mtype = math.type

local M = {}

--- service.of(s, what[, level]) -> a function(req) for the service s: a
-- function, a router (its dispatch function) or a table with a __call
-- metamethod. Raises naming `what` for anything else, at `level` (default
-- 3: the caller of of's caller).
function M.of(s, what, level)
  local t = type(s)
  if t == "function" then return s end
  if t == "table" then
    local f = rawget(s, "service_")
    if type(f) == "function" then return f end
    local mt = getmetatable(s)
    if type(mt) == "table" and mt.__call then return function(req) return s(req) end end
  end
  error(("%s: a service (function(req) or router) expected, got %s"):format(what or "service", t), level or 3)
end

--- lhyper.stack{ a, b, c, service } -> service: a(b(c(service))), so `a` is
-- outermost: it sees the request first and the response last (the order
-- of tower's ServiceBuilder). false entries are skipped.
function M.stack(list)
  if type(list) ~= "table" then error("lhyper.stack: a list { layer, ..., service } expected", 2) end
  local n = #list
  if n == 0 then error("lhyper.stack: the list is empty (the service comes last)", 2) end
  local svc = M.of(list[n], "lhyper.stack: the last element")
  for i = n - 1, 1, -1 do
    local layer = list[i]
    if layer ~= false then
      if type(layer) ~= "function" then
        error(("lhyper.stack: element %d is a %s, not a layer (function(inner) -> service)"):format(i, type(layer)), 2)
      end
      svc = M.of(layer(svc), "lhyper.stack: the service made by layer " .. i)
    end
  end
  return svc
end

--- lhyper.error_status(err) -> the status a raised value answers with, as
-- the server gives it (csrc/lua/lreq.c fail): an error object's `status`
-- field (400..599), a framing parse error's status, else 500.
function M.error_status(err)
  if type(err) == "table" then
    local st = rawget(err, "status")
    if mtype(st) == "integer" and st >= 400 and st <= 599 then return st end
    local kind = rawget(err, "kind")
    local code = rawget(err, "code")
    if kind == "parse" and mtype(code) == "integer" then return core.error_status(code) end
  end
  return 500
end

return M
