-- Issue 18, item 5: a handler's header mistakes get a message that names
-- the header and the reason (500, and on_error), instead of being dropped
-- or blamed on "CR, LF, NUL or bad token"; names that differ only in case
-- in one table are refused, not both sent.
local h = require "helper"

local parse = h.parse_fields

describe("response header mistakes", function()
  local srv
  setup(function() srv = h.start_server({ record_errors = true }) end)
  teardown(function() if srv then srv:stop() end end)

  local function report_for(target)
    local deadline = h.now() + 3
    repeat
      local res = assert(h.raw_request(srv.port, h.req("GET", "/reports")))
      for line in res.body:gmatch("[^\n]+") do
        local r = parse(line)
        if r.target == target then return r end
      end
      h.sleep(0.05)
    until h.now() > deadline
  end

  local cases = {
    { "map", "header 'x-a': a table value must be an array of values (this one has no array part)" },
    { "boolean", "header 'x-b': value must be a string, a number or an array of them, not a boolean" },
    { "cl_abc", "header 'content-length': 'abc' is not a non-negative integer" },
    { "name", "header name 'x y' is not a token" },
    { "crlf", "header 'x-c': value holds CR, LF or NUL" },
    { "cl_twice", "header 'content-length': '4' differs from an earlier value" },
    { "pair", "headers[1] must be a {name, value} pair, not a string" },
    { "pairname", "headers[1]: the name must be a string, not a number" },
    { "nested", "header 'x-n': an array of values holds a table" },
    { "notable", "headers must be a table, not a string" },
  }
  for _, c in ipairs(cases) do
    it("answers 500 and names the header and the reason: " .. c[1], function()
      local target = "/hdr?case=" .. c[1]
      local res = assert(h.raw_request(srv.port, h.req("GET", target)))
      assert.equal(500, res.status)
      assert.is_nil(res.headers.get("x-injected"))
      local r = report_for(target)
      assert.truthy(r, "not reported")
      assert.equal("user_service", r.kind)
      assert.equal(c[2], r.message)
    end)
  end

  it("refuses names that differ only in case in one table", function()
    for _, case in ipairs { "dup", "dup3" } do
      local target = "/hdr?case=" .. case
      local res = assert(h.raw_request(srv.port, h.req("GET", target)))
      assert.equal(500, res.status)
      local r = report_for(target)
      assert.truthy(r, "not reported")
      assert.truthy(r.message:find("in one table are the same field", 1, true), r.message)
    end
    local msg = report_for("/hdr?case=dup").message
    assert.truthy(msg:find("'Content-Type'", 1, true) and msg:find("'content-type'", 1, true), msg)
  end)

  it("sends no field for an empty array, and keeps a single name in any case", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hdr?case=empty")))
    assert.equal(200, res.status)
    assert.equal(0, res.headers.count("x-e"))
    assert.equal("yes", res.headers.get("x-fine"))
  end)

  it("raises in req:upgrade with the header named", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("GET /hdr/upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"))
    assert.equal(500, assert(r:final_response()).status)
    local rep = report_for("/hdr/upgrade")
    assert.truthy(rep and rep.message:find("req:upgrade: header 'x-bad': value must be a string", 1, true),
      rep and rep.message)
  end)
end)
