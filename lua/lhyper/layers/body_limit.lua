--- body_limit(bytes): request bodies of at most `bytes`. A Content-Length
-- over it gets 413 before the body is read (and the connection closes);
-- a chunked body is counted as it is read, and the read that would pass
-- the limit raises an error object with status 413 instead of returning
-- the chunk (req:read_all returns it as nil, err, kind). A handler that
-- then answers nothing, or raises it, gets 413.
local core = require "lhyper.core"

local type, error, tonumber = type, error, tonumber
local mtype = math.type

local H413 = { ["content-type"] = "text/plain", connection = "close" }

local function too_large()
  local err = core.error("user_body", "body too large")
  err.status = 413
  return err
end

return function(limit)
  if mtype(limit) ~= "integer" or limit < 0 then
    error("body_limit: a byte count (integer >= 0) expected", 2)
  end
  return function(inner)
    return function(req)
      local h = req.headers
      local cl = h["content-length"]
      if cl then
        local n = tonumber(cl)
        if n and n > limit then return 413, H413, "body too large\n" end
        return inner(req)
      end
      if h["transfer-encoding"] == nil then return inner(req) end
      local body = req.body -- the request's own, or a limit further out
      req.body = function(self)
        local next_chunk = body(self)
        local n = 0
        return function()
          local chunk, t = next_chunk()
          if chunk then
            n = n + #chunk
            if n > limit then
              self:_too_large()
              error(too_large(), 0)
            end
          end
          return chunk, t
        end
      end
      return inner(req)
    end
  end
end
