--- rate_limit{ rate, burst, key, max_keys }: a token bucket per key.
-- `rate` tokens a second flow into each bucket, which holds at most
-- `burst` (default: rate, at least 1); a request takes one token or gets
-- 429 with Retry-After (whole seconds until a token is back). `key(req)`
-- names the bucket (default: the peer address; nil: not limited). At most
-- `max_keys` buckets (default 10000) are kept: when a new key finds them
-- all taken, full ones are dropped first, then any, down to 7/8 of
-- max_keys (a dropped bucket starts full again).
local core = require "lhyper.core"
local check = require("lhyper.options").check

local type, error, next, ceil, tostring = type, error, next, math.ceil, tostring
local now = core.now

local function positive(v, what)
  if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
    error("rate_limit: " .. what .. " must be a positive number", 3)
  end
  return v
end

local function by_peer(req) return req.remote_addr end

local OPTIONS = { rate = "number", burst = "number", key = "function", max_keys = "number" }

return function(opts)
  if type(opts) ~= "table" then error("rate_limit: options table { rate = n, ... } expected", 2) end
  check(OPTIONS, opts, "rate_limit")
  local rate = positive(opts.rate, "rate")
  local burst = opts.burst and positive(opts.burst, "burst") or (rate > 1 and rate or 1)
  if burst < 1 then error("rate_limit: burst must be at least 1", 2) end
  local key = opts.key or by_peer
  if type(key) ~= "function" then error("rate_limit: key must be a function(req)", 2) end
  local max_keys = opts.max_keys or 10000
  if math.type(max_keys) ~= "integer" or max_keys < 1 then
    error("rate_limit: max_keys must be a positive integer", 2)
  end
  local tokens, last = {}, {} -- per key: tokens left when last taken, and when
  local nkeys = 0
  -- what a prune leaves at most: an eighth of the room is made at once, so
  -- that a flood of new keys costs one walk per max_keys / 8 of them, not
  -- a walk over every bucket each
  local keep = max_keys - (max_keys + 7) // 8

  -- a new key found max_keys buckets: full ones go first (they are as good
  -- as new), then any
  local function prune(t)
    for k, left in next, tokens do
      if left + (t - last[k]) * rate >= burst then
        tokens[k], last[k] = nil, nil
        nkeys = nkeys - 1
      end
    end
    if nkeys <= keep then return end
    for k in next, tokens do
      tokens[k], last[k] = nil, nil
      nkeys = nkeys - 1
      if nkeys <= keep then return end
    end
  end

  return function(inner)
    return function(req)
      local k = key(req)
      if k == nil then return inner(req) end
      local t = now()
      local left = tokens[k]
      if left == nil then
        if nkeys >= max_keys then prune(t) end
        nkeys = nkeys + 1
        left = burst
      else
        left = left + (t - last[k]) * rate
        if left > burst then left = burst end
      end
      last[k] = t
      if left >= 1 then
        tokens[k] = left - 1
        return inner(req)
      end
      tokens[k] = left
      local wait = ceil((1 - left) / rate)
      if wait < 1 then wait = 1 end
      return 429, { ["retry-after"] = tostring(wait), ["content-type"] = "text/plain" },
        "too many requests\n"
    end
  end
end
