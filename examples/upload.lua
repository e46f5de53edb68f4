-- Uploads streamed to files: the body is written as it arrives, so memory
-- stays flat whatever the size.
--   lua5.4 examples/upload.lua [port] [directory]
--   curl -T big.iso localhost:8080/files/big.iso
--   curl -F file=@photo.jpg localhost:8080/upload
local lhyper = require "lhyper"

local dir = arg[2] or "."

-- a plain file name: no path, no hidden file
local function safe_name(name)
  return name and name:match("^[%w][%w._-]*$") and name
end

-- writes the chunks of an iterator to dir/name; the file is closed however
-- the loop ends (an error, or the client leaving)
local function save(name, chunks)
  local f <close> = assert(io.open(dir .. "/" .. name, "wb"))
  local n = 0
  for chunk in chunks do
    assert(f:write(chunk))
    n = n + #chunk
  end
  return n
end

local function handler(req)
  if req.method == "PUT" and req.path:match("^/files/") then
    local name = safe_name((req:path_decoded() or ""):match("^/files/(.*)$"))
    if not name then return 400, nil, "bad file name\n" end
    local n = save(name, req:body())
    return 201, { ["content-type"] = "text/plain" }, ("stored %s (%d bytes)\n"):format(name, n)
  elseif req.method == "POST" and req.path == "/upload" then
    local stored = {}
    for part in assert(req:multipart { max_file = 1024 * 1024 * 1024 }) do
      local name = safe_name(part.filename)
      if name then
        stored[#stored + 1] = { name = name, bytes = save(name, part:body()) }
      end
    end
    return lhyper.json(201, stored)
  end
  return 404, nil, "not found\n"
end

local server = assert(lhyper.server { port = tonumber(arg[1]) or 8080, handler = handler })
print("listening on http://127.0.0.1:" .. server.port)
io.stdout:flush()
lhyper.run()
