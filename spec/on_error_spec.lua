local h = require "helper"

-- Issue 3: server-side errors reach the on_error(err, info) option as error
-- objects with a kind.
describe("on_error", function()
  local srv
  setup(function() srv = h.start_server({ record_errors = true, header_read_timeout = 0.2 }) end)
  teardown(function() if srv then srv:stop() end end)

  local function kinds()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/errors")))
    return "," .. res.body .. ","
  end

  local function wait_for(kind)
    local deadline = h.now() + 2
    local seen
    repeat
      seen = kinds()
      if seen:find("," .. kind .. ",", 1, true) then return true end
      h.sleep(0.05)
    until h.now() > deadline
    return false, seen
  end

  it("reports a malformed request as kind parse", function()
    local res = assert(h.raw_request(srv.port, "BROKEN\r\n\r\n"))
    assert.equal(400, res.status)
    assert.is_true(wait_for("parse"))
  end)

  it("reports a slow head as kind header_timeout", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("GET /hello HTTP/1.1\r\n"))
    r:rest(2)
    assert.is_true(wait_for("header_timeout"))
  end)

  it("reports an EOF in the middle of a body as kind incomplete", function()
    local sock = assert(h.connect(srv))
    assert(sock:send("POST /sink?delay=0.1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"))
    h.sleep(0.05)
    sock:close()
    local ok, seen = wait_for("incomplete")
    assert.is_true(ok or seen:find(",closed,", 1, true) ~= nil or seen:find(",canceled,", 1, true) ~= nil, seen)
  end)

  it("reports a handler error as kind user_service", function()
    assert.equal(500, assert(h.raw_request(srv.port, h.req("GET", "/error"))).status)
    assert.is_true(wait_for("user_service"))
  end)
end)
