--- Reading a whole body, shared by requests (server) and responses (client).
local core = require "lhyper.core"

local type, pcall, error, concat = type, pcall, error, table.concat

local M = {}

--- read_all(msg, max, too_large) -> body string, or nil, err, kind.
-- msg:body() gives the chunks; past max, too_large(msg, max) runs and may
-- return the error object to give (else "body too large", status 413).
-- A failed connection is an ordinary failure here: nil, err, kind.
-- A bad max raises at level 2: the read_all methods tail-call this, so
-- that is their caller.
function M.read_all(msg, max, too_large)
  if max ~= nil and (type(max) ~= "number" or not (max >= 0)) then
    error("bad argument #1 to 'read_all' (non-negative number expected)", 2)
  end
  local parts, n = {}, 0
  local next_chunk = msg:body()
  while true do
    local ok, chunk = pcall(next_chunk)
    if not ok then
      if type(chunk) == "table" and chunk.kind then return nil, chunk, chunk.kind end
      error(chunk, 0)
    end
    if chunk == nil then break end
    n = n + #chunk
    if max and n > max then
      local err = too_large(msg, max)
      if not err then
        err = core.error("user_body", "body too large")
        err.status = 413 -- what a handler that raises it answers
      end
      return nil, err, err.kind
    end
    parts[#parts + 1] = chunk
  end
  return concat(parts)
end

return M
