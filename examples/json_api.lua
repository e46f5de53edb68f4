-- A JSON API: a to-do list kept in memory.
--   lua5.4 examples/json_api.lua [port]
--   curl -d '{"title":"milk"}' -H 'content-type: application/json' localhost:8080/todos
local lhyper = require "lhyper"

local todos, next_id = {}, 1

local function list()
  local out = {}
  for id = 1, next_id - 1 do out[#out + 1] = todos[id] end
  return out
end

local function handler(req)
  local id = tonumber(req.path:match("^/todos/(%d+)$"))
  if req.path == "/todos" and req.method == "GET" then
    return lhyper.json(200, list())
  elseif req.path == "/todos" and req.method == "POST" then
    -- invalid JSON: 400, not JSON: 415, over 64 KiB: 413 (the error's status)
    local body = assert(req:json(64 * 1024))
    if type(body) ~= "table" or type(body.title) ~= "string" then
      return lhyper.json(422, { error = "a title (string) is required" })
    end
    local todo = { id = next_id, title = body.title, done = false }
    todos[next_id], next_id = todo, next_id + 1
    return lhyper.json(201, todo, { location = "/todos/" .. todo.id })
  elseif id and todos[id] and req.method == "GET" then
    return lhyper.json(200, todos[id])
  elseif id and todos[id] and req.method == "DELETE" then
    todos[id] = nil
    return 204
  end
  return lhyper.json(404, { error = "not found" })
end

local server = assert(lhyper.server { port = tonumber(arg[1]) or 8080, handler = handler })
print("listening on http://127.0.0.1:" .. server.port)
io.stdout:flush()
lhyper.run()
