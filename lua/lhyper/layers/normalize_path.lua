--- normalize_path(): req.path with `//` collapsed and `.` and `..`
-- segments resolved (RFC 3986 5.2.4; %2e counts as a dot), before the
-- inner service sees it; 400 for a path that climbs above the root. A
-- trailing slash stays, and a path ending in `.` or `..` gets one.
local type, find, sub, lower, concat = type, string.find, string.sub, string.lower, table.concat

local check = require("lhyper.options").check

local H400 = { ["content-type"] = "text/plain" }

local function dot(seg)
  if seg == "." then return 1 end
  if seg == ".." then return 2 end
  local l = #seg
  if l < 3 or l > 6 then return nil end
  seg = lower(seg):gsub("%%2e", ".")
  if seg == "." then return 1 end
  if seg == ".." then return 2 end
  return nil
end

-- the normalized path, or nil when it leaves the root
local function normalize(path)
  local out, n = {}, 0
  local pos, len = 2, #path
  local trail = false
  while pos <= len + 1 do
    local e = find(path, "/", pos, true)
    local seg = sub(path, pos, (e or 0) - 1)
    trail = false
    if seg == "" then
      trail = e == nil
    else
      local d = dot(seg)
      if d == 1 then
        trail = true
      elseif d == 2 then
        if n == 0 then return nil end
        out[n] = nil
        n = n - 1
        trail = true
      else
        n = n + 1
        out[n] = seg
      end
    end
    if not e then break end
    pos = e + 1
  end
  if n == 0 then return "/" end
  return "/" .. concat(out, "/", 1, n) .. (trail and "/" or "")
end

return function(opts)
  if opts ~= nil and type(opts) ~= "table" then error("normalize_path: options table expected", 2) end
  if opts then check({}, opts, "normalize_path") end
  return function(inner)
    return function(req)
      local path = req.path
      if type(path) == "string" and sub(path, 1, 1) == "/" and
          (find(path, "//", 1, true) or find(path, "/.", 1, true) or find(path, "%%2[eE]")) then
        local p = normalize(path)
        if not p then return 400, H400, "path leaves the root\n" end
        if p ~= path then req.path = p end
      end
      return inner(req)
    end
  end
end
