local h = require "helper"

local MiB = 1024 * 1024
local RSS_GROWTH_LIMIT_KIB = 8 * 1024

-- Peak RSS must not grow by more than the limit (not checked under
-- sanitizers, whose allocators keep freed memory in quarantine).
local function assert_flat(growth_kib, what)
  if h.SANITIZED then return end
  assert.is_true(growth_kib < RSS_GROWTH_LIMIT_KIB,
    string.format("peak RSS grew by %d KiB%s", growth_kib, what or ""))
end

-- Each test gets a fresh server so its peak RSS (VmHWM) is its own.
describe("large bodies and backpressure", function()
  local srv
  before_each(function()
    srv = h.start_server()
    -- warm up: first requests allocate buffers, Lua tables and the Date cache
    for _ = 1, 3 do
      assert.equal(200, assert(h.raw_request(srv.port, h.req("POST", "/sink", nil, string.rep("w", 100000)))).status)
      assert.equal(200, assert(h.raw_request(srv.port, h.req("GET", "/stream?n=300000"))).status)
    end
  end)
  after_each(function() if srv then srv:stop() end end)

  it("takes a 10 MiB chunked upload to a slow reader with flat RSS", function()
    local file = h.make_file(10 * MiB)
    finally(function() os.remove(file) end)
    local _, hwm0 = h.rss_kib(srv.pid)
    local out, code = h.curl(string.format(
      "-H 'Transfer-Encoding: chunked' -H 'Expect:' --data-binary @%s -w ' %%{http_code}' " ..
      "'http://127.0.0.1:%d/sink?delay=0.3&slow=0.1'", file, srv.port), 30)
    local _, hwm1 = h.rss_kib(srv.pid)
    assert.equal(0, code, out)
    assert.equal(tostring(10 * MiB) .. " 200", out)
    assert_flat(hwm1 - hwm0)
  end)

  it("takes a 10 MiB Content-Length upload to a slow reader with flat RSS", function()
    local file = h.make_file(10 * MiB)
    finally(function() os.remove(file) end)
    local _, hwm0 = h.rss_kib(srv.pid)
    local out, code = h.curl(string.format(
      "-H 'Expect:' --data-binary @%s -w ' %%{http_code}' 'http://127.0.0.1:%d/sink?delay=0.3&slow=0.1'",
      file, srv.port), 30)
    local _, hwm1 = h.rss_kib(srv.pid)
    assert.equal(0, code, out)
    assert.equal(tostring(10 * MiB) .. " 200", out)
    assert_flat(hwm1 - hwm0)
  end)

  it("streams a 100 MiB download from an iterator with flat RSS", function()
    local _, hwm0 = h.rss_kib(srv.pid)
    local out, code = h.curl(string.format(
      "-o /dev/null -w '%%{http_code} %%{size_download}' 'http://127.0.0.1:%d/stream?n=%d'",
      srv.port, 100 * MiB), 60)
    local _, hwm1 = h.rss_kib(srv.pid)
    assert.equal(0, code, out)
    assert.equal("200 " .. 100 * MiB, out)
    assert_flat(hwm1 - hwm0)
  end)

  it("stops pulling the response iterator while the client does not read", function()
    local n = 32 * MiB
    local sock = assert(h.connect(srv))
    finally(function() sock:close() end)
    local _, hwm0 = h.rss_kib(srv.pid)
    assert(sock:send(string.format("GET /stream?n=%d HTTP/1.0\r\n\r\n", n)))
    h.sleep(0.5) -- the client reads nothing; kernel buffers fill up
    local _, hwm_stalled = h.rss_kib(srv.pid)
    -- now read everything: head, then a close-delimited body
    local got, head_done, buf = 0, false, ""
    local deadline = h.now() + 30
    while h.now() < deadline do
      local data, err, partial = sock:receive(65536)
      data = data or partial
      if not head_done then
        buf = buf .. data
        local i = buf:find("\r\n\r\n", 1, true)
        if i then
          assert.truthy(buf:match("^HTTP/1%.[01] 200"), buf:sub(1, 40))
          head_done, got = true, #buf - (i + 3)
          buf = nil
        end
      else
        got = got + #data
      end
      if err then break end
    end
    local _, hwm1 = h.rss_kib(srv.pid)
    assert.equal(n, got)
    assert_flat(hwm_stalled - hwm0, " while the client was stalled")
    assert_flat(hwm1 - hwm0)
  end)

  it("uploads and echoes 4 MiB through Python http.client", function()
    local out, code = h.python([[
import http.client, sys, hashlib
data = bytes(range(256)) * (4 * 1024 * 4)
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
c.request("POST", "/echo", body=data)
r = c.getresponse()
body = r.read()
print(r.status, len(body), body == data)
c.close()
]], tostring(srv.port), 30)
    assert.equal(0, code, out)
    assert.equal("200 4194304 True\n", out)
  end)
end)
