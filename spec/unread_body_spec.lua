-- Issue 18, item 1: a handler that answers without reading the request
-- body (an auth check answering 401 to an upload) must not close a
-- keep-alive connection silently. lhyper drops what remains of the body
-- within a budget (1 MiB) and keeps the connection; when the rest is known
-- to be larger, or the client waits for 100 Continue, the response says
-- Connection: close; and the close lingers so that unread input does not
-- turn into a reset that destroys the response. Checked with keep-alive
-- clients of Python (http.client), Node (keep-alive agent) and curl, with
-- bodies from 1 KB to 50 MB, with and without Expect: 100-continue.
local h = require "helper"
local up = require "upstreams"

local SIZES = { 1000, 65536, 1000000, 10000000, 50000000 }
local BUDGET = 1024 * 1024

describe("a request body the handler does not read", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("leaves Python http.client's keep-alive connection usable (or says Connection: close)", function()
    local out = h.run(string.format("%stimeout -s KILL 120 /usr/bin/python3 -c %s %d 2>&1", h.CLIENT_ENV, h.shell_quote([[
import http.client, sys
port = int(sys.argv[1])
for size in [1000, 65536, 1000000, 10000000, 50000000]:
    for expect in [False, True]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        h = {"Content-Type": "application/octet-stream"}
        if expect: h["Expect"] = "100-continue"
        try:
            conn.request("POST", "/status/401", body=b"x" * size, headers=h)
            r = conn.getresponse(); r.read()
            first_sock = conn.sock
            conn.request("GET", "/hello")
            r2 = conn.getresponse(); body = r2.read()
            print("size=%d expect=%s status=%d close=%s second=%d reused=%s body=%s" % (size, expect,
                r.status, r.will_close, r2.status, conn.sock is first_sock and first_sock is not None, body.decode()))
        except Exception as e:
            print("size=%d expect=%s EXC %s %s" % (size, expect, type(e).__name__, e))
        conn.close()
]]), srv.port))
    for _, size in ipairs(SIZES) do
      for _, expect in ipairs { "False", "True" } do
        local line = out:match("size=" .. size .. " expect=" .. expect .. " ([^\n]*)")
        assert.truthy(line, out)
        assert.is_nil(line:find("EXC", 1, true), line)
        local close = expect == "True" or size > BUDGET
        assert.truthy(line:find("status=401 close=" .. (close and "True" or "False") .. " second=200", 1, true),
          size .. " " .. expect .. ": " .. line)
        -- a body within the budget was dropped: the same connection served the next request
        if not close then assert.truthy(line:find("reused=True", 1, true), line) end
        assert.truthy(line:find("body=Hello, World!", 1, true), line)
      end
    end
  end)

  it("leaves a Node keep-alive agent's socket usable (or says Connection: close)", function()
    if not up.have("node") then return pending("node is needed") end
    local out = h.node([[
const http = require("http");
const port = Number(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function req(opts, body) {
  return new Promise((resolve) => {
    const r = http.request({ host: "127.0.0.1", port, agent, ...opts }, (res) => {
      let n = 0; res.on("data", (d) => n += d.length);
      res.on("end", () => resolve({ status: res.statusCode, conn: res.headers.connection || "-", reused: r.reusedSocket }));
    });
    r.on("error", (e) => resolve({ err: e.code || e.message }));
    r.end(body);
  });
}
(async () => {
  for (const size of [1000, 65536, 1000000, 10000000, 50000000]) {
    for (const expect of [false, true]) {
      const h = { "content-type": "application/octet-stream", "content-length": size };
      if (expect) h["expect"] = "100-continue";
      const a = await req({ method: "POST", path: "/status/401", headers: h }, Buffer.alloc(size, "x"));
      const b = await req({ method: "GET", path: "/hello" });
      console.log(`size=${size} expect=${expect} status=${a.status} err=${a.err || "-"} conn=${a.conn} second=${b.status} err2=${b.err || "-"} reused=${b.reused}`);
    }
  }
  agent.destroy();
})();
]], tostring(srv.port), 120)
    for _, size in ipairs(SIZES) do
      for _, expect in ipairs { "false", "true" } do
        local line = out:match("size=" .. size .. " expect=" .. expect .. " ([^\n]*)")
        assert.truthy(line, out)
        local close = expect == "true" or size > BUDGET
        assert.truthy(line:find("status=401 err=- conn=" .. (close and "close" or "-") .. " second=200 err2=-", 1, true),
          size .. " " .. expect .. ": " .. line)
        if not close then assert.truthy(line:find("reused=true", 1, true), line) end
      end
    end
  end)

  it("gives curl the next response on the same connection or a new one", function()
    for _, size in ipairs { 1000, 65536, 10000000 } do
      local file = h.make_file(size)
      finally(function() os.remove(file) end)
      for _, expect in ipairs { "", "-H 'Expect:'", "-H 'Expect: 100-continue'" } do
        local out = h.curl(string.format("-o /dev/null -w '%%{http_code} %%{num_connects}\\n' %s --data-binary @%s "
          .. "http://127.0.0.1:%d/status/401 --next -o /dev/null -w '%%{http_code} %%{num_connects}\\n' http://127.0.0.1:%d/hello",
          expect, h.shell_quote(file), srv.port, srv.port), 60)
        assert.truthy(out:find("^401 1\n200 [01]\n$"), size .. " " .. expect .. ": " .. out)
      end
    end
  end)

  it("drops a small chunked body after the response and serves the next request on the connection", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("POST /status/401 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"))
    local res = assert(r:response())
    assert.equal(401, res.status)
    assert.is_nil(res.headers.get("connection"))
    -- the body comes after the response: dropped as it comes
    for _ = 1, 8 do assert(sock:send("8000\r\n" .. string.rep("c", 0x8000) .. "\r\n")) end
    assert(sock:send("0\r\n\r\n" .. h.req("GET", "/hello")))
    local res2 = assert(r:response())
    assert.equal(200, res2.status)
    assert.equal("Hello, World!", res2.body)
  end)

  it("drops the body behind a streamed response too", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local body = string.rep("b", 300000)
    assert(sock:send("POST /stream?n=100 HTTP/1.1\r\nHost: x\r\nContent-Length: " .. #body .. "\r\n\r\n"))
    local res = assert(r:response())
    assert.equal(200, res.status)
    assert.equal(100, #res.body)
    assert(sock:send(body .. h.req("GET", "/hello")))
    assert.equal(200, assert(r:response()).status)
  end)

  it("delivers the whole response before closing when a large body is still coming", function()
    -- the client keeps sending 20 MB and reads only afterwards: a close
    -- that did not linger would reset the connection under the response
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local n = 20000000
    assert(sock:send("POST /status/401 HTTP/1.1\r\nHost: x\r\nContent-Length: " .. n .. "\r\n\r\n"))
    local block = string.rep("x", 65536)
    local sent = 0
    while sent < n do
      local k = math.min(#block, n - sent)
      local ok = sock:send(k == #block and block or block:sub(1, k))
      assert.truthy(ok, "send failed after " .. sent .. " bytes")
      sent = sent + k
    end
    local res = assert(r:response())
    assert.equal(401, res.status)
    assert.equal("close", (res.headers.get("connection") or ""):lower())
    assert.is_true(r:expect_close(5))
  end)
end)
