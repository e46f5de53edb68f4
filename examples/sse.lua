-- Server-sent events and long polling over channels: every subscriber has
-- a channel of its own and a publish sends to each; a subscriber too slow
-- to keep 16 messages is dropped. A subscription ends with its request,
-- whether its stream ended or its client left (lhyper.defer).
--   lua5.4 examples/sse.lua [port]
--   curl -N localhost:8080/events                 (in one terminal)
--   curl -d 'hello' localhost:8080/publish        (in another)
--   curl 'localhost:8080/poll?timeout=25'         (long polling: the next message)
local lhyper = require "lhyper"

local subscribers = {} -- channel -> true

local function subscribe()
  local ch = lhyper.channel(16)
  subscribers[ch] = true
  lhyper.defer(function() subscribers[ch] = nil end) -- when the request ends
  return ch
end

local function publish(msg)
  local n = 0
  for ch in pairs(subscribers) do
    if ch:send(msg, 0) then -- timeout 0: never waits for a slow subscriber
      n = n + 1
    else
      subscribers[ch] = nil
      ch:close() -- its stream ends
    end
  end
  return n
end

local function handler(req)
  local query = assert(req:query_params())
  if req.path == "/events" then
    local ch = subscribe()
    return 200, { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache" }, function()
      local msg, err = ch:receive(15)
      if msg then return "data: " .. msg:gsub("\n", "\ndata: ") .. "\n\n" end
      if err then return ": keep-alive\n\n" end -- 15 s without news: a comment keeps proxies patient
      return nil -- the channel was closed: the stream ends
    end
  elseif req.path == "/poll" then
    local msg = subscribe():receive(tonumber(query.timeout) or 25)
    if not msg then return 204 end
    return 200, { ["content-type"] = "text/plain" }, msg
  elseif req.path == "/publish" and req.method == "POST" then
    local n = publish(assert(req:read_all(64 * 1024)))
    return 200, { ["content-type"] = "text/plain" }, n .. " subscribers\n"
  elseif req.path == "/subscribers" then
    local n = 0
    for _ in pairs(subscribers) do n = n + 1 end
    return 200, { ["content-type"] = "text/plain" }, n .. "\n"
  end
  return 404, { ["content-type"] = "text/plain" }, "not found\n"
end

local server = assert(lhyper.server { port = tonumber(arg[1]) or 8080, handler = handler })
print("listening on http://127.0.0.1:" .. server.port)
io.stdout:flush()
lhyper.run()
