-- A small REST API: notes kept in memory, JSON in and out (lua-cjson).
--
--   lua5.4 examples/rest.lua [port]
--   curl -s -XPOST localhost:8080/notes -d '{"text":"buy milk"}'
--   curl -s localhost:8080/notes/1
--
--   GET    /notes        every note
--   POST   /notes        a new note from {"text": ...}: 201 and Location
--   GET    /notes/{id}   one note, 404 when there is none
--   PUT    /notes/{id}   replaces its text
--   DELETE /notes/{id}   204
-- Other methods on these paths get 405 with Allow, other paths 404, a body
-- that is not a JSON object with a "text" string 400, one over 64 KiB 413.
local lhyper = require "lhyper"
local cjson = require "cjson"
local L = lhyper.layers

local port = tonumber(arg[1] or os.getenv("PORT") or 8080)

local JSON = { ["content-type"] = "application/json" }

local function reply(status, value, headers)
  return status, headers or JSON, cjson.encode(value) .. "\n"
end

local notes, next_id = {}, 1

-- the request's note text, or nil and a 400 answer's message
local function text_of(req)
  local body = req:read_all()
  if not body then return nil end -- over the body limit: the server answers 413
  local ok, v = pcall(cjson.decode, body)
  if not ok or type(v) ~= "table" or type(v.text) ~= "string" then
    return nil, 'expected a JSON object with a "text" string'
  end
  return v.text
end

local app = lhyper.router()

app:get("/notes", function()
  local list = {}
  for _, note in pairs(notes) do list[#list + 1] = note end
  table.sort(list, function(a, b) return a.id < b.id end)
  return reply(200, setmetatable(list, cjson.array_mt))
end)

app:post("/notes", function(req)
  local text, err = text_of(req)
  if not text then
    if err then return reply(400, { error = err }) end
    return
  end
  local note = { id = next_id, text = text }
  notes[next_id] = note
  next_id = next_id + 1
  return reply(201, note, { ["content-type"] = "application/json", location = "/notes/" .. note.id })
end)

app:route("/notes/{id:%d+}", {
  get = function(req)
    local note = notes[tonumber(req.params.id)]
    if not note then return reply(404, { error = "no note " .. req.params.id }) end
    return reply(200, note)
  end,
  put = function(req)
    local note = notes[tonumber(req.params.id)]
    if not note then return reply(404, { error = "no note " .. req.params.id }) end
    local text, err = text_of(req)
    if not text then
      if err then return reply(400, { error = err }) end
      return
    end
    note.text = text
    return reply(200, note)
  end,
  delete = function(req)
    local id = tonumber(req.params.id)
    if not notes[id] then return reply(404, { error = "no note " .. req.params.id }) end
    notes[id] = nil
    return 204
  end,
})

app:fallback(function(req) return reply(404, { error = "no route for " .. req.path }) end)
app:on_error(function(err, req)
  io.stderr:write(("error in %s %s: %s\n"):format(req.method, req.target, tostring(err)))
  return reply(lhyper.error_status(err), { error = "internal error" })
end)
app:layer(L.body_limit(64 * 1024))

local server = assert(lhyper.server {
  port = port,
  handler = lhyper.stack { L.request_id(), L.access_log { out = io.stderr }, app },
})
io.stderr:write(("notes API on http://127.0.0.1:%d/notes\n"):format(server.port))
lhyper.on_signal("SIGTERM", function() server:close(5) end)
lhyper.on_signal("SIGINT", function() server:close(5) end)
lhyper.run()
