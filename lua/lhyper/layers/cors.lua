--- cors{ origins, methods, headers, expose, max_age, credentials }:
-- Cross-Origin Resource Sharing as the Fetch standard describes it.
--   origins      "*" (default), one origin, a list, or function(origin, req) -> bool
--   methods      allowed in preflights (default GET, HEAD, POST, PUT, PATCH, DELETE)
--   headers      request headers allowed in preflights (default: those asked for)
--   expose       response headers scripts may read
--   max_age      seconds a browser may cache a preflight
--   credentials  true: Access-Control-Allow-Credentials (the origin is then
--                always named, never "*"); needs origins other than "*"
-- A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
-- answered here with 204 and does not reach the inner service; an origin
-- not allowed gets no CORS fields (the browser then refuses). Other
-- requests with an Origin get Access-Control-Allow-Origin and friends.
local headers = require "lhyper.layers.headers"
local check = require("lhyper.options").check

local type, error, ipairs, concat, tostring, lower, find =
  type, error, ipairs, table.concat, tostring, string.lower, string.find
local mtype = math.type

local OPTIONS = { origins = "string|table|function", methods = "string|table", headers = "string|table",
  expose = "string|table", max_age = "number", credentials = "boolean" }

local function list_of(v, what)
  if type(v) == "string" then return { v } end
  if type(v) ~= "table" then error("cors: " .. what .. " must be a string or a list of strings", 3) end
  for i, x in ipairs(v) do
    if type(x) ~= "string" then error(("cors: %s[%d] must be a string"):format(what, i), 3) end
  end
  return v
end

local vary_with = headers.vary_with

return function(opts)
  if opts ~= nil and type(opts) ~= "table" then error("cors: options table expected", 2) end
  opts = opts or {}
  check(OPTIONS, opts, "cors")
  local origins = opts.origins or "*"
  local any_origin = origins == "*"
  local allowed -- origin -> true, when a list
  local check -- function(origin, req), when given one
  if type(origins) == "function" then
    check = origins
  elseif not any_origin then
    allowed = {}
    for _, o in ipairs(list_of(origins, "origins")) do allowed[o] = true end
  end
  local credentials = opts.credentials == true
  if credentials and any_origin then
    error('cors: credentials = true needs the origins named (a list, or a function): ' ..
      'with "*" every site could read answers made with the user\'s cookies', 2)
  end
  local methods = concat(list_of(opts.methods or { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE" }, "methods"), ", ")
  local allow_headers = opts.headers and concat(list_of(opts.headers, "headers"), ", ")
  local expose = opts.expose and concat(list_of(opts.expose, "expose"), ", ")
  local max_age = opts.max_age
  if max_age ~= nil and (mtype(max_age) ~= "integer" or max_age < 0) then
    error("cors: max_age must be a whole number of seconds", 2)
  end
  -- the Allow-Origin value depends on the request's Origin
  local varies = not any_origin

  local function allow_origin(origin, req)
    if any_origin then return "*" end
    if allowed then return allowed[origin] and origin or nil end
    return check(origin, req) and origin or nil
  end

  return function(inner)
    return function(req)
      local h = req.headers
      local origin = h.origin
      if origin == nil then
        if not varies then return inner(req) end
        local status, rh, body = inner(req)
        return status, headers.with(rh, "vary", vary_with(headers.get(rh, "vary"), "Origin")), body
      end
      local ao = allow_origin(origin, req)
      local asked = req.method == "OPTIONS" and h["access-control-request-method"]
      if asked then
        local out = { vary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" }
        if ao then
          out["access-control-allow-origin"] = ao
          out["access-control-allow-methods"] = methods
          local want = allow_headers or h["access-control-request-headers"]
          if want and want ~= "" then out["access-control-allow-headers"] = want end
          if max_age then out["access-control-max-age"] = tostring(max_age) end
          if credentials then out["access-control-allow-credentials"] = "true" end
        end
        return 204, out, nil
      end
      local status, rh, body = inner(req)
      local fields = {}
      if ao then
        fields[#fields + 1] = { "access-control-allow-origin", ao }
        if credentials then fields[#fields + 1] = { "access-control-allow-credentials", "true" } end
        if expose then fields[#fields + 1] = { "access-control-expose-headers", expose } end
      end
      if varies then fields[#fields + 1] = { "vary", vary_with(headers.get(rh, "vary"), "Origin") } end
      if #fields == 0 then return status, rh, body end
      return status, headers.set(rh, fields), body
    end
  end
end
