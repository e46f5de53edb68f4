-- An app for spec/static_spec.lua and spec/compression_spec.lua:
-- lhyper.static under /files (app:nest) and at /plain (no index, dotfiles),
-- and routes whose responses the compression layer sees. Same protocol as
-- spec/app.lua: options as a Lua table literal in arg[1] (root: the
-- directory served; level, min_size: the compression layer's), prints
-- "PORT <port> PID <pid> PGID <pgid>" once listening, GET /__quit stops it.
local lhyper = require "lhyper"
local support = require "app_support"
local L = lhyper.layers

local opts = assert(load("return " .. (arg[1] or "{}"), "=options", "t", {}))()

local TEXT = { ["content-type"] = "text/plain; charset=utf-8" }
local big = ("lhyper compresses what it may. "):rep(200)

local app = lhyper.router()
app:nest("/files", lhyper.static(opts.root, { max_age = 60 }))
app:nest("/plain", lhyper.static(opts.root, { index = false, dotfiles = true, chunk = 1000 }))
app:get("/big", function() return 200, TEXT, big end)
app:get("/small", function() return 200, TEXT, "tiny" end)
app:get("/tagged", function()
  return 200, { ["content-type"] = "application/json", etag = '"v1"', vary = "origin" }, ('{"a":1}'):rep(100)
end)
app:get("/image", function() return 200, { ["content-type"] = "image/png" }, big end)
app:get("/no-transform", function()
  return 200, { ["content-type"] = "text/plain", ["cache-control"] = "no-transform" }, big
end)
app:get("/encoded", function() return 200, { ["content-type"] = "text/plain", ["content-encoding"] = "br" }, big end)
app:get("/sse", function() return 200, { ["content-type"] = "text/event-stream" }, big end)
-- a stream: its chunks, then trailers; with ?wait=1 it waits between chunks
app:get("/stream", function(req)
  local i, wait = 0, req:query_params().wait
  return 200, { { "Content-Type", "application/json" }, { "Content-Length", nil } }, function()
    i = i + 1
    if i > 50 then return nil, { ["x-done"] = "yes" } end
    if wait and i > 1 then lhyper.sleep(0.02) end
    return ('{"n":%d,"pad":"%s"}\n'):format(i, ("x"):rep(40))
  end
end)
-- a stream that raises halfway: the deflater must go with the exchange
app:get("/broken", function()
  local i = 0
  return 200, { ["content-type"] = "text/plain" }, function()
    i = i + 1
    if i > 3 then error("the stream broke") end
    return big
  end
end)

-- bodies already encoded (the layer leaves them): for the client's decompress
local core = require "lhyper.core"
local gz = core.deflater("gzip"):push(("abc"):rep(3000), "finish")
local raw_deflate = core.deflater("deflate"):push(("abc"):rep(3000), "finish"):sub(3, -5)
local coded = {
  cut = { "gzip", gz:sub(1, #gz - 10) },
  bad = { "gzip", gz:sub(1, 12) .. ("\255"):rep(8) .. gz:sub(21) },
  raw = { "deflate", raw_deflate }, -- raw deflate, no zlib header: as some servers send
  two = { "gzip, gzip", "x" },
  empty = { "gzip", "" },
}
app:get("/coded/{name}", function(req)
  local c = coded[req.params.name]
  return 200, { ["content-type"] = "application/octet-stream", ["content-encoding"] = c[1] }, c[2]
end)

local server = assert(lhyper.server {
  host = "127.0.0.1", port = 0,
  handler = support.quit(lhyper.stack { L.compression { level = opts.level, min_size = opts.min_size }, app }),
})
support.announce(server)
lhyper.run()
