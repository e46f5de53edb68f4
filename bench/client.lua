-- bench/client.lua: lhyper's HTTP client as a load generator. CONC tasks share
-- one client (keep-alive pool) and send GETs to URL until COUNT requests are
-- done or SECONDS have passed, whichever comes first; prints one line:
--   requests=N errors=N seconds=S rps=R connections=C
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     lua5.4 bench/client.lua URL [CONC=50] [COUNT=500000] [SECONDS=10]
local lhyper = require "lhyper"

local url = assert(arg[1], "usage: bench/client.lua URL [CONC] [COUNT] [SECONDS]")
local conc = tonumber(arg[2]) or 50
local count = tonumber(arg[3]) or 500000
local seconds = tonumber(arg[4]) or 10

local client = lhyper.client{ pool_max_idle_per_host = conc }
local started, ok, errors, running = 0, 0, 0, conc
local t0, deadline

local function worker()
  while started < count and lhyper.now() < deadline do
    started = started + 1
    local res = client:request{ url = url }
    if res and res.status == 200 and res:read_all() then ok = ok + 1 else errors = errors + 1 end
  end
  running = running - 1
  if running == 0 then
    local dt = lhyper.now() - t0
    print(("requests=%d errors=%d seconds=%.2f rps=%.0f connections=%d"):format(
      ok, errors, dt, ok / dt, client:stats().connections))
    lhyper.stop()
  end
end

lhyper.spawn(function()
  -- warm the pool: one request per task, not counted
  local warm = 0
  for _ = 1, conc do
    lhyper.spawn(function()
      local res = client:request{ url = url }
      if res then res:read_all() end
      warm = warm + 1
    end)
  end
  while warm < conc do lhyper.sleep(0.01) end
  t0 = lhyper.now()
  deadline = t0 + seconds
  for _ = 1, conc do lhyper.spawn(worker) end
end)
lhyper.run()
