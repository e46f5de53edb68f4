-- examples/proxy.lua: a streaming reverse proxy built on lhyper.request,
-- between curl and a Node upstream.
local h = require "helper"
local up = require "upstreams"

local UPSTREAM = [[
const http = require("http");
const crypto = require("crypto");
const server = http.createServer((req, res) => {
  const u = new URL(req.url, "http://x");
  const n = Number(u.searchParams.get("n") || 0);
  if (u.pathname === "/stream" || u.pathname === "/die") {
    const block = Buffer.alloc(65536, "s");
    if (u.pathname === "/stream") res.setHeader("content-length", n);
    let left = n;
    const pump = () => {
      while (left > 0) {
        if (u.pathname === "/die" && left <= n / 2) { req.socket.destroy(); return; }
        const k = Math.min(left, block.length);
        left -= k;
        if (!res.write(k === block.length ? block : block.subarray(0, k))) { res.once("drain", pump); return; }
      }
      res.end();
    };
    pump();
  } else if (u.pathname === "/sha") {
    const hash = crypto.createHash("sha256");
    let len = 0;
    req.on("data", (d) => { hash.update(d); len += d.length; });
    req.on("end", () => res.end(len + " " + hash.digest("hex")));
  } else {
    res.setHeader("x-upstream", "node");
    res.setHeader("connection", "keep-alive, x-private");
    res.setHeader("x-private", "hop");
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }));
  }
});
server.listen(0, "127.0.0.1", () => ready(server));
]]

describe("examples/proxy.lua", function()
  if not up.have("node") or not up.have("curl") then
    pending("node and curl are needed")
    return
  end
  local upstream, proxy
  setup(function()
    upstream = up.node(UPSTREAM)
    proxy = up.lua_script("examples/proxy.lua", "0 http://127.0.0.1:" .. upstream.port)
  end)
  teardown(function()
    if proxy then proxy:stop() end
    if upstream then upstream:stop() end
  end)

  local function url(path) return h.shell_quote("http://127.0.0.1:" .. proxy.port .. path) end

  it("forwards method, target and headers, without hop-by-hop fields", function()
    local out, code = h.curl("-i -X PATCH -H 'X-Custom: 1' -H 'Connection: x-gone' -H 'X-Gone: no' " .. url("/p/a?b=c"))
    assert.equal(0, code, out)
    assert.matches("^HTTP/1.1 200", out)
    assert.matches("\nx%-upstream: node\r", out)
    assert.is_nil(out:lower():find("x-private", 1, true), out)
    assert.matches('"method":"PATCH"', out, 1, true)
    assert.matches('"url":"/p/a?b=c"', out, 1, true)
    assert.matches('"x-custom":"1"', out, 1, true)
    assert.matches('"x-forwarded-for":"127.0.0.1"', out, 1, true)
    assert.is_nil(out:find('"x-gone"', 1, true), out)
  end)

  it("streams a chunked upload through to the upstream", function()
    local file = h.make_file(5 * 1024 * 1024 + 7)
    local digest = h.run("sha256sum " .. file):match("^(%x+)")
    local out, code = h.curl("-H 'Transfer-Encoding: chunked' --data-binary @" .. file .. " " .. url("/sha"))
    os.remove(file)
    assert.equal(0, code, out)
    assert.equal((5 * 1024 * 1024 + 7) .. " " .. digest, out)
  end)

  it("proxies a 1 GiB download with flat memory", function()
    local rss0 = h.rss_kib(proxy.pid)
    local out, code = h.curl("-o /dev/null -w '%{http_code} %{size_download}' " .. url("/stream?n=1073741824"), 60)
    assert.equal(0, code, out)
    assert.equal("200 1073741824", out)
    if h.SANITIZED then return end -- sanitizer runtimes hold freed memory on purpose
    local rss, hwm = h.rss_kib(proxy.pid)
    assert.is_true(hwm - rss0 < 24 * 1024, ("RSS grew from %d to a peak of %d KiB"):format(rss0, hwm))
    assert.is_true(rss < rss0 + 24 * 1024)
  end)

  it("aborts the client's connection when the upstream dies mid-body", function()
    local out, code = h.curl("-o /dev/null -w '%{http_code} %{size_download}' " .. url("/die?n=4194304"))
    assert.are_not.equal(0, code, out)
    assert.matches("transfer closed with outstanding read data", out, 1, true)
    local got = tonumber(out:match("200 (%d+)$"))
    assert.is_true(got ~= nil and got < 4194304, out)
  end)

  it("answers 502 when the upstream cannot be reached", function()
    -- a port nobody listens on and nobody can take meanwhile: with a port
    -- that was merely free a moment ago the proxy itself may be given it,
    -- and then forwards to itself until the head is too large
    local port, holder = up.dead_port()
    local dead = up.lua_script("examples/proxy.lua", "0 http://127.0.0.1:" .. port)
    local out, code = h.curl("-i " .. h.shell_quote("http://127.0.0.1:" .. dead.port .. "/x"))
    dead:stop()
    holder:close()
    assert.equal(0, code, out)
    assert.matches("^HTTP/1.1 502", out)
    assert.matches("upstream io: connection refused", out, 1, true)
  end)
end)
