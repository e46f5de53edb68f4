local h = require "helper"

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
  Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Parses an IMF-fixdate (RFC 9110 5.6.7) into a UTC epoch, or nil.
local function imf_fixdate(s)
  local wd, d, mon, y, hh, mm, ss = (s or ""):match(
    "^(%a%a%a), (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not wd or not MONTHS[mon] then return nil end
  local days_before = { 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334 }
  y, d = tonumber(y), tonumber(d)
  local m = MONTHS[mon]
  local days = (y - 1970) * 365 + (y - 1969) // 4 - (y - 1901) // 100 + (y - 1601) // 400
    + days_before[m] + d - 1
  if m > 2 and ((y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0) then days = days + 1 end
  local names = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" }
  if names[days % 7 + 1] ~= wd then return nil end
  return days * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

describe("response framing", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  local function get(target, method)
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req(method or "GET", target)))
    local res = assert(r:final_response({ method = method }))
    return res, r, sock
  end

  it("sends a string body with an exact Content-Length", function()
    local res = get("/length?n=1000")
    assert.equal(200, res.status)
    assert.equal("1000", res.headers.get("content-length"))
    assert.is_nil(res.headers.get("transfer-encoding"))
    assert.equal(string.rep("L", 1000), res.body)
  end)

  it("uses the handler's Content-Length for an iterator body", function()
    local res, r = get("/length?n=1000&iter=1")
    assert.equal(200, res.status)
    assert.equal("length", res.framing)
    assert.equal(1000, #res.body)
    assert.is_true(r:quiet(0.1))
  end)

  it("sends an iterator body chunked on HTTP/1.1, ending with the last chunk", function()
    local res, r = get("/stream?n=300000")
    assert.equal(200, res.status)
    assert.equal("chunked", (res.headers.get("transfer-encoding") or ""):lower())
    assert.is_nil(res.headers.get("content-length"))
    assert.is_true(res.complete)
    assert.equal(300000, #res.body)
    assert.equal(0, res.chunks[#res.chunks])
    assert.truthy(r:raw_string():find("\r\n0\r\n\r\n$"))
    assert.is_true(r:quiet(0.1))
  end)

  it("never writes an empty chunk for empty strings from the iterator", function()
    local res = get("/stream?n=200000&empty=1")
    assert.is_true(res.complete)
    assert.equal(200000, #res.body)
    for i = 1, #res.chunks - 1 do assert.is_true(res.chunks[i] > 0) end
  end)

  it("sends Content-Length: 0 for a nil body", function()
    local res = get("/empty")
    assert.equal(200, res.status)
    assert.equal("0", res.headers.get("content-length"))
    assert.is_nil(res.headers.get("transfer-encoding"))
    assert.equal("", res.body)
  end)

  it("sends Content-Length: 0 for an empty string body", function()
    local res = get("/emptystr")
    assert.equal("0", res.headers.get("content-length"))
    assert.equal("1", res.headers.get("x-empty"))
  end)

  it("sends no body for HEAD but keeps the connection usable", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("HEAD", "/hello") .. h.req("HEAD", "/stream?n=100000") .. h.req("GET", "/hello")))
    local res = assert(r:final_response({ method = "HEAD" }))
    assert.equal(200, res.status)
    local cl = res.headers.get("content-length")
    assert.truthy(cl == nil or cl == "13", cl)
    res = assert(r:final_response({ method = "HEAD" }))
    assert.equal(200, res.status)
    res = assert(r:final_response())
    assert.equal("Hello, World!", res.body)
    assert.is_true(r:quiet(0.1))
  end)

  for _, code in ipairs({ 204, 304 }) do
    it("sends no body for " .. code .. " even when the handler gives one", function()
      local sock, r = h.connect(srv)
      finally(function() sock:close() end)
      assert(sock:send(h.req("GET", "/status/" .. code) .. h.req("GET", "/hello")))
      local res = assert(r:final_response())
      assert.equal(code, res.status)
      assert.is_nil(res.headers.get("transfer-encoding"))
      if code == 204 then assert.is_nil(res.headers.get("content-length")) end
      res = assert(r:final_response())
      assert.equal(200, res.status)
      assert.equal("Hello, World!", res.body)
    end)
  end

  it("sends any status code from 200 to 999 the handler returns", function()
    for _, code in ipairs({ 201, 299, 301, 404, 418, 503, 599, 999 }) do
      local res = get("/status/" .. code)
      assert.equal(code, res.status)
      assert.equal("status " .. code .. " body", res.body)
    end
  end)

  it("writes a status line with a reason phrase", function()
    local res = get("/hello")
    assert.equal("HTTP/1.1 200 OK", res.status_line)
  end)

  it("sends a well-formed, current Date header", function()
    local res = get("/hello")
    local date = res.headers.get("date")
    local t = imf_fixdate(date)
    assert.is_number(t, "bad Date: " .. tostring(date))
    assert.is_true(math.abs(t - os.time()) <= 3, date)
    assert.equal(1, res.headers.count("date"))
  end)

  it("refreshes the cached Date header as seconds pass", function()
    local d1 = get("/hello").headers.get("date")
    h.sleep(1.1)
    local d2 = get("/hello").headers.get("date")
    assert.is_true(imf_fixdate(d2) > imf_fixdate(d1), d1 .. " then " .. d2)
  end)

  it("keeps the order of array-of-pairs headers and repeats names", function()
    local res = get("/headers")
    local names = {}
    for _, pair in ipairs(res.headers.list) do
      local n = pair[1]:lower()
      if n:match("^x%-") or n == "set-cookie" then names[#names + 1] = n .. "=" .. pair[2] end
    end
    assert.same({ "x-first=1", "set-cookie=a=1", "x-middle=2", "set-cookie=b=2", "x-last=3" }, names)
  end)

  it("sends every value of a map header given as a list", function()
    local res = get("/headers?map=1")
    assert.same({ "one", "two" }, res.headers.all("x-multi"))
    assert.equal("s", res.headers.get("x-single"))
  end)

  it("sends exactly one Content-Length and no Transfer-Encoding with it", function()
    local res = get("/hello")
    assert.equal(1, res.headers.count("content-length"))
    assert.equal(0, res.headers.count("transfer-encoding"))
  end)

  it("receives a streamed body with curl", function()
    local out, code = h.curl(string.format("-s -o /dev/null -w '%%{http_code} %%{size_download}' 'http://127.0.0.1:%d/stream?n=1000000'", srv.port))
    assert.equal(0, code, out)
    assert.equal("200 1000000", out)
  end)
end)
