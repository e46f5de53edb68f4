local h = require "helper"

describe("server basics", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("answers hello to curl", function()
    local out, code = h.curl(string.format("-i http://127.0.0.1:%d/hello", srv.port))
    assert.equal(0, code, out)
    assert.truthy(out:match("^HTTP/1%.1 200"), out)
    assert.truthy(out:lower():find("content-type: text/plain", 1, true), out)
    assert.truthy(out:find("\r\n\r\nHello, World!$"), out)
  end)

  it("sends one shared header table on every response and leaves it as it was", function()
    local out, code = h.python([[
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
for i in range(20):
    c.request("GET", "/shared")
    r = c.getresponse()
    assert r.read() == b"shared"
    assert r.getheader("content-type") == "text/plain", r.getheaders()
    assert r.getheader("x-shared") == "a, b", r.getheaders()
c.request("GET", "/shared/check")
print(c.getresponse().read().decode())
]], tostring(srv.port))
    assert.equal(0, code, out)
    assert.equal("content-type=text/plain;x-shared=a,b#2\n", out)
  end)

  it("answers 404 for an unknown path", function()
    local out, code = h.curl(string.format("-o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/nope", srv.port))
    assert.equal(0, code, out)
    assert.equal("404", out)
  end)

  it("keeps the connection alive across two URLs in one curl run", function()
    local out, code = h.curl(string.format("-v http://127.0.0.1:%d/hello http://127.0.0.1:%d/info",
      srv.port, srv.port))
    assert.equal(0, code, out)
    assert.truthy(out:find("Re-using existing connection", 1, true), out)
    assert.truthy(out:find("left intact", 1, true), out)
    local _, connects = out:gsub("Connected to 127%.0%.0%.1", "")
    assert.equal(1, connects, out)
  end)

  it("serves several requests on one Python http.client connection", function()
    local out, code = h.python([[
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
ports = set()
for i in range(5):
    c.request("POST" if i % 2 else "GET", "/info?seq=%d" % i, body=(b"x" * i) if i % 2 else None)
    r = c.getresponse()
    body = r.read().decode()
    assert r.status == 200, r.status
    assert "seq=%d" % i in body, body
    assert r.getheader("x-seq") == str(i)
    for line in body.splitlines():
        if line.startswith("remote_port="):
            ports.add(line)
print("distinct", len(ports), "local", c.sock.getsockname()[1])
c.close()
]], tostring(srv.port))
    assert.equal(0, code, out)
    assert.truthy(out:match("^distinct 1 local %d+"), out)
  end)

  it("reuses sockets for a node keep-alive agent", function()
    local out, code = h.node([[
const http = require("http");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const port = +process.argv[2];
let reused = 0, done = 0;
function one(i) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/hello", agent }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        if (res.statusCode !== 200 || body !== "Hello, World!") reject(new Error("bad " + res.statusCode + body));
        if (req.reusedSocket) reused++;
        done++;
        resolve();
      });
    });
    req.on("error", reject);
  });
}
(async () => {
  for (let i = 0; i < 4; i++) await one(i);
  console.log("done " + done + " reused " + reused);
  agent.destroy();
})().catch((e) => { console.log("error " + e.message); process.exit(1); });
]], tostring(srv.port))
    assert.equal(0, code, out)
    assert.equal("done 4 reused 3\n", out)
  end)

  it("gives the handler method, target, path, query, version and peer", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/info?a=1&b=2")))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    local info = h.parse_info(res.body)
    assert.equal("GET", info.method)
    assert.equal("/info?a=1&b=2", info.target)
    assert.equal("/info", info.path)
    assert.equal("a=1&b=2", info.query)
    assert.equal("1.1", info.version)
    assert.equal("127.0.0.1", info.remote_addr)
    local _, myport = sock:getsockname()
    assert.equal(tostring(myport), info.remote_port)
  end)

  it("reports a nil query when the target has none", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/info")))
    assert.equal("nil", h.parse_info(res.body).query)
  end)

  it("splits path and query of an absolute-form target", function()
    local res = assert(h.raw_request(srv.port,
      "GET http://127.0.0.1/info?x=y HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
    assert.equal(200, res.status)
    local info = h.parse_info(res.body)
    assert.equal("/info", info.path)
    assert.equal("x=y", info.query)
    assert.equal("http://127.0.0.1/info?x=y", info.target)
  end)

  it("looks headers up case-insensitively and walks them in order", function()
    local raw = "GET /info?h=X-Dup HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Dup: one\r\n" ..
      "User-Agent: spec\r\nx-dup: two\r\nX-DUP: three\r\n\r\n"
    local res = assert(h.raw_request(srv.port, raw))
    assert.equal(200, res.status)
    local info = h.parse_info(res.body)
    assert.equal("one", info.get)
    assert.equal("one", info.index)
    assert.equal("one|two|three", info.all)
    assert.same({ "host: 127.0.0.1", "x-dup: one", "user-agent: spec", "x-dup: two", "x-dup: three" },
      info.headers)
  end)

  it("returns nil for an absent header and an empty list from get_all", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/info?h=x-absent")))
    local info = h.parse_info(res.body)
    assert.equal("nil", info.get)
    assert.equal("nil", info.index)
    assert.equal("", info.all)
  end)

  it("echoes a request body read with the body iterator", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/echo", nil, "ping pong")))
    assert.equal(200, res.status)
    assert.equal("POST", res.headers.get("x-method"))
    assert.equal("ping pong", res.body)
  end)
end)
