--- timeout(seconds, { status = 503 }): the inner service runs in a child
-- task (as under lhyper.timeout); if it has not returned its response
-- within `seconds`, it is cancelled (its <close> variables run, what it
-- opened is closed: outbound requests, tasks, streams) and the request
-- gets `status` with a short text body. Only the wait for the response's
-- head is bounded: a body iterator the service returned in time streams
-- as long as it takes, and a request it upgraded (req:upgrade, a
-- WebSocket) runs on. The work is done in C (core.serve_within,
-- csrc/lua/llayer.c): a service that returns without waiting costs a
-- child task and no timer (resumed at once, its results moved to the
-- request's coroutine; LHYPER_FAST_LAYERS=0: through the plain task
-- start, with a Lua function around core.serve_within).
local core = require "lhyper.core"
local check = require("lhyper.options").check

local type, error, mtype = type, error, math.type
local serve_within, layer_service = core.serve_within, core.layer_service
local fast = core.tuning().fast_layers

local OPTIONS = { status = "number" }

return function(seconds, opts)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds <= 0 or seconds == math.huge then
    error("timeout: seconds must be a positive number", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("timeout: options table expected", 2) end
  opts = opts or {}
  check(OPTIONS, opts, "timeout")
  local status = opts.status or 503
  if mtype(status) ~= "integer" or status < 200 or status > 599 then
    error("timeout: status must be an integer 200..599", 2)
  end
  return function(inner)
    if type(inner) ~= "function" then error("timeout: the inner service must be a function", 2) end
    -- one C function does what the Lua one below does, without its frame
    if fast then return layer_service("timeout", seconds, status, inner) end
    return function(req)
      return serve_within(seconds, status, inner, req)
    end
  end
end
