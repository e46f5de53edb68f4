-- A streaming reverse proxy: each request is forwarded to the upstream with
-- lhyper.request, from inside the server handler. Both bodies flow through
-- iterators: the upstream body is read only as fast as the client takes it,
-- and the client's upload only as fast as the upstream takes it, so memory
-- stays flat whatever the size. The upstream exchange belongs to the
-- handler: when the client leaves, the handler is cancelled and the
-- upstream connection closed with it, which cancels the upstream's handler
-- in turn. An upstream silent for 60 s (read_timeout) gives 504.
--
--   lua5.4 examples/proxy.lua [port] [upstream]
--   lua5.4 examples/proxy.lua 8080 http://127.0.0.1:8081
local lhyper = require "lhyper"

local port = tonumber(arg[1] or 8080)
local upstream = (arg[2] or "http://127.0.0.1:8081"):gsub("/$", "")

-- RFC 9110 7.6.1: hop-by-hop fields are not forwarded; Host and the framing
-- are set again for the next hop
local hop = {
  connection = true, ["proxy-connection"] = true, ["keep-alive"] = true, te = true,
  trailer = true, ["transfer-encoding"] = true, upgrade = true, host = true,
}

local function forward_headers(headers, extra)
  local skip = {}
  for _, v in ipairs(headers:get_all("connection")) do
    for name in v:gmatch("[^,%s]+") do skip[name:lower()] = true end
  end
  local out = {}
  for name, value in headers:each() do
    if not hop[name] and not skip[name] then out[#out + 1] = { name, value } end
  end
  for _, pair in ipairs(extra or {}) do out[#out + 1] = pair end
  return out
end

local client = lhyper.client { pool_max_idle_per_host = 64, connect_timeout = 5, read_timeout = 60 }

local function handler(req)
  local has_body = (tonumber(req.headers["content-length"]) or 0) > 0 or req.headers["transfer-encoding"]
  local res, err, kind = client:request {
    method = req.method,
    url = upstream .. req.target,
    headers = forward_headers(req.headers, {
      { "x-forwarded-for", req.remote_addr },
      { "x-forwarded-host", req.headers.host },
    }),
    body = has_body and req:body() or nil,
  }
  if not res then
    return kind == "timeout" and 504 or 502, { ["content-type"] = "text/plain" },
      "upstream " .. kind .. ": " .. tostring(err) .. "\n"
  end
  -- the upstream's length (if any) frames our answer too; without one the
  -- server chunks it. A failure mid-body raises in the iterator, which
  -- aborts the client's connection: a truncated body is never passed off
  -- as complete.
  return res.status, forward_headers(res.headers), res:body()
end

local server = assert(lhyper.server { host = "127.0.0.1", port = port, handler = handler })
print(("proxy listening on http://127.0.0.1:%d -> %s"):format(server.port, upstream))
io.stdout:flush()
lhyper.run()
