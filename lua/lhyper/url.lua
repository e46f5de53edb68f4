--- Percent-decoding and application/x-www-form-urlencoded parsing (the
-- query string and form bodies), shared by the request helpers.
local byte, char, find, sub, gsub = string.byte, string.char, string.find, string.sub, string.gsub
local tonumber, type = tonumber, type

local M = {}

local function hex(h) return char(tonumber(h, 16)) end

--- bad_escape(s) -> the first "%" of s not followed by two hex digits,
-- with what follows it (at most 3 bytes), or nil when there is none
function M.bad_escape(s)
  local bad = find(s, "%%%X") or find(s, "%%%x%X") or find(s, "%%%x?$")
  return bad and sub(s, bad, bad + 2)
end

--- decode(s, plus) -> decoded string, or nil and the offending escape.
-- Every %XX becomes its byte; a % not followed by two hex digits makes the
-- whole string invalid. plus: "+" stands for a space (form encoding).
function M.decode(s, plus)
  if plus and find(s, "+", 1, true) then s = gsub(s, "%+", " ") end
  if not find(s, "%", 1, true) then return s end
  local bad = M.bad_escape(s)
  if bad then return nil, bad end
  return (gsub(s, "%%(%x%x)", hex))
end

-- the value at key in t becomes an array once the key repeats
local function put(t, k, v)
  local old = t[k]
  if old == nil then t[k] = v
  elseif type(old) == "table" then old[#old + 1] = v
  else t[k] = { old, v } end
end

--- parse(s, max_fields) -> table, or nil, message.
-- Pairs are split at "&", each at its first "="; a name without "=" gets
-- "" as its value; empty pairs are skipped. Names and values are decoded
-- with "+" as a space. A name seen again makes its value an array of
-- every value in order.
function M.parse(s, max_fields)
  local t, n, pos, len = {}, 0, 1, #s
  while pos <= len do
    local amp = find(s, "&", pos, true) or len + 1
    if amp > pos then
      n = n + 1
      if max_fields and n > max_fields then return nil, "more than " .. max_fields .. " fields" end
      local pair = sub(s, pos, amp - 1)
      local eq = find(pair, "=", 1, true)
      local k, v = pair, ""
      if eq then k, v = sub(pair, 1, eq - 1), sub(pair, eq + 1) end
      local dk, bad = M.decode(k, true)
      if not dk then return nil, "invalid percent-escape '" .. bad .. "'" end
      local dv
      dv, bad = M.decode(v, true)
      if not dv then return nil, "invalid percent-escape '" .. bad .. "'" end
      put(t, dk, dv)
    end
    pos = amp + 1
  end
  return t
end

-- bytes left as they are by encode: RFC 3986 unreserved
local function esc(c) return ("%%%02X"):format(byte(c)) end

--- encode(s) -> s with every byte outside A-Z a-z 0-9 - . _ ~ as %XX
function M.encode(s)
  return (gsub(s, "[^%w%-%._~]", esc))
end

return M
