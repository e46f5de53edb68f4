--- lhyper.router(): paths to services, after axum's Router. A router is a
-- service. Routes live in a trie of path segments: at each node a hash of
-- static segments, then at most one constrained and one plain parameter,
-- then a tail; routes without parameters are also in one hash of whole
-- paths. Matching cost does not grow with the number of routes.
local core = require "lhyper.core"
local service = require "lhyper.service"
local url = require "lhyper.url"

local type, error, pairs, ipairs, tostring, setmetatable, pcall, next, load, assert =
  type, error, pairs, ipairs, tostring, setmetatable, pcall, next, load, assert
local find, sub, byte, format, upper, concat, sort =
  string.find, string.sub, string.byte, string.format, string.upper, table.concat, table.sort
local tonumber = tonumber

local M = {}

local TEXT = { ["content-type"] = "text/plain" }

--- percent-decoding --------------------------------------------------------

-- s with its %XX escapes decoded; nil when an escape is malformed or is
-- %00 (C, fopen for one, would cut the value at a NUL; csrc/lua/lroute.c
-- push_decoded decodes the same)
local function decode(s)
  if not find(s, "%", 1, true) then return s end
  if find(s, "%00", 1, true) then return nil end
  return (url.decode(s))
end
M.decode = decode

--- patterns -----------------------------------------------------------------

-- the index of the "]" closing the set that opens at p[i] ("["), or nil
-- (lstrlib.c classEnd: a "]" right after "[" or "[^" is a member)
local function set_end(p, i)
  local j = i + 1
  if byte(p, j) == 94 then j = j + 1 end -- ^
  repeat
    if j > #p then return nil end
    local c = byte(p, j)
    j = j + 1
    if c == 37 and j <= #p then j = j + 1 end -- %x inside a set
  until byte(p, j) == 93 -- ]
  return j
end

-- nil when the Lua pattern p is well formed, else what is wrong with it.
-- string.find reads a pattern only as far as a match gets, so a fault
-- past that point would raise later, on a request that reaches it.
local function pattern_fault(p)
  local i, n = 1, #p
  local ncap, open, closed = 0, {}, {}
  while i <= n do
    local c = byte(p, i)
    if c == 37 then -- %
      local d = sub(p, i + 1, i + 1)
      if d == "" then return "ends with '%'" end
      if d == "b" then
        if i + 3 > n then return "missing arguments to '%b'" end
        i = i + 4
      elseif d == "f" then
        if byte(p, i + 2) ~= 91 then return "missing '[' after '%f'" end
        local e = set_end(p, i + 2)
        if not e then return "missing ']'" end
        i = e + 1
      elseif find(d, "^%d$") then
        local k = tonumber(d)
        if not closed[k] then return "invalid capture index %" .. d end
        i = i + 2
      else
        i = i + 2
      end
    elseif c == 91 then -- [
      local e = set_end(p, i)
      if not e then return "missing ']'" end
      i = e + 1
    elseif c == 40 then -- (
      ncap = ncap + 1
      if ncap > 32 then return "too many captures" end
      if byte(p, i + 1) == 41 then closed[ncap] = true; i = i + 2 -- () a position
      else open[#open + 1] = ncap; i = i + 1 end
    elseif c == 41 then -- )
      if #open == 0 then return "invalid pattern capture" end
      closed[open[#open]] = true
      open[#open] = nil
      i = i + 1
    else
      i = i + 1
    end
  end
  if #open > 0 then return "unfinished capture" end
  return nil
end

-- The segments of a pattern, parsed: { kind = "static" | "param" | "tail",
-- text | name, pat }. Raises on a malformed pattern.
local function parse(pattern, what, level)
  if type(pattern) ~= "string" or byte(pattern, 1) ~= 47 then
    error(("%s: pattern must be a string starting with '/', got %s"):format(what, tostring(pattern)), level)
  end
  local segs, names, seen = {}, {}, {}
  local pos = 2
  while true do
    local e = find(pattern, "/", pos, true)
    local seg = sub(pattern, pos, (e or 0) - 1)
    local s
    if byte(seg, 1) == 123 and byte(seg, -1) == 125 then -- {...}
      local inner = sub(seg, 2, -2)
      local tail = byte(inner, 1) == 42 -- *
      if tail then inner = sub(inner, 2) end
      local name, pat = inner, nil
      local colon = find(inner, ":", 1, true)
      if colon then name, pat = sub(inner, 1, colon - 1), sub(inner, colon + 1) end
      if not find(name, "^[%a_][%w_]*$") then
        error(("%s: bad parameter name in %q"):format(what, pattern), level)
      end
      if seen[name] then error(("%s: parameter '%s' twice in %q"):format(what, name, pattern), level) end
      if #names == 32 then error(("%s: more than 32 parameters in %q"):format(what, pattern), level) end
      seen[name] = true
      names[#names + 1] = name
      if tail then
        if pat then error(("%s: a tail parameter takes no pattern in %q"):format(what, pattern), level) end
        if e then error(("%s: the tail {*%s} must end %q"):format(what, name, pattern), level) end
        s = { kind = "tail", name = name }
      else
        if pat then
          local fault = pat == "" and "empty" or pattern_fault(pat)
          if fault then
            error(("%s: bad Lua pattern '%s' in %q (%s)"):format(what, pat, pattern, fault), level)
          end
          pat = "^" .. pat .. "$"
        end
        s = { kind = "param", name = name, pat = pat }
      end
    elseif find(seg, "[{}]") then
      error(("%s: a parameter must be a whole segment ({name}, {name:pattern} or {*name}) in %q"):format(what, pattern), level)
    elseif seg == "" and e then
      error(("%s: empty segment in %q"):format(what, pattern), level)
    else
      s = { kind = "static", text = seg }
    end
    segs[#segs + 1] = s
    if not e then break end
    pos = e + 1
  end
  return segs, names
end

--- the trie -------------------------------------------------------------------

-- A node is an array: [S] static segment -> node, [P] the plain parameter's
-- node, [C] the constrained parameter's node (its Lua pattern at [PAT]),
-- [T] the tail's (or a nest's) endpoint, [EP] the endpoint of a route
-- ending here; false when absent (csrc/lua/lroute.c reads the same).
-- An endpoint: route (the pattern), names (parameter names in path
-- order), make (builds req.params), methods (METHOD -> service), any, nest
-- (a nested service), svc_ (what dispatch calls, made by compile).
local S, P, C, T, EP, PAT, FIRST = 1, 2, 3, 4, 5, 6, 7
local function new_node() return { false, false, false, false, false } end

local caps = {} -- captured segments, by position; matching never yields

-- The endpoint path[pos..] leads to from node, and the number of captures.
-- Static beats parameter beats tail: a branch is left for the next only
-- when it leads nowhere. Where a node offers no other branch the walk goes
-- on in this loop instead of a call.
local function walk(node, path, pos, nc)
  while true do
    local e = find(path, "/", pos, true)
    local seg = sub(path, pos, (e or 0) - 1)
    local s, p, c, t = node[S], node[P], node[C], node[T]
    local child = s and s[seg]
    if child then
      if not (t or (seg ~= "" and (c or p))) then
        if not e then return child[EP], nc end
        node, pos = child, e + 1
        goto continue
      end
      if e then
        local ep, k = walk(child, path, e + 1, nc)
        if ep then return ep, k end
      elseif child[EP] then
        return child[EP], nc
      end
    end
    if seg ~= "" then
      if c then
        local v = decode(seg)
        if v and find(v, c[PAT]) then
          caps[nc + 1] = seg
          if e then
            local ep, k = walk(c, path, e + 1, nc + 1)
            if ep then return ep, k end
          elseif c[EP] then
            return c[EP], nc + 1
          end
        end
      end
      if p then
        caps[nc + 1] = seg
        if not t then
          if not e then return p[EP], nc + 1 end
          node, pos, nc = p, e + 1, nc + 1
          goto continue
        end
        if e then
          local ep, k = walk(p, path, e + 1, nc + 1)
          if ep then return ep, k end
        elseif p[EP] then
          return p[EP], nc + 1
        end
      end
    end
    if t and (pos <= #path or t.nest) then
      caps[nc + 1] = sub(path, pos)
      return t, nc + 1
    end
    do return nil end
    ::continue::
  end
end

-- function(caps) -> { name1 = caps[1], ... }: a table made at its size
local function params_maker(names)
  if #names == 0 then return nil end
  local fields = {}
  for i, name in ipairs(names) do fields[i] = format("[%q] = c[%d]", name, i) end
  return assert(load("return function(c) return { " .. concat(fields, ", ") .. " } end",
    "=params", "t", {}))()
end

local EMPTY = setmetatable({}, {
  __newindex = function() error("req.params: this route has no parameters to change", 2) end,
})

-- decodes the values of params in place; false when one is malformed
local function decode_params(ep, params)
  for _, name in ipairs(ep.names) do
    local v = decode(params[name])
    if not v then return false end
    params[name] = v
  end
  return true
end

-- route_walk(root, path, EMPTY) -> endpoint, params, rest: the endpoint
-- path leads to, its parameters (decoded), and for a nest the rest of the
-- path after its prefix; nil when no route matches; endpoint, false when a
-- parameter is badly percent-encoded. The C walk (csrc/lua/lroute.c) does
-- the same unless LHYPER_ROUTER_C=0.
local function lua_route_walk(root, path, empty)
  if byte(path, 1) ~= 47 then return nil end
  local ep, k = walk(root, path, 2, 0)
  if not ep then return nil end
  local params = empty
  local make = ep.make
  if make then
    params = make(caps)
    if find(path, "%", 1, true) and not decode_params(ep, params) then return ep, false end
  end
  local n = #ep.names
  return ep, params, k > n and caps[k] or nil
end

local route_walk = core.tuning().router_c and core.route_walk or lua_route_walk
M.lua_route_walk = lua_route_walk

--- the router -----------------------------------------------------------------

local Router = {}
local mt = {
  __name = "lhyper.router",
  __index = Router,
  __call = function(self, req) return self.service_(req) end,
  __tostring = function(self) return ("lhyper.router (%d routes)"):format(self.nroutes_) end,
}

local METHOD_ORDER = { GET = 1, HEAD = 2, POST = 3, PUT = 4, PATCH = 5, DELETE = 6, OPTIONS = 7 }

local function allow_list(ep)
  local list, seen = {}, {}
  local function add(m) if not seen[m] then seen[m] = true; list[#list + 1] = m end end
  for m in pairs(ep.methods) do add(m) end
  if seen.GET then add("HEAD") end
  if ep.ws then add("GET") end -- a handshake is a GET; no HEAD
  add("OPTIONS")
  sort(list, function(a, b)
    local x, y = METHOD_ORDER[a] or 99, METHOD_ORDER[b] or 99
    if x ~= y then return x < y end
    return a < b
  end)
  return concat(list, ", ")
end

-- the endpoint's own service: its method's, GET's for HEAD, `any`'s, an
-- automatic OPTIONS (204) or 405, both with Allow. With a WebSocket route
-- (router:ws), a handshake goes to it first; other GETs and HEADs go to
-- it too when nothing else takes them, and its accept answers them
-- (426, 405).
local function method_service(ep)
  local methods, any, ws = ep.methods, ep.any, ep.ws
  local allow = allow_list(ep)
  local H405 = { allow = allow, ["content-type"] = "text/plain" }
  local H204 = { allow = allow }
  if ws then
    local is_ws = require("lhyper.websocket").is_request
    return function(req)
      local m = req.method
      if m == "GET" and is_ws(req) then return ws(req) end
      local h = methods[m] or (m == "HEAD" and methods.GET) or any
      if h then return h(req) end
      if m == "GET" or m == "HEAD" then return ws(req) end
      if m == "OPTIONS" then return 204, H204, nil end
      return 405, H405, "method not allowed\n"
    end
  end
  return function(req)
    local m = req.method
    local h = methods[m] or (m == "HEAD" and methods.GET) or any
    if h then return h(req) end
    if m == "OPTIONS" then return 204, H204, nil end
    return 405, H405, "method not allowed\n"
  end
end

local function not_found() return 404, TEXT, "not found\n" end

local nested = setmetatable({}, { __mode = "k" }) -- req -> what an outer router matched

-- a nested service, called with req.path without the prefix
local function nest_service(inner)
  return function(req)
    local info = nested[req]
    local rest = info.rest
    local saved = req.path
    req.path = rest
    local ok, a, b, c = pcall(inner, req)
    req.path = nil -- the request's own path again (or an outer shadow)
    if saved ~= req.path then req.path = saved end
    if not ok then error(a, 0) end
    return a, b, c
  end
end

local function compile(self)
  local layers = self.layers_
  local function wrap(svc)
    if #layers == 0 then return svc end
    local list = {}
    for i, l in ipairs(layers) do list[i] = l end
    list[#list + 1] = svc
    return service.stack(list)
  end
  local direct = #layers == 0
  for _, ep in ipairs(self.eps_) do
    local own
    if ep.nest then own = nest_service(ep.nest)
    else own = method_service(ep) end
    ep.svc_ = wrap(own)
    -- what route (csrc/lua/lroute.c l_route) gives dispatch to call: [1]
    -- method -> service, else [2]; method_service's choice made up front
    if direct and not ep.ws and not ep.nest then
      local call = {}
      for m, h in pairs(ep.methods) do call[m] = h end
      if call.HEAD == nil then call.HEAD = call.GET end
      ep[1], ep[2] = call, ep.any or ep.svc_
    else
      ep[1], ep[2] = false, ep.svc_
    end
    ep[3] = not ep.nest and ep.route -- req.route (false: a nest's, set by dispatch)
  end
  self.fallback_svc_ = wrap(self.fallback_ or not_found)
  self.direct_ = direct
  self.dirty_ = false
  self.ready_ = self.route_ ~= nil and not self.on_error_
end

local function redirect(req, loc)
  local q = req.query
  if q then loc = loc .. "?" .. q end
  return 308, { location = loc, ["content-type"] = "text/plain" }, "see " .. loc .. "\n"
end

local BAD_PARAM = { ["content-type"] = "text/plain" }

local route_req = core.tuning().router_c and core.route_req or nil
local route_fn = core.tuning().router_c and core.route_fn or nil

local function no_match(self, req, path, info)
  if self.redirect_ and #path > 1 then
    local alt = byte(path, -1) == 47 and sub(path, 1, -2) or path .. "/"
    if self:match(alt) then
      local loc = (info and info.prefix or "") .. alt
      -- never "//host" or "/\host": a browser goes to another host for both
      if not find(loc, "^/[/\\]") then return redirect(req, loc) end
    end
  end
  return self.fallback_svc_(req)
end

-- a nest's endpoint: the service under it sees the rest of the path
local function into_nest(req, ep, path, rest, params, route, info)
  -- "/api" itself, or "/api/" .. rest: the nested service sees "/" or "/" .. rest
  local prefix = rest and sub(path, 1, #path - #rest - 1) or path
  nested[req] = {
    rest = "/" .. (rest or ""), params = params, route = route,
    prefix = (info and info.prefix or "") .. prefix,
  }
  local ok, a, b, c = pcall(ep.svc_, req)
  nested[req] = info
  if not ok then error(a, 0) end
  return a, b, c
end

-- what follows route_req's match (C read req.path, matched, and set
-- req.params and req.route unless the endpoint is a nest)
local function matched(self, req, ep, params, rest, path, method)
  if not ep then return no_match(self, req, params, nil) end
  if not params then return 400, BAD_PARAM, "bad percent-encoding in the path\n" end
  if not ep.nest then
    if self.direct_ and not ep.ws then
      -- no layers: the method's service at once (method_service's choice)
      local methods = ep.methods
      local h = methods[method] or (method == "HEAD" and methods.GET) or ep.any
      if h then return h(req) end
    end
    return ep.svc_(req)
  end
  req.params = params
  req.route = ep.route
  return into_nest(req, ep, path, rest, params, ep.route, nil)
end

local function dispatch(self, req)
  if self.dirty_ then compile(self) end
  local info = nested[req]
  local ep, params, rest, path
  if route_req and not info then
    return matched(self, req, route_req(req, self.root_, self.static_, EMPTY, self.ignore_))
  end
  path = info and info.rest or req.path
  if self.ignore_ and #path > 1 and byte(path, -1) == 47 then path = sub(path, 1, -2) end
  ep = self.static_[path]
  if ep then params = EMPTY
  else ep, params, rest = route_walk(self.root_, path, EMPTY) end
  if not ep then return no_match(self, req, path, info) end
  if not params then return 400, BAD_PARAM, "bad percent-encoding in the path\n" end
  if info and next(info.params) then
    if params == EMPTY then params = {} end
    for name, v in pairs(info.params) do
      if params[name] == nil then params[name] = v end
    end
  end
  req.params = params
  local route = ep.route
  if info then route = info.route .. (route == "/" and "" or route) end
  req.route = route
  if ep.nest then return into_nest(req, ep, path, rest, params, route, info) end
  return ep.svc_(req)
end

local function finish(self, req, ok, a, b, c)
  if ok then return a, b, c end
  return self.on_error_(a, req)
end

--- lhyper.router{ trailing_slash = "strict" | "redirect" | "ignore" } -> router
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then error("lhyper.router: options table expected", 2) end
  opts = opts or {}
  local ts = opts.trailing_slash or "strict"
  if ts ~= "strict" and ts ~= "redirect" and ts ~= "ignore" then
    error("lhyper.router: trailing_slash must be \"strict\", \"redirect\" or \"ignore\"", 2)
  end
  for k in pairs(opts) do
    if k ~= "trailing_slash" then error("lhyper.router: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local self = setmetatable({
    root_ = new_node(), static_ = {}, eps_ = {}, layers_ = {}, nroutes_ = 0,
    ignore_ = ts == "ignore", redirect_ = ts == "redirect", dirty_ = true,
  }, mt)
  -- C matches and picks the service (csrc/lua/lroute.c l_route) while the
  -- router is compiled and has no on_error (ready_); else dispatch
  local route = route_fn and route_fn(self.root_, self.static_, EMPTY, nested, self.ignore_)
  self.route_ = route
  self.service_ = function(req)
    if self.ready_ then
      local h, ep, params, rest, path, method = route(req)
      if h then return h(req) end
      if h == false then return matched(self, req, ep, params, rest, path, method) end
    end
    if self.on_error_ then return finish(self, req, pcall(dispatch, self, req)) end
    return dispatch(self, req)
  end
  return self
end

-- the node a pattern's segments lead to, made as needed; conflicts raise
local function place(self, segs, pattern, what, level)
  local node = self.root_
  local n = #segs
  for i = 1, n do
    local s = segs[i]
    if s.kind == "static" then
      local text = s.text
      node[S] = node[S] or {}
      local child = node[S][text]
      if not child then child = new_node(); node[S][text] = child end
      node = child
    elseif s.kind == "param" then
      if s.pat then
        local c = node[C]
        if c and c[PAT] ~= s.pat then
          error(("%s: %q conflicts with %q: two different patterns for one segment"):format(
            what, pattern, c[FIRST]), level)
        end
        if not c then c = new_node(); c[PAT] = s.pat; c[FIRST] = pattern; node[C] = c end
        node = c
      else
        node[P] = node[P] or new_node()
        node = node[P]
      end
    else
      return node, T
    end
  end
  return node, EP
end

local function endpoint(self, node, slot, pattern, names, what, level, nest)
  local ep = node[slot]
  if ep then
    if nest or ep.nest then
      error(("%s: %q conflicts with %q"):format(what, pattern, ep.route), level)
    end
    for i = 1, #names do
      if names[i] ~= ep.names[i] then
        error(("%s: %q conflicts with %q: the same path with other parameter names"):format(
          what, pattern, ep.route), level)
      end
    end
    return ep
  end
  -- a nest takes both slots of its node: the prefix itself and below it
  if nest and (node[EP] or node[T]) then
    error(("%s: %q conflicts with %q"):format(what, pattern, (node[EP] or node[T]).route), level)
  end
  ep = { route = pattern, names = names, make = params_maker(names), methods = {}, nest = nest }
  node[slot] = ep
  if nest then node[T] = ep end
  self.eps_[#self.eps_ + 1] = ep
  return ep
end

-- level: the caller's, as seen from add (direct errors); the helpers
-- called from here are one deeper
local function add(self, method, pattern, svc, what, level)
  svc = service.of(svc, what, level + 1)
  if self.ignore_ and type(pattern) == "string" and #pattern > 1 and byte(pattern, -1) == 47 then
    pattern = sub(pattern, 1, -2)
  end
  local segs, names = parse(pattern, what, level + 1)
  local node, slot = place(self, segs, pattern, what, level + 1)
  local ep = endpoint(self, node, slot, pattern, names, what, level + 1)
  if method == nil then
    if ep.any then error(("%s: %q conflicts with %q (any method, twice)"):format(what, pattern, ep.route), level) end
    ep.any = svc
  else
    if ep.methods[method] then
      error(("%s: %s %q conflicts with %s %q"):format(what, method, pattern, method, ep.route), level)
    end
    ep.methods[method] = svc
  end
  if #names == 0 then self.static_[pattern] = ep end
  self.nroutes_ = self.nroutes_ + 1
  self.dirty_, self.ready_ = true, false
end

local function method_name(m, what)
  if type(m) ~= "string" or not find(m, "^[!#$%%&'*+%-.^_`|~%w]+$") then
    error(("%s: bad method name %s"):format(what, tostring(m)), 3)
  end
  return upper(m)
end

for _, m in ipairs { "get", "post", "put", "patch", "delete", "options", "head" } do
  local M_ = upper(m)
  local what = "router:" .. m
  -- not a tail call, so that the caller is at level 3 from add
  Router[m] = function(self, pattern, svc)
    add(self, M_, pattern, svc, what, 3)
    return self
  end
end

--- router:any(pattern, service): every method without a route of its own
function Router:any(pattern, svc)
  add(self, nil, pattern, svc, "router:any", 3)
  return self
end

--- router:ws(pattern, function(ws, req) ... end, opts): a WebSocket route.
-- A handshake (a GET with Upgrade: websocket) is accepted with
-- lhyper.websocket.accept(req, opts) and the function serves the ws; the
-- route goes through the router's layers as its other routes do. A GET of
-- the same pattern (router:get, route{ get = }) takes the requests that
-- are not handshakes; without one, accept answers them (426, 405).
function Router:ws(pattern, fn, opts)
  local what = "router:ws"
  if type(fn) ~= "function" then error(what .. ": a function(ws, req) expected", 2) end
  local websocket = require "lhyper.websocket"
  if opts ~= nil then websocket.check_accept_options(opts, what, 3) end
  local accept = websocket.accept
  local svc = function(req)
    local ws = accept(req, opts)
    if not ws then return end -- accept answered
    return fn(ws, req)
  end
  if self.ignore_ and type(pattern) == "string" and #pattern > 1 and byte(pattern, -1) == 47 then
    pattern = sub(pattern, 1, -2)
  end
  local segs, names = parse(pattern, what, 3)
  local node, slot = place(self, segs, pattern, what, 3)
  local ep = endpoint(self, node, slot, pattern, names, what, 3)
  if ep.ws then error(("%s: %q conflicts with %q (two WebSocket routes)"):format(what, pattern, ep.route), 2) end
  ep.ws = svc
  if #names == 0 then self.static_[pattern] = ep end
  self.nroutes_ = self.nroutes_ + 1
  self.dirty_, self.ready_ = true, false
  return self
end

--- router:route(pattern, { get = f, post = g, any = h, ... })
function Router:route(pattern, t)
  if type(t) ~= "table" then error("router:route: a table { method = service } expected", 2) end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  if #keys == 0 then error("router:route: no methods given", 2) end
  sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    if k == "any" then add(self, nil, pattern, t[k], "router:route", 3)
    else add(self, method_name(k, "router:route"), pattern, t[k], "router:route", 3) end
  end
  return self
end

--- router:nest(prefix, service): paths under prefix go to service (a router
-- or any service), which sees req.path without the prefix ("/" for the
-- prefix itself)
function Router:nest(prefix, svc)
  local what = "router:nest"
  svc = service.of(svc, what)
  if type(prefix) == "string" and (prefix == "/" or byte(prefix, -1) == 47) then
    error(("%s: prefix %q must not end with '/' (use router:fallback for everything)"):format(what, prefix), 2)
  end
  local segs, names = parse(prefix, what, 3)
  local node, slot = place(self, segs, prefix, what, 3)
  if slot == T then error(("%s: prefix %q must not end with a tail"):format(what, prefix), 2) end
  local ep = endpoint(self, node, EP, prefix, names, what, 3, svc)
  if #names == 0 then self.static_[prefix] = ep end
  self.nroutes_ = self.nroutes_ + 1
  self.dirty_, self.ready_ = true, false
  return self
end

--- router:fallback(service): what answers paths no route matches (default 404)
function Router:fallback(svc)
  self.fallback_ = service.of(svc, "router:fallback")
  self.dirty_, self.ready_ = true, false
  return self
end

--- router:layer(layer): wraps every route of this router, its fallback,
-- 405s and automatic OPTIONS answers; layers added first run first
function Router:layer(layer)
  if type(layer) ~= "function" then error("router:layer: a layer (function(inner) -> service) expected", 2) end
  self.layers_[#self.layers_ + 1] = layer
  self.dirty_, self.ready_ = true, false
  return self
end

--- router:on_error(function(err, req) return status, headers, body end):
-- answers for anything a route (or a layer of this router) raised
function Router:on_error(f)
  if type(f) ~= "function" then error("router:on_error: a function(err, req) expected", 2) end
  self.on_error_ = f
  self.ready_ = false -- dispatch, under pcall
  return self
end

--- router:match(path) -> route pattern, params; or nil. No method check.
-- What dispatch does before calling a route's service.
function Router:match(path)
  if type(path) ~= "string" then error("bad argument #1 to 'match' (string expected, got " .. type(path) .. ")", 2) end
  if self.ignore_ and #path > 1 and byte(path, -1) == 47 then path = sub(path, 1, -2) end
  local ep = self.static_[path]
  if ep then return ep.route, EMPTY end
  local params
  ep, params = route_walk(self.root_, path, EMPTY)
  if not params then return nil end
  return ep.route, params
end

M.Router = Router
M._walk = walk
return M
