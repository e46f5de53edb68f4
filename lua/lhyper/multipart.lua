--- A streaming reader for multipart/form-data request bodies (RFC 7578 over
-- RFC 2046 5.1). Parts come one after the other from the body iterator;
-- a part's body is handed on in chunks as it arrives, and only the bytes
-- that might begin the next boundary are held back, so a file part of any
-- size passes through in bounded memory.
local errors = require "lhyper.errors"
local url = require "lhyper.url"
local read_all = require("lhyper.body").read_all

local find, sub, byte, lower, match, gmatch = string.find, string.sub, string.byte, string.lower, string.match, string.gmatch
local setmetatable, error, tostring, concat = setmetatable, error, tostring, table.concat

local M = {}

-- bytes of preamble (before the first delimiter) and of epilogue (after the
-- last) read at most: neither holds a part, so neither may cost more
local EDGE_MAX = 64 * 1024

local function malformed(msg) errors.raise("parse", 400, "multipart", "malformed multipart body: " .. msg) end
local function too_large(msg) errors.raise("user_body", 413, "too_large", msg) end

-- RFC 2046 5.1.1: 1 to 70 characters from bchars, the last not a space
local function valid_boundary(b)
  return #b >= 1 and #b <= 70 and not find(b, "[^%w'()+_,%-./:=? ]") and sub(b, -1) ~= " "
end

--- boundary(content_type) -> boundary, or nil, message
function M.boundary(ct)
  if not ct then return nil, "no content-type" end
  local mt, params = match(ct, "^%s*([^;%s]+)%s*(.*)$")
  if not mt or lower(mt) ~= "multipart/form-data" then return nil, "not multipart/form-data" end
  for name, value in gmatch(params, ';%s*([^=;%s]+)%s*=%s*("?[^";]*"?)') do
    if lower(name) == "boundary" then
      if sub(value, 1, 1) == '"' then
        if #value < 2 or sub(value, -1) ~= '"' then return nil, "unterminated boundary parameter" end
        value = sub(value, 2, -2)
      else
        value = match(value, "^(.-)%s*$")
      end
      if not valid_boundary(value) then return nil, "invalid boundary parameter" end
      return value
    end
  end
  return nil, "no boundary parameter"
end

-- a quoted-string starting at s[i] == '"' -> its text, the index after it;
-- \" and \\ are escapes, other backslashes stay (old browsers send Windows
-- paths unescaped)
local function quoted(s, i)
  local out, j = {}, i + 1
  while true do
    local k = find(s, '["\\]', j)
    if not k then return nil end
    out[#out + 1] = sub(s, j, k - 1)
    if byte(s, k) == 34 then return concat(out), k + 1 end
    local nx = sub(s, k + 1, k + 1)
    if nx == '"' or nx == "\\" then out[#out + 1] = nx; j = k + 2
    else out[#out + 1] = "\\"; j = k + 1 end
  end
end

-- Content-Disposition: form-data; name="field"; filename="a.txt"
-- -> type, { lower-case name = value }
local function disposition(v)
  local typ, i = match(v, "^%s*([^;%s]+)()")
  if not typ then return nil end
  local params = {}
  while true do
    local name, j = match(v, "^%s*;%s*([^=;%s]+)%s*=%s*()", i)
    if not name then break end
    local value
    if sub(v, j, j) == '"' then
      value, i = quoted(v, j)
      if not value then return nil end
    else
      value, i = match(v, "^([^;%s]*)()", j)
    end
    name = lower(name)
    if params[name] == nil then params[name] = value end
  end
  if not match(v, "^%s*$", i) then return nil end
  return lower(typ), params
end

-- filename* (RFC 8187: charset'language'percent-encoded), as RFC 7578 4.2
-- allows senders to use, else filename
local function file_name(params)
  local ext = params["filename*"]
  if ext then
    local enc = match(ext, "^[%w!#$&+%-^_`{}~]*'[%w%-]*'(.*)$")
    local v = enc and url.decode(enc)
    if v then return v end
  end
  return params.filename
end

local part_methods = {}
local part_mt = { __name = "lhyper.part", __index = part_methods }
part_mt.__tostring = function(p)
  return ("lhyper.part (%s%s)"):format(tostring(p.name), p.filename and ", file " .. p.filename or "")
end

--- new(next_chunk, boundary, opts) -> parts iterator
-- opts: max_parts, max_header (bytes of one part's head), max_field (bytes
-- of a part without a filename), max_file (bytes of a part with one; false:
-- no limit)
function M.new(next_chunk, boundary, opts)
  local delim = "\r\n--" .. boundary
  local dlen = #delim
  local max_parts, max_header = opts.max_parts, opts.max_header
  local max_field, max_file = opts.max_field, opts.max_file
  -- the body as if it began with CRLF, so the first boundary is found as
  -- every other one is
  local buf, pos, eof = "\r\n", 1, false
  local state = "preamble" -- then "boundary" (just after a delimiter), "part", "done"
  local nparts, current = 0, nil

  -- after an error nothing more is read: every later call ends at once
  local function fail(raise, msg)
    state, current = "done", nil
    raise(msg)
  end

  -- more bytes into buf (what was consumed is dropped); false at the end
  local function fill()
    if eof then return false end
    local chunk = next_chunk()
    if chunk == nil then eof = true; return false end
    buf = sub(buf, pos) .. chunk
    pos = 1
    return true
  end

  local function account(part, data)
    local n = part.size_ + #data
    part.size_ = n
    local limit = max_field
    if part.filename then limit = max_file end
    if limit and n > limit then
      fail(too_large, ("part '%s' is larger than %.0f bytes"):format(part.name, limit))
    end
    return data
  end

  -- the next chunk of the current part's body, or nil at its end
  local function part_next(part)
    if state ~= "part" or part ~= current then
      part.done_ = true
      return nil
    end
    while true do
      local i = find(buf, delim, pos, true)
      if i then
        local data = sub(buf, pos, i - 1)
        pos = i + dlen
        state = "boundary"
        if #data > 0 then return account(part, data) end
        part.done_ = true
        return nil
      end
      local safe = #buf - dlen + 1 -- bytes past it may begin a delimiter
      if safe >= pos then
        local data = sub(buf, pos, safe)
        pos = safe + 1
        return account(part, data)
      end
      if not fill() then fail(malformed, "the body ended inside part '" .. tostring(part.name) .. "'") end
    end
  end

  -- after a delimiter: "--" ends the body, else transport padding and
  -- CRLF begin a part's head. true when a part follows
  local function after_delimiter()
    while #buf - pos + 1 < 2 do
      if not fill() then fail(malformed, "the body ended after a boundary") end
    end
    if sub(buf, pos, pos + 1) == "--" then
      state = "done"
      -- the epilogue is read and dropped, so that the connection can go
      -- on; past EDGE_MAX of it the rest is left unread (the server
      -- closes the connection after the response) rather than waited for
      local n = #buf - pos + 1
      while n <= EDGE_MAX do
        local chunk = next_chunk()
        if not chunk then break end
        n = n + #chunk
      end
      eof = true
      buf, pos = "", 1
      return false
    end
    while true do
      local s, e = find(buf, "^[ \t]*\r\n", pos)
      if s then pos = e + 1; return true end
      if find(buf, "[^ \t\r]", pos) or find(buf, "\r[^\n]", pos) then
        fail(malformed, "a boundary is followed by other characters")
      end
      if #buf - pos > max_header then fail(malformed, "a boundary line is too long") end
      if not fill() then fail(malformed, "the body ended after a boundary") end
    end
  end

  local function read_head()
    -- the CRLF ending the boundary line was consumed: a head is fields up
    -- to an empty line, which may come at once
    local head
    while true do
      if sub(buf, pos, pos + 1) == "\r\n" then
        head = ""
        pos = pos + 2
        break
      end
      local i = find(buf, "\r\n\r\n", pos, true)
      if i then
        if i - pos > max_header then fail(too_large, "a part's head is larger than " .. max_header .. " bytes") end
        head = sub(buf, pos, i + 1)
        pos = i + 4
        break
      end
      if #buf - pos + 1 > max_header + 4 then fail(too_large, "a part's head is larger than " .. max_header .. " bytes") end
      if not fill() then fail(malformed, "the body ended inside a part's head") end
    end
    local headers = {}
    for line in gmatch(head, "(.-)\r\n") do
      local name, value = match(line, "^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
      if not name then fail(malformed, "invalid header line in a part's head") end
      name = lower(name)
      if headers[name] == nil then headers[name] = value end
    end
    return headers
  end

  local function next_part()
    if state == "done" then return nil end
    if current and not current.done_ then
      -- the part before was not read to its end: skip what is left of it
      while part_next(current) do end
      current.skipped_ = true
    end
    if state == "preamble" then
      local dropped = 0
      while true do
        local i = find(buf, delim, pos, true)
        if i then pos = i + dlen; break end
        local keep = #buf - dlen + 2 -- bytes from here may begin a delimiter
        if keep > pos then dropped, pos = dropped + keep - pos, keep end
        if dropped > EDGE_MAX then fail(malformed, "no boundary in the first 64 KiB") end
        if not fill() then fail(malformed, "no boundary found") end
      end
      state = "boundary"
    end
    if not after_delimiter() then
      current = nil
      return nil
    end
    nparts = nparts + 1
    if nparts > max_parts then fail(too_large, "more than " .. max_parts .. " parts") end
    local headers = read_head()
    local cd = headers["content-disposition"]
    local typ, params
    if cd then typ, params = disposition(cd) end
    if not typ then fail(malformed, "a part has no valid content-disposition") end
    if typ ~= "form-data" or not params.name then
      fail(malformed, "a part's content-disposition is not form-data with a name")
    end
    local part = setmetatable({
      name = params.name,
      filename = file_name(params),
      content_type = headers["content-type"] or "text/plain",
      headers = headers,
      size_ = 0, done_ = false, next_ = part_next,
    }, part_mt)
    state = "part"
    current = part
    return part
  end

  return function()
    return next_part()
  end
end

--- part:body() -> iterator over the part's chunks; raises an error object
-- on a malformed body or a limit passed
local function passed(part, level)
  if part.skipped_ then
    error("lhyper.part: part '" .. tostring(part.name) .. "' was passed before it was read (parts come in order)", level + 1)
  end
end

function part_methods.body(part)
  passed(part, 2)
  return function()
    passed(part, 2)
    if part.done_ then return nil end
    return part.next_(part)
  end
end

local function part_too_large(part, max)
  local _, err = errors.fail("user_body", 413, "too_large", ("part '%s' is larger than %.0f bytes"):format(part.name, max))
  return err
end

--- part:read_all(max) -> the part's body, or nil, err, kind
function part_methods.read_all(part, max)
  return read_all(part, max, part_too_large)
end

return M
