--- lhyper.static(root, opts) -> a service answering GET and HEAD with the
-- files under the directory `root`, for the path the service sees
-- (req.path: the rest of the path under app:nest's prefix).
--   index          file served for a directory ("index.html"; false: none)
--   dotfiles       serve names starting with "." (false: 404)
--   max_age        seconds: `Cache-Control: public, max-age=N` (nil: none)
--   cache_control  the Cache-Control value itself (wins over max_age)
--   types          { ext = "media/type" } added to (or replacing) the built-in map
--   chunk          bytes read at a time for a file streamed (65536); a file
--                  no larger is read whole and sent as a string
-- Answers: 200 with Content-Type, Content-Length, ETag (size and mtime),
-- Last-Modified and Accept-Ranges; 304 for If-None-Match / If-Modified-Since;
-- 206 for one byte range (Range, If-Range), 416 for a range past the end
-- (several ranges get the whole file); 308 to "dir/" for a directory asked
-- without its slash; 404 for no file, a hidden name, a `.` or `..` segment
-- or a directory without an index; 403 for a file it may not read; 400 for
-- a path with %2F or %00; 405 (Allow: GET, HEAD) for other methods.
-- Files are read with Lua's io (blocking reads of local files, as nginx
-- without aio); the file is closed at the end of the body or of the
-- exchange, whichever comes first.
local core = require "lhyper.core"
local check = require("lhyper.options").check

local type, error, tostring, tonumber, pairs = type, error, tostring, tonumber, pairs
local find, lower, match, gmatch, sub, format, byte = string.find, string.lower, string.match,
  string.gmatch, string.sub, string.format, string.byte
local io_open, os_date = io.open, os.date
local file_info = core.file_info

local TYPES = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  css = "text/css; charset=utf-8", js = "text/javascript; charset=utf-8",
  mjs = "text/javascript; charset=utf-8", json = "application/json",
  txt = "text/plain; charset=utf-8", md = "text/markdown; charset=utf-8",
  csv = "text/csv; charset=utf-8", xml = "application/xml", svg = "image/svg+xml",
  png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
  webp = "image/webp", avif = "image/avif", ico = "image/x-icon", bmp = "image/bmp",
  woff = "font/woff", woff2 = "font/woff2", ttf = "font/ttf", otf = "font/otf",
  wasm = "application/wasm", pdf = "application/pdf", zip = "application/zip",
  gz = "application/gzip", tar = "application/x-tar", mp3 = "audio/mpeg",
  ogg = "audio/ogg", wav = "audio/wav", mp4 = "video/mp4", webm = "video/webm",
  map = "application/json", webmanifest = "application/manifest+json",
}
local OCTET = "application/octet-stream"
local PLAIN = "text/plain; charset=utf-8"
local TEXT = { ["content-type"] = PLAIN }
local NOT_ALLOWED = { allow = "GET, HEAD, OPTIONS", ["content-type"] = PLAIN }
local ALLOW = { allow = "GET, HEAD, OPTIONS" }

-- a short text answer
local function say(status, text) return status, TEXT, text end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
  Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- days since 1970-01-01 of a proleptic Gregorian date
local function days(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- an HTTP-date (RFC 9110 5.6.7: IMF-fixdate, RFC 850, asctime) as seconds
-- since the epoch, or nil
local function http_date(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, hh, mm, ss = match(s, "^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d then
    d, mon, y, hh, mm, ss = match(s, "^%a+, (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    if y then y = tonumber(y); y = y + (y < 70 and 2000 or 1900) end
  end
  if not d then
    mon, d, hh, mm, ss, y = match(s, "^%a%a%a (%a%a%a) ([ %d]%d) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  end
  local m = MONTHS[mon]
  if not d or not m then return nil end
  return ((days(tonumber(y), m, tonumber(d)) * 24 + tonumber(hh)) * 60 + tonumber(mm)) * 60 + tonumber(ss)
end

local function imf_date(t) return os_date("!%a, %d %b %Y %H:%M:%S GMT", t) end

-- does an If-None-Match list hold etag (weak comparison)?
local function none_match(list, etag)
  if match(list, "^%s*%*%s*$") then return true end
  local bare = etag
  for tag in gmatch(list, '%s*(W?/?"[^"]*")%s*,?') do
    if sub(tag, 1, 2) == "W/" then tag = sub(tag, 3) end
    if tag == bare then return true end
  end
  return false
end

-- the one range of a Range value over a file of `size` bytes:
-- first, last (inclusive); false when unsatisfiable; nil to serve it whole
local function one_range(v, size)
  local spec = match(v, "^%s*[bB][yY][tT][eE][sS]%s*=%s*(.-)%s*$")
  if not spec or find(spec, ",", 1, true) then return nil end
  local a, b = match(spec, "^(%d*)%s*%-%s*(%d*)$")
  if not a or (a == "" and b == "") or #a > 15 or #b > 15 then return nil end
  if a == "" then -- the last b bytes
    local n = tonumber(b)
    if n == 0 or size == 0 then return false end
    if n > size then n = size end
    return size - n, size - 1
  end
  local first, last = tonumber(a), b ~= "" and tonumber(b) or nil
  if last and last < first then return nil end -- not a valid range: ignored (RFC 9110 14.1.1)
  if first >= size then return false end
  if not last then last = size - 1 end
  if last >= size then last = size - 1 end
  return first, last
end

local OPTIONS = { index = "string|boolean", dotfiles = "boolean", max_age = "number",
  cache_control = "string", types = "table", chunk = "number" }

return function(root, opts)
  if type(root) ~= "string" or root == "" then error("static: root must be a directory path", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("static: options table expected", 2) end
  opts = opts or {}
  check(OPTIONS, opts, "static")
  local info = file_info(root)
  if not info or info.kind ~= "directory" then
    error("static: " .. root .. " is not a directory", 2)
  end
  root = match(root, "^(.-)/*$")
  if root == "" then root = "/" end
  local index = opts.index
  if index == nil or index == true then index = "index.html" end
  if index and (find(index, "/", 1, true) or index == "") then
    error("static: index must be a file name", 2)
  end
  local types = {}
  for k, v in pairs(TYPES) do types[k] = v end
  for k, v in pairs(opts.types or {}) do
    if type(k) ~= "string" or type(v) ~= "string" then error("static: types maps extensions to media types", 2) end
    types[lower(k)] = v
  end
  local cache = opts.cache_control
  if not cache and opts.max_age then
    if opts.max_age < 0 then error("static: max_age must not be negative", 2) end
    cache = format("public, max-age=%d", opts.max_age // 1)
  end
  local chunk = opts.chunk or 65536
  if math.type(chunk) ~= "integer" or chunk < 1 then error("static: chunk must be a positive integer", 2) end
  local dotfiles = opts.dotfiles == true

  -- the validators and caching fields of a file
  local function validators(st)
    local h = { etag = format('"%x-%x"', st.mtime, st.size), ["last-modified"] = imf_date(st.mtime) }
    if cache then h["cache-control"] = cache end
    return h
  end

  -- not modified? (If-None-Match wins over If-Modified-Since)
  local function fresh(req, st, etag)
    local inm = req.headers["if-none-match"]
    if inm then return none_match(inm, etag) end
    local t = http_date(req.headers["if-modified-since"])
    return t ~= nil and st.mtime <= t
  end

  -- does If-Range (an ETag, strongly compared, or a date) allow the range?
  local function range_allowed(req, st, etag)
    local ir = req.headers["if-range"]
    if ir == nil then return true end
    if byte(ir, 1) == 34 then return ir == etag end -- '"'
    local t = http_date(ir)
    return t ~= nil and t == st.mtime
  end

  return function(req)
    local method = req.method
    if method ~= "GET" and method ~= "HEAD" then
      if method == "OPTIONS" then return 204, ALLOW, "" end
      return 405, NOT_ALLOWED, "method not allowed\n"
    end
    local path, err = req:path_decoded("reject")
    if not path then return say(400, "bad path: " .. tostring(err and err.message or err) .. "\n") end
    if sub(path, 1, 1) ~= "/" then return say(404, "not found\n") end
    for seg in gmatch(path, "[^/]+") do
      if seg == "." or seg == ".." or (not dotfiles and byte(seg, 1) == 46) then
        return say(404, "not found\n")
      end
    end
    local file = root .. path
    local st, _, kind = file_info(file)
    if st and st.kind == "directory" then
      if sub(path, -1) ~= "/" then
        -- the client's own target (with any prefix a router took off) and a slash
        local target = req.target or path
        local p, q = match(target, "^([^?]*)(.*)$")
        return 308, { location = p .. "/" .. q, ["content-type"] = PLAIN }, "moved\n"
      end
      if not index then return say(404, "not found\n") end
      file = file .. index
      st, _, kind = file_info(file)
    end
    if not st or st.kind ~= "file" then
      if kind == "forbidden" then return say(403, "forbidden\n") end
      if st or kind == "not_found" then return say(404, "not found\n") end
      return say(500, "cannot read the file\n")
    end

    local h = validators(st)
    local etag = h.etag
    if fresh(req, st, etag) then return 304, h, nil end
    h["content-type"] = types[lower(match(file, "%.([^./]+)$") or "")] or OCTET
    h["accept-ranges"] = "bytes"
    local size = st.size
    local first, last = 0, size - 1
    local status = 200
    local rv = req.headers.range
    if rv and range_allowed(req, st, etag) then
      local a, b = one_range(rv, size)
      if a == false then
        return 416, { ["content-range"] = "bytes */" .. size, ["content-type"] = PLAIN },
          "range not satisfiable\n"
      elseif a then
        first, last, status = a, b, 206
        h["content-range"] = format("bytes %d-%d/%d", a, b, size)
      end
    end
    local n = last - first + 1
    h["content-length"] = n
    if method == "HEAD" or n == 0 then return status, h, "" end

    local f, oerr = io_open(file, "rb")
    if not f then
      if find(tostring(oerr), "ermission") then return say(403, "forbidden\n") end
      return say(404, "not found\n")
    end
    if first > 0 then f:seek("set", first) end
    if n <= chunk then
      local data = f:read(n)
      f:close()
      if not data or #data ~= n then error("static: " .. file .. " changed while it was read", 0) end
      return status, h, data
    end
    -- streamed: the file goes at the end of the body or of the exchange
    local left = n
    req:on_end(function() if io.type(f) == "file" then f:close() end end)
    return status, h, function()
      if left <= 0 then
        if io.type(f) == "file" then f:close() end
        return nil
      end
      local data = f:read(left < chunk and left or chunk)
      if not data then
        f:close()
        error("static: " .. file .. " ended early (it changed while it was sent)", 0)
      end
      left = left - #data
      return data
    end
  end
end
