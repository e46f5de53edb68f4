--- request_id{ header = "x-request-id", generate = function(req) end }:
-- keeps a valid incoming id (1..128 characters of letters, digits and
-- . _ ~ : + / = @ -) or makes one (32 hex digits, 128 random bits; or
-- generate(req)'s), puts it in req.id and in the response's header.
local core = require "lhyper.core"
local check = require("lhyper.options").check

local type, error, find, lower = type, error, string.find, string.lower
local request_id, layer_service = core.request_id, core.layer_service
local fast = core.tuning().fast_layers

local OPTIONS = { header = "string", generate = "function" }

return function(opts)
  if opts ~= nil and type(opts) ~= "table" then error("request_id: options table expected", 2) end
  opts = opts or {}
  check(OPTIONS, opts, "request_id")
  local name = opts.header or "x-request-id"
  if type(name) ~= "string" or not find(name, "^[%w!#$%%&'*+.^_`|~-]+$") then
    error("request_id: header must be a field name", 2)
  end
  name = lower(name)
  local gen = opts.generate
  if gen ~= nil and type(gen) ~= "function" then error("request_id: generate must be a function(req)", 2) end
  local own = gen == nil
  -- req.id and the response's field are set in C (csrc/lua/llayer.c): the
  -- handler's header table is neither copied nor changed
  if own then
    return function(inner)
      -- one C function does what the Lua one below does, without its frame
      if fast then return layer_service("request_id", name, inner) end
      return function(req)
        request_id(req, name, true)
        return inner(req)
      end
    end
  end
  return function(inner)
    return function(req)
      if not request_id(req, name, false) then
        local id = gen(req)
        if type(id) ~= "string" then error("request_id: generate returned a " .. type(id), 0) end
        request_id(req, name, nil, id)
      end
      return inner(req)
    end
  end
end
