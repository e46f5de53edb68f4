-- An app for spec/limit_layers_spec.lua: the timeout and concurrency_limit
-- layers on router routes, through lhyper.stack and router:layer. Same
-- protocol as spec/app.lua: options as a Lua table literal in arg[1],
-- prints "PORT <port> PID <pid> PGID <pgid>" once listening, GET /__quit
-- stops it. Options: log (access_log, JSON lines, to that file, outermost).
local lhyper = require "lhyper"
local support = require "app_support"
local L = lhyper.layers

local opts = assert(load("return " .. (arg[1] or "{}"), "=options", "t", {}))()

local TEXT = { ["content-type"] = "text/plain" }
local app = lhyper.router()

-- what happened, by name: counters the spec reads through /stats
local count = {}
local function bump(k) count[k] = (count[k] or 0) + 1 end
app:get("/stats", function()
  local names = {}
  for k in pairs(count) do names[#names + 1] = k end
  table.sort(names)
  local out = {}
  for _, k in ipairs(names) do out[#out + 1] = k .. "=" .. count[k] end
  return 200, TEXT, table.concat(out, "\n") .. "\n"
end)
app:get("/reset", function() count = {}; return 200, TEXT, "reset\n" end)

-- a <close> variable that counts `name` when it runs
local function closer(name)
  return setmetatable({}, { __close = function() bump(name) end })
end

-- --- timeout ---
local T = L.timeout(0.1)
app:get("/t/fast", lhyper.stack { T, function() return 200, TEXT, "fast\n" end })
-- waits a little, well within the budget (the layer's timer runs then)
app:get("/t/brief", lhyper.stack { T, function() lhyper.sleep(0.01); return 200, TEXT, "brief\n" end })
app:get("/t/sleep", lhyper.stack { T, function()
  local _ <close> = closer("sleep_closed")
  lhyper.sleep(2)
  bump("sleep_finished")
  return 200, TEXT, "slept\n"
end })
-- an outbound request to a server that never answers (the spec's socket)
app:get("/t/upstream", lhyper.stack { T, function(req)
  local port = req.query:match("port=(%d+)")
  local _ <close> = closer("upstream_closed")
  local res, err = lhyper.request { url = "http://127.0.0.1:" .. port .. "/never" }
  bump("upstream_returned")
  return 200, TEXT, tostring(res and res.status or err)
end })
-- a head in time, a body longer than the budget: not cut
app:get("/t/stream", lhyper.stack { T, function()
  local i = 0
  return 200, TEXT, function()
    i = i + 1
    if i > 4 then return nil end
    lhyper.sleep(0.1)
    return "part " .. i .. "\n"
  end
end })
-- upgraded in time: the stream outlives the budget
app:get("/t/upgrade", lhyper.stack { T, function(req)
  local stream = req:upgrade({ upgrade = "echo", connection = "upgrade" })
  lhyper.sleep(0.3)
  stream:write("still here\n")
  local data = stream:read()
  stream:write("echo " .. tostring(data))
  stream:close()
end })
app:get("/t/raise", lhyper.stack { T, function()
  local err = lhyper.error("user_service", "teapot")
  err.status = 418
  error(err)
end })
-- what the layer raises again, caught outside it
local function catcher(inner)
  return function(req)
    local ok, a, b, c = pcall(inner, req)
    if ok then return a, b, c end
    return 500, TEXT, "caught: " .. tostring(a)
  end
end
app:get("/t/raise-text", lhyper.stack { catcher, T, function()
  lhyper.sleep(0.01)
  error("plain failure")
end })
app:get("/t/raise-now", lhyper.stack { catcher, T, function() error("failed at once") end })
app:get("/t/nothing", lhyper.stack { T, function() end })
app:get("/t/status", lhyper.stack { L.timeout(0.1, { status = 504 }), function()
  lhyper.sleep(2)
  return 200, TEXT, "late\n"
end })
-- a request body read in the child task, in time
app:post("/t/echo", lhyper.stack { L.timeout(5), function(req)
  return 200, TEXT, assert(req:read_all(1 << 20))
end })
-- the layer on a whole router, under a nest
local sub = lhyper.router()
sub:layer(L.timeout(0.1))
sub:get("/fast", function() return 200, TEXT, "sub fast\n" end)
sub:get("/slow", function() lhyper.sleep(2); return 200, TEXT, "sub slow\n" end)
app:nest("/sub", sub)

-- --- concurrency_limit ---
-- a gate the held handlers wait behind until /gate/open
local gate, open = lhyper.condition(), false
app:get("/gate/open", function() open = true; gate:broadcast(); return 200, TEXT, "open\n" end)
app:get("/gate/close", function() open = false; return 200, TEXT, "closed\n" end)

-- counts arrivals (outside the limit), and calls in flight inside it
local inflight, max_inflight = 0, 0
local function arrivals(inner)
  return function(req)
    bump("arrived")
    return inner(req)
  end
end
local function held(req)
  inflight = inflight + 1
  if inflight > max_inflight then max_inflight = inflight end
  count.max_inflight = max_inflight
  local _ <close> = setmetatable({}, { __close = function() inflight = inflight - 1 end })
  bump("entered")
  while not open do gate:wait() end
  return 200, TEXT, "served\n"
end
app:get("/c/reset", function()
  max_inflight, count.max_inflight = inflight, nil
  return 200, TEXT, "reset\n"
end)
app:get("/c/held", lhyper.stack { arrivals, L.concurrency_limit(3, { queue = 5 }), held })
-- one slot, two places in the queue
app:get("/q/held", lhyper.stack { arrivals, L.concurrency_limit(1, { queue = 2 }), held })
-- a slot freed by a timeout (the limit inside or outside the timeout) and
-- by a raise
local sleepy = function()
  local _ <close> = closer("sleepy_closed")
  lhyper.sleep(2)
  return 200, TEXT, "late\n"
end
app:get("/tc/inside", lhyper.stack { L.timeout(0.1), L.concurrency_limit(1), sleepy })
app:get("/tc/outside", lhyper.stack { L.concurrency_limit(1), L.timeout(0.1), sleepy })
app:get("/tc/raise", lhyper.stack { L.concurrency_limit(1), function() error("raised on purpose") end })

-- the harness's stop route, ahead of everything
local stack = { support.quit }
if opts.log then stack[#stack + 1] = L.access_log { out = opts.log, format = "json", flush = 0.1 } end
stack[#stack + 1] = app

local server = assert(lhyper.server { host = "127.0.0.1", port = 0, handler = lhyper.stack(stack) })

support.announce(server)

lhyper.run()
