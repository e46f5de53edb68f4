-- An app built with lhyper.router, lhyper.stack and lhyper.layers, for
-- spec/router_spec.lua and spec/layers_spec.lua. Same protocol as
-- spec/app.lua: options as a Lua table literal in arg[1], prints
-- "PORT <port> PID <pid> PGID <pgid>" once listening, GET /__quit stops it.
-- Options (none required):
--   trailing_slash  the main router's mode
--   on_error        true: the main router answers raised errors itself
--   log, log_format access_log to the file `log` ("combined", "json")
--   metrics         true: the metrics layer at /metrics
--   normalize       true: normalize_path in front of the router
--   server          extra lhyper.server options (a table)
local lhyper = require "lhyper"
local support = require "app_support"
local L = lhyper.layers

local opts = assert(load("return " .. (arg[1] or "{}"), "=options", "t", {}))()

local TEXT = { ["content-type"] = "text/plain" }

-- what a route saw, one "key=value" a line, keys sorted
local function show(tag)
  return function(req)
    local out = { "tag=" .. tag, "method=" .. req.method, "path=" .. req.path,
      "route=" .. tostring(req.route), "id=" .. tostring(req.id) }
    local names = {}
    for k in pairs(req.params or {}) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do out[#out + 1] = "param." .. k .. "=" .. req.params[k] end
    return 200, TEXT, table.concat(out, "\n") .. "\n"
  end
end

local app = lhyper.router { trailing_slash = opts.trailing_slash }

app:get("/", function() return 200, TEXT, "Hello, World!" end)
app:get("/users", show("users"))
app:post("/users", function(req)
  local body = assert(req:read_all(1024))
  return 201, TEXT, "created " .. body
end)
-- the more specific routes added last: static beats parameter beats tail
-- whatever the order
app:get("/users/{id}", show("user"))
app:put("/users/{id}", show("user-put"))
app:get("/users/me", show("me"))
app:get("/users/{id}/posts/{post}", show("post"))
app:get("/files/{*path}", show("file"))
app:get("/files/readme", show("readme"))
app:get("/n/{slug}", show("slug"))
app:get("/n/{id:%d+}", show("number"))
app:route("/multi", { get = show("multi-get"), put = show("multi-put"), delete = show("multi-delete") })
app:any("/any", show("any"))
app:head("/head-only", function() return 200, { ["x-head"] = "own" }, "not sent" end)
app:get("/slash/", show("slash"))
app:get("/noslash", show("noslash"))

-- errors
app:get("/raise", function() error("handler failed on purpose") end)
app:get("/raise-status", function()
  local err = lhyper.error("user_service", "teapot on purpose")
  err.status = 418
  error(err)
end)
app:post("/read-small", function(req)
  local body = assert(req:read_all(8))
  return 200, TEXT, body
end)

-- a streamed body: ?n chunks of "chunk\n", ?delay seconds between them
app:get("/stream", function(req)
  local n = tonumber(req.query and req.query:match("n=(%d+)")) or 3
  local delay = tonumber(req.query and req.query:match("delay=([%d.]+)"))
  local i = 0
  return 200, TEXT, function()
    if i == n then return nil end
    i = i + 1
    if delay then lhyper.sleep(delay) end
    return "chunk " .. i .. "\n"
  end
end)

-- req:on_end: what each exchange's end reported, by kind of response
local ended = {}
app:get("/oe/{kind}", function(req)
  local kind = req.params.kind
  req:on_end(function(r, complete, status, bytes)
    ended[#ended + 1] = table.concat({ kind, tostring(complete), tostring(status), tostring(bytes),
      tostring(r == req) }, ":")
  end)
  if kind == "str" then return 200, TEXT, "hello" end
  if kind == "nothing" then return end
  if kind == "raise" then error("raised before answering") end
  local i, n = 0, kind == "slow" and 100 or 3
  return 200, TEXT, function()
    i = i + 1
    if kind == "midraise" and i == 2 then error("raised mid-body") end
    if kind == "slow" then lhyper.sleep(0.05) end
    if i > n then return nil end
    return "chunk" .. i .. "\n"
  end
end)
app:get("/oe-seen", function()
  local out = table.concat(ended, "\n")
  ended = {}
  return 200, TEXT, out
end)

-- a nested router with its own fallback, and a nested plain service
local api = lhyper.router()
api:get("/", show("api-root"))
api:get("/items/{item}", show("api-item"))
api:post("/items", show("api-create"))
api:fallback(function(req) return 404, TEXT, "api has no " .. req.path .. "\n" end)
app:nest("/api/{version}", api)
app:nest("/static", function(req) return 200, TEXT, "static sees " .. req.path .. "\n" end)

-- layers scoped to routes or to sub-routers
local limited = lhyper.router()
limited:layer(L.rate_limit { rate = 1, burst = 2, key = function(req) return req.headers["x-client"] end })
limited:get("/", function() return 200, TEXT, "within the limit\n" end)
app:nest("/rl", limited)

local cors = lhyper.router()
cors:layer(L.cors {
  origins = { "https://a.example", "https://b.example" }, credentials = true,
  expose = { "x-total" }, max_age = 600, headers = { "content-type", "x-token" },
})
cors:get("/data", function() return 200, { ["x-total"] = "3", vary = "accept" }, "data\n" end)
cors:put("/data", function() return 204, nil, nil end)
app:nest("/cors", cors)

local open = lhyper.router()
open:layer(L.cors {})
open:get("/data", function() return 200, TEXT, "open data\n" end)
app:nest("/open", open)

app:post("/limit", lhyper.stack {
  L.body_limit(10),
  function(req)
    local body = req:read_all()
    if not body then return end -- over the limit: 413
    return 200, TEXT, "got " .. #body .. " bytes\n"
  end,
})
app:post("/limit-raise", lhyper.stack {
  L.body_limit(10),
  function(req)
    local n = 0
    for chunk in req:body() do n = n + #chunk end
    return 200, TEXT, "got " .. n .. " bytes\n"
  end,
})

app:get("/sh", lhyper.stack {
  L.set_headers { ["x-frame-options"] = "DENY", ["cache-control"] = "no-store" },
  function() return 200, { ["Cache-Control"] = "max-age=5", ["content-type"] = "text/plain" }, "sh\n" end,
})
app:get("/sh-override", lhyper.stack {
  L.set_headers({ ["cache-control"] = "no-store" }, { override = true }),
  function() return 200, { { "Cache-Control", "max-age=5" }, { "x-a", "1" } }, "sh\n" end,
})

if opts.on_error then
  app:on_error(function(err, req)
    return lhyper.error_status(err), { ["content-type"] = "text/plain", ["x-error"] = "handled" },
      "on_error: " .. tostring(err):gsub("\n.*", "") .. " (" .. tostring(req.route) .. ")\n"
  end)
end

local quit = support.quit -- the harness's stop route, ahead of everything

local stack = { quit, L.request_id() }
if opts.log then stack[#stack + 1] = L.access_log { out = opts.log, format = opts.log_format } end
if opts.metrics then stack[#stack + 1] = L.metrics() end
if opts.normalize then stack[#stack + 1] = L.normalize_path() end
stack[#stack + 1] = app

local config = { host = "127.0.0.1", port = 0, handler = lhyper.stack(stack) }
for k, v in pairs(opts.server or {}) do config[k] = v end
local server = assert(lhyper.server(config))

support.announce(server)

lhyper.run()
