-- A small REST API: notes kept in memory, JSON in and out.
--
--   lua5.4 examples/rest.lua [port]
--   curl -s localhost:8080/notes -H 'content-type: application/json' -d '{"text":"buy milk"}'
--   curl -s localhost:8080/notes/1
--
--   GET    /notes        every note
--   POST   /notes        a new note from {"text": ...}: 201 and Location
--   GET    /notes/{id}   one note, 404 when there is none
--   PUT    /notes/{id}   replaces its text
--   DELETE /notes/{id}   204
-- Other methods on these paths get 405 with Allow, other paths 404; a body
-- that is not JSON 400, not a JSON object with a "text" string 422, not
-- application/json 415, over 64 KiB 413 (the router's on_error answers
-- each with a JSON error).
local lhyper = require "lhyper"
local L = lhyper.layers

local port = tonumber(arg[1] or os.getenv("PORT") or 8080)

local notes, next_id = {}, 1

local function no_note(req) return lhyper.json(404, { error = "no note " .. req.params.id }) end

-- the request's note text; raises an error object with a status otherwise
local function text_of(req)
  local v = assert(req:json(64 * 1024))
  if type(v) ~= "table" or type(v.text) ~= "string" then
    local err = lhyper.error("user_service", 'expected a JSON object with a "text" string')
    err.status = 422
    error(err)
  end
  return v.text
end

local app = lhyper.router()

app:get("/notes", function()
  local list = {}
  for _, note in pairs(notes) do list[#list + 1] = note end
  table.sort(list, function(a, b) return a.id < b.id end)
  return lhyper.json(200, list)
end)

app:post("/notes", function(req)
  local note = { id = next_id, text = text_of(req) }
  notes[next_id] = note
  next_id = next_id + 1
  return lhyper.json(201, note, { location = "/notes/" .. note.id })
end)

app:route("/notes/{id:%d+}", {
  get = function(req)
    local note = notes[tonumber(req.params.id)]
    if not note then return no_note(req) end
    return lhyper.json(200, note)
  end,
  put = function(req)
    local note = notes[tonumber(req.params.id)]
    if not note then return no_note(req) end
    note.text = text_of(req)
    return lhyper.json(200, note)
  end,
  delete = function(req)
    local id = tonumber(req.params.id)
    if not notes[id] then return no_note(req) end
    notes[id] = nil
    return 204
  end,
})

app:fallback(function(req) return lhyper.json(404, { error = "no route for " .. req.path }) end)
app:on_error(function(err, req)
  local status = lhyper.error_status(err)
  if status >= 500 then io.stderr:write(("%s %s: %s\n"):format(req.method, req.target, tostring(err))) end
  return lhyper.json(status, { error = status < 500 and tostring(err) or "internal error" })
end)

local server = assert(lhyper.server {
  port = port,
  handler = lhyper.stack { L.request_id(), L.access_log { out = io.stderr }, app },
})
io.stderr:write(("notes API on http://127.0.0.1:%d/notes\n"):format(server.port))
lhyper.on_signal("SIGTERM", function() server:close(5) end)
lhyper.on_signal("SIGINT", function() server:close(5) end)
lhyper.run()
