-- The app behind the request-helper specs (query, path, form, JSON,
-- cookies, multipart). Usage: lua5.4 spec/helpers_app.lua
-- Writes "PORT <port>" on stderr once listening; GET /__quit stops it.
local lhyper = require "lhyper"

local routes = {}

local function text(status, s) return status, { ["content-type"] = "text/plain" }, s end

routes["/query"] = function(req)
  return lhyper.json(200, assert(req:query_params()))
end

-- the path decoded; ?mode= keep|decode|reject
routes["/path"] = function(req)
  local mode = (req.query or ""):match("mode=(%a+)")
  local p, err = req:path_decoded(mode)
  if not p then return text(400, "error: " .. tostring(err)) end
  return text(200, p)
end

routes["/form"] = function(req)
  local max = tonumber((req.query or ""):match("max=(%d+)"))
  return lhyper.json(200, assert(req:form(max)))
end

-- every value req:form returns, for the nil, err, kind checks
routes["/form/pack"] = function(req)
  local r = table.pack(req:form())
  return lhyper.json(200, { n = r.n, first = r[1] == nil and "nil" or type(r[1]),
    kind = r[3], err_kind = r[2] and r[2].kind, status = r[2] and r[2].status,
    what = r[2] and r[2].what, message = r[2] and r[2].message })
end

routes["/json"] = function(req)
  local max = tonumber((req.query or ""):match("max=(%d+)"))
  local v = assert(req:json(max))
  return lhyper.json(201, { got = v }, { ["x-lua-type"] = type(v) })
end

-- the numbers' Lua subtypes after decoding
routes["/json/types"] = function(req)
  local v = assert(req:json())
  local out = {}
  for k, x in pairs(v) do out[k] = math.type(x) or type(x) end
  return lhyper.json(200, out)
end

-- read_all under assert: over max, the error's 413 is the answer
routes["/readall"] = function(req)
  local max = tonumber((req.query or ""):match("max=(%d+)")) or 10
  return text(200, assert(req:read_all(max)))
end

routes["/cookies"] = function(req)
  local all = req:cookies()
  return lhyper.json(200, { all = all, sid = req:cookie("sid") or "none" })
end

routes["/setcookie"] = function()
  return 200, {
    ["set-cookie"] = {
      lhyper.cookie("sid", "abc123", { http_only = true, same_site = "Lax", path = "/", max_age = 3600 }),
      lhyper.cookie("theme", "dark", { expires = 4102444800 }),
    },
    ["content-type"] = "text/plain",
  }, "set"
end

-- each part: name, filename, content type, size, and the body when small
-- (a file part is streamed: never held whole)
routes["/multipart"] = function(req)
  local q = req.query or ""
  local opts = {}
  for k, v in q:gmatch("(max_[%a_]+)=(%d+)") do opts[k] = tonumber(v) end
  local parts = {}
  for part in assert(req:multipart(opts)) do
    local n, head, small, tail = 0, nil, {}, ""
    if part.filename then
      for chunk in part:body() do
        if n < 64 then small[#small + 1] = chunk:sub(1, 64 - n) end
        n = n + #chunk
        tail = (tail .. chunk:sub(-64)):sub(-64)
      end
      head = table.concat(small):sub(1, 64)
    else
      head = assert(part:read_all())
      n = #head
    end
    parts[#parts + 1] = { name = part.name, filename = part.filename or false,
      content_type = part.content_type, size = n, head = head, tail = part.filename and tail or nil,
      header_names = (function()
        local t = {}
        for k in pairs(part.headers) do t[#t + 1] = k end
        table.sort(t)
        return table.concat(t, ",")
      end)() }
  end
  return lhyper.json(200, parts)
end

-- skips every part's body: the next part is found all the same
routes["/multipart/names"] = function(req)
  local names = {}
  for part in assert(req:multipart()) do names[#names + 1] = part.name end
  return text(200, table.concat(names, ","))
end

-- reads a part after moving past it: a programmer error (500)
routes["/multipart/passed"] = function(req)
  local parts = assert(req:multipart())
  local first = parts()
  parts()
  for _ in first:body() do end
  return text(200, "read")
end

local server
routes["/__quit"] = function()
  server:close(0)
  return 200, { connection = "close" }, "bye"
end

server = assert(lhyper.server {
  host = "127.0.0.1", port = 0,
  on_error = function(err) io.stderr:write("on_error: ", tostring(err), "\n") end,
  handler = function(req)
    local route = routes[req.path] or (req.path:sub(1, 6) == "/path/" and routes["/path"])
    if not route then return text(404, "no route") end
    return route(req)
  end,
})
io.stderr:write("PORT ", server.port, "\n")
io.stderr:flush()
lhyper.run()
