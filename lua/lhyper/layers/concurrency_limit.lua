--- concurrency_limit(n, { queue = 0 }): at most `n` calls of the inner
-- service at once, over every service the layer wraps (on a router: all
-- its routes together). A call holds its slot until the inner service
-- returns, raises or is cancelled (a body iterator it returned runs after,
-- without a slot). Past `n`, up to `queue` requests wait (yield, first
-- come first served); past that, 503 "overloaded" at once (load shedding).
--
-- A slot is handed from the call that ends straight to the oldest waiter
-- (no later request takes it in between). State, kept in upvalues:
--   active   slots held: calls running, and slots handed to waiters that
--            have not run yet (permits)
--   waiting  requests in the queue, woken or not
--   permits  of those, the ones handed a slot (= signalled in cond)
-- active < n only when no waiter lacks a permit.
local core = require "lhyper.core"
local check = require("lhyper.options").check

local type, error, mtype, setmetatable = type, error, math.type, setmetatable

local OPTIONS = { queue = "number" }
local SHED_HEADERS = { ["content-type"] = "text/plain", ["retry-after"] = "1" }

return function(n, opts)
  if mtype(n) ~= "integer" or n < 1 then error("concurrency_limit: n must be a positive integer", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("concurrency_limit: options table expected", 2) end
  opts = opts or {}
  check(OPTIONS, opts, "concurrency_limit")
  local queue = opts.queue or 0
  if mtype(queue) ~= "integer" or queue < 0 then
    error("concurrency_limit: queue must be an integer >= 0", 2)
  end
  local active, waiting, permits = 0, 0, 0
  local cond = core.condition()

  -- the end of a call (returned, raised or cancelled): its slot goes to
  -- the oldest waiter without one, or is free
  local slot = setmetatable({}, { __close = function()
    if waiting > permits then
      permits = permits + 1
      cond:signal()
    else
      active = active - 1
    end
  end })

  -- a waiter leaves the queue, with its permit taken or not; one that was
  -- handed a slot and went away (its client left) before it ran leaves a
  -- permit nobody will take if no waiter lacks one: the slot is free
  -- (else the condition passes the wake-up on to the next waiter)
  local leave = setmetatable({}, { __close = function()
    waiting = waiting - 1
    if permits > waiting then
      permits = permits - 1
      active = active - 1
    end
  end })

  local function wait_turn()
    waiting = waiting + 1
    local _ <close> = leave
    repeat cond:wait() until permits > 0
    permits = permits - 1
  end

  return function(inner)
    if type(inner) ~= "function" then error("concurrency_limit: the inner service must be a function", 2) end
    return function(req)
      if active < n then
        active = active + 1
      elseif waiting < queue then
        wait_turn()
      else
        return 503, SHED_HEADERS, "overloaded\n"
      end
      local _ <close> = slot
      return inner(req)
    end
  end
end
