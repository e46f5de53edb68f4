-- A WebSocket chat: everyone in a room gets what anyone in it says. Each
-- member has a channel and a task that writes it to the member's socket, so
-- a slow member never holds up the others (one 64 messages behind is
-- dropped, with close code 1008). Its channel, its writer and its place in
-- the room end with its connection.
--   lua5.4 examples/chat.lua [port]
--   python3 -m websockets ws://localhost:8080/chat/lobby   (in two terminals)
--   curl localhost:8080/                                  (rooms and members)
local lhyper = require "lhyper"

local rooms = {} -- room name -> { [channel] = true }

local function broadcast(room, msg)
  for ch in pairs(room) do
    if not ch:send(msg, 0) then -- timeout 0: never waits for a slow member
      room[ch] = nil
      ch:close() -- its writer stops and closes its socket
    end
  end
end

local app = lhyper.router()

app:ws("/chat/{room}", function(ws, req)
  local name = req.params.room
  local room = rooms[name] or {}
  rooms[name] = room
  local ch = lhyper.channel(64)
  room[ch] = true
  lhyper.defer(function() -- however the handler ends
    room[ch] = nil
    ch:close()
    if next(room) == nil and rooms[name] == room then rooms[name] = nil end
  end)
  -- the writer, a child task: cancelled when the handler ends
  lhyper.spawn(function()
    for msg in ch do
      if not ws:send(msg) then return end
    end
    if ws.is_open then ws:close(1008, "too slow") end -- dropped by broadcast
  end)
  broadcast(room, "* someone joined " .. name)
  for msg, kind in ws:messages() do
    if kind == "text" then broadcast(room, msg) end
  end
  room[ch] = nil
  broadcast(room, "* someone left " .. name)
end)

app:get("/", function()
  local lines = {}
  for name, room in pairs(rooms) do
    local n = 0
    for _ in pairs(room) do n = n + 1 end
    lines[#lines + 1] = name .. " " .. n .. "\n"
  end
  table.sort(lines)
  return 200, { ["content-type"] = "text/plain" }, table.concat(lines)
end)

local server = assert(lhyper.server { port = tonumber(arg[1]) or 8080, handler = app })
print("listening on ws://127.0.0.1:" .. server.port .. "/chat/{room}")
io.stdout:flush()
lhyper.run()
