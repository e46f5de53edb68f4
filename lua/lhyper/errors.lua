--- Error objects for bad input met by the Lua helpers (query, form,
-- multipart, cookies, JSON): the kind and detail say what went wrong, and
-- err.status is what a handler that raises the error answers (400, 413,
-- 415), so `assert(req:json())` needs no error handling of its own.
local core = require "lhyper.core"

local M = {}

--- fail(kind, status, what, message) -> nil, err, kind
function M.fail(kind, status, what, message)
  local e = core.error(kind, message, what)
  e.status = status
  return nil, e, kind
end

--- raise(kind, status, what, message): raises the error object (for iterators)
function M.raise(kind, status, what, message)
  local _, e = M.fail(kind, status, what, message)
  error(e, 0)
end

return M
