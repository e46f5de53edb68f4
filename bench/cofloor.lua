-- bench/cofloor.lua: what a coroutine parked in a pull loop costs Lua 5.4,
-- with nothing of lhyper's: the least a server pays per WebSocket (or per
-- stream) whose handler is written `for msg in ws:messages() do ... end`.
--   lua5.4 bench/cofloor.lua [N] [DEPTH]
-- N coroutines (10000) each call a chain of DEPTH Lua functions (0) that ends
-- in a C function, as a handshake would, then park in a generic for whose
-- iterator is coroutine.yield (a C function, as ws:messages()'s is). Bytes
-- per coroutine come from collectgarbage("count") after full collections:
-- the thread, its stack, its CallInfo list and its closure, and one table
-- standing for the ws.
local n = tonumber(arg[1]) or 10000
local depth = tonumber(arg[2]) or 0

local function chain(k)
  if k == 0 then return string.format("%d", k) end
  local a, b, c, d, e, f = 1, 2, 3, 4, 5, 6
  return chain(k - 1), a, b, c, d, e, f
end

local function handler(req)
  chain(depth)
  local ws = { req = req }
  for msg, kind in coroutine.yield, ws do
    if msg == nil or kind == nil then break end
  end
end

collectgarbage("collect"); collectgarbage("collect")
local before = collectgarbage("count")
local parked = {}
for i = 1, n do
  local co = coroutine.create(handler)
  assert(coroutine.resume(co, i))
  parked[i] = co
end
collectgarbage("collect"); collectgarbage("collect")
local per = (collectgarbage("count") - before) * 1024 / n
print(("%d coroutines parked in a pull loop (handshake depth %d): %.0f bytes each"):format(n, depth, per))
