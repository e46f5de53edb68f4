-- A raw WebSocket client for the specs (LuaSocket): the opening handshake
-- and single frames, masked as a client's must be, so that a spec can send
-- what a library would not and see every frame the server sends.
local h = require "helper"

local M = {}

local OP = { cont = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 }
M.OP = OP

local function mask(payload, key)
  local out, k = {}, { key:byte(1, 4) }
  for i = 1, #payload do out[i] = string.char(payload:byte(i) ~ k[(i - 1) % 4 + 1]) end
  return table.concat(out)
end

-- one frame as bytes; opts: fin (default true), rsv, masked (default true)
function M.frame(op, payload, opts)
  opts = opts or {}
  payload = payload or ""
  local fin = opts.fin == nil or opts.fin
  local b0 = (fin and 0x80 or 0) | ((opts.rsv or 0) << 4) | (OP[op] or op)
  local m = opts.masked == false and 0 or 0x80
  local n = #payload
  local head
  if n < 126 then head = string.char(b0, m | n)
  elseif n < 65536 then head = string.pack(">BBI2", b0, m | 126, n)
  else head = string.pack(">BBI8", b0, m | 127, n) end
  if m == 0 then return head .. payload end
  local key = string.char(math.random(0, 255), math.random(0, 255), math.random(0, 255), math.random(0, 255))
  return head .. key .. mask(payload, key)
end

local Conn = {}
Conn.__index = Conn

-- connect and handshake; extra headers as a table. Returns conn, response
-- (101 or not: the caller looks) or nil, err.
function M.connect(port, path, headers)
  local sock, r = h.connect(port)
  if not sock then return nil, r end
  local lines = {
    "GET " .. path .. " HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
  }
  for k, v in pairs(headers or {}) do
    for i = #lines, 1, -1 do
      if lines[i]:lower():find("^" .. k:lower() .. ":") then table.remove(lines, i) end
    end
    if v ~= false then lines[#lines + 1] = k .. ": " .. v end
  end
  assert(sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n"))
  local res, err = r:final_response()
  if not res then sock:close(); return nil, err end
  return setmetatable({ sock = sock, r = r }, Conn), res
end

-- a Conn over a socket and its reader (h.connect) whose handshake the
-- caller made
function M.wrap(sock, r) return setmetatable({ sock = sock, r = r }, Conn) end

function Conn:send(op, payload, opts) return self.sock:send(M.frame(op, payload, opts)) end
function Conn:send_raw(bytes) return self.sock:send(bytes) end
function Conn:close_socket() self.sock:close() end

-- the next frame: { op =, fin =, rsv =, payload =, code =, reason = } or
-- nil, "closed" | "timeout"
function Conn:frame(t)
  local r = self.r
  local head, err = r:bytes(2, t)
  if not head then return nil, err end
  local b0, b1 = head:byte(1, 2)
  local n = b1 & 0x7f
  if n == 126 then n = string.unpack(">I2", r:bytes(2, t))
  elseif n == 127 then n = string.unpack(">I8", r:bytes(8, t)) end
  assert(b1 & 0x80 == 0, "the server sent a masked frame")
  local payload = n > 0 and r:bytes(n, t) or ""
  if not payload then return nil, "closed" end
  local f = { op = b0 & 0x0f, fin = b0 & 0x80 ~= 0, rsv = (b0 >> 4) & 7, payload = payload }
  if f.op == OP.close then
    f.code = #payload >= 2 and string.unpack(">I2", payload) or 1005
    f.reason = payload:sub(3)
  end
  return f
end

-- the next frame must be a close; returns code, reason
function Conn:expect_close(t)
  local f, err = self:frame(t)
  if not f then return nil, err end
  if f.op ~= OP.close then return nil, "got opcode " .. f.op end
  return f.code, f.reason
end

function M.close_payload(code, reason) return string.pack(">I2", code) .. (reason or "") end

return M
