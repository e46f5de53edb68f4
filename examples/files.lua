-- Serving the files under a directory, streamed in 64 KiB chunks.
--   lua5.4 examples/files.lua [port] [root]
local lhyper = require "lhyper"

local root = arg[2] or "."
local types = { html = "text/html", txt = "text/plain", css = "text/css", js = "text/javascript",
  json = "application/json", png = "image/png", jpg = "image/jpeg", svg = "image/svg+xml" }

local function not_found() return 404, { ["content-type"] = "text/plain" }, "not found\n" end

local function handler(req)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    return 405, { allow = "GET, HEAD" }, ""
  end
  -- decoded, with an encoded "/" refused; no ".." or hidden segments
  local path = req:path_decoded("reject")
  if not path then return 400, nil, "bad path\n" end
  if path:match("/%.") then return not_found() end
  if path:sub(-1) == "/" then path = path .. "index.html" end
  local f = io.open(root .. path, "rb")
  if f and select(2, f:read(0)) then -- a directory opens, but does not read
    f:close()
    f = nil
  end
  if not f then return not_found() end
  local size = f:seek("end")
  f:seek("set")
  local headers = {
    ["content-type"] = types[path:match("%.(%w+)$")] or "application/octet-stream",
    ["content-length"] = size,
  }
  if req.method == "HEAD" then
    f:close()
    return 200, headers
  end
  -- the iterator closes the file at its end; should the client leave
  -- first, the garbage collector closes it
  return 200, headers, function()
    local chunk = f:read(64 * 1024)
    if not chunk then f:close() end
    return chunk
  end
end

local server = assert(lhyper.server { port = tonumber(arg[1]) or 8080, handler = handler })
print("listening on http://127.0.0.1:" .. server.port)
io.stdout:flush()
lhyper.run()
