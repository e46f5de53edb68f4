-- lhyper's client over https: against lhyper's own TLS server, Debian's
-- nginx with TLS and Python's http.server over ssl; verification refuses
-- a wrong name, an expired certificate and an unknown CA, each with a
-- clear error; pooled connections are reused and new ones resume.
local h = require "helper"
local up = require "upstreams"
local tc = require "tls_certs"

local run = up.run

-- the exchange script most tests share: three GETs through one client,
-- then three through a client that pools nothing (new connections)
local REUSE = [[
local c = lhyper.client{ tls = { ca = ca } }
local ports = {}
for i = 1, 3 do
  local res = assert(c:request{ url = base .. path })
  local body = res:read_all()
  ports[res.local_port] = true
  say("status" .. i .. "=" .. res.status .. ":" .. body:gsub("\n", " "))
  say("reused" .. i .. "=" .. tostring(res.reused))
  say("version" .. i .. "=" .. res.tls.version .. ":" .. tostring(res.tls.alpn))
end
local n = 0
for _ in pairs(ports) do n = n + 1 end
say("ports=" .. n)
local fresh = lhyper.client{ tls = { ca = ca, max_version = max }, pool_max_idle_per_host = 0 }
for i = 1, 3 do
  local res = assert(fresh:request{ url = base .. path })
  res:read_all()
  say("resumed" .. i .. "=" .. tostring(res.tls.resumed) .. ":" .. tostring(res.reused))
end
]]

describe("lhyper.request over https #peers", function()
  if not tc.available() then
    pending(tc.MISSING)
    return
  end
  local certs, srv
  setup(function() certs, srv = tc.start_server() end)
  teardown(function() tc.stop(certs, srv) end)

  local function base(port, host) return string.format("https://%s:%d", host or "localhost", port) end

  it("talks to lhyper's TLS server: pooled reuse, then resumption on new connections", function()
    for _, max in ipairs({ "1.3", "1.2" }) do
      local r = run(REUSE, { base = base(srv.port), path = "/hello", ca = certs.ca, max = max })
      for i = 1, 3 do
        assert.equal("200:Hello, World!", r["status" .. i])
        assert.equal(tostring(i > 1), r["reused" .. i])
        assert.equal("TLSv1.3:http/1.1", r["version" .. i])
      end
      assert.equal("1", r.ports)
      assert.equal("false:false", r.resumed1, max)
      assert.equal("true:false", r.resumed2, max)
      assert.equal("true:false", r.resumed3, max)
    end
  end)

  it("streams a request body and a 32 MiB response through TLS", function()
    local r = run([[
local parts, i = {}, 0
local chunk = string.rep("z", 100000)
local res = assert(lhyper.request{ url = base .. "/echo", method = "POST", tls = { ca = ca },
  body = function() i = i + 1; if i <= 50 then return chunk end end })
local body = res:read_all()
say("echo=" .. res.status .. ":" .. #body .. ":" .. tostring(body == chunk:rep(50)))
res = assert(lhyper.request{ url = base .. "/stream?n=33554432", tls = { ca = ca } })
local n = 0
for piece in res:body() do n = n + #piece end
say("stream=" .. n)
]], { base = base(srv.port), ca = certs.ca })
    assert.equal("200:5000000:true", r.echo)
    assert.equal(tostring(32 * 1024 * 1024), r.stream)
  end)

  it("matches an IP address against the certificate, and sends SNI when asked", function()
    local s = h.start_server({ tls = certs.server_tls(),
      sni_certs = { ["b.test"] = { certs.b.cert, certs.b.key } } })
    finally(function() s:stop() end)
    local r = run([[
local res = assert(lhyper.request{ url = base .. "/tls", tls = { ca = ca } })
say("ip=" .. res.status .. ":" .. res:read_all():match("sni=(%S+)"))
res = assert(lhyper.request{ url = base .. "/tls", tls = { ca = ca, sni = "b.test" } })
say("sni=" .. res.status .. ":" .. res:read_all():match("sni=(%S+)"))
local _, err = lhyper.request{ url = base .. "/tls", tls = { ca = ca, sni = "c.test" } }
say("other=" .. err.kind .. ":" .. tostring(err.what) .. ":" .. err.message)
]], { base = base(s.port, "127.0.0.1"), ca = certs.ca })
    assert.equal("200:nil", r.ip) -- no SNI for an address
    assert.equal("200:b.test", r.sni)
    -- c.test gets the default certificate, which does not name it
    assert.equal("tls:verify:certificate verification failed: hostname mismatch", r.other:lower())
  end)

  it("refuses a wrong name, an expired certificate and an unknown CA with clear errors", function()
    local bad = {}
    for _, name in ipairs({ "wrong", "expired", "stranger" }) do
      bad[name] = h.start_server({ tls = { cert = certs[name].cert, key = certs[name].key } })
    end
    finally(function() for _, s in pairs(bad) do s:stop() end end)
    local r = run([[
local ports = { wrong = wrong, expired = expired, stranger = stranger }
for _, name in ipairs({ "wrong", "expired", "stranger" }) do
  local res, err, kind = lhyper.request{ url = "https://localhost:" .. ports[name] .. "/hello", tls = { ca = ca } }
  say(name .. "=" .. tostring(res) .. "|" .. kind .. "|" .. tostring(err.what) .. "|" .. tostring(err) .. "|" .. tostring(err:is_tls()))
end
-- verification can be turned off
local res = assert(lhyper.request{ url = "https://localhost:" .. expired .. "/hello", tls = { verify = false } })
say("noverify=" .. res.status)
-- the default client trusts the system's CAs only
local _, err = lhyper.request{ url = "https://localhost:" .. wrong .. "/hello", connect_timeout = 60 }
say("system=" .. tostring(err))
]], { ca = certs.ca, wrong = tostring(bad.wrong.port), expired = tostring(bad.expired.port),
      stranger = tostring(bad.stranger.port) })
    assert.equal("nil|tls|verify|certificate verification failed: hostname mismatch|true", r.wrong:gsub("Hostname", "hostname"))
    assert.equal("nil|tls|verify|certificate verification failed: certificate has expired|true", r.expired)
    assert.equal("nil|tls|verify|certificate verification failed: unable to get local issuer certificate|true", r.stranger)
    assert.equal("200", r.noverify)
    assert.equal("certificate verification failed: unable to get local issuer certificate", r.system)
  end)

  it("presents a client certificate when the server asks for one", function()
    local s = h.start_server({ tls = certs.server_tls { client_ca = certs.ca } })
    finally(function() s:stop() end)
    local r = run([[
local res = assert(lhyper.request{ url = base .. "/hello", tls = { ca = ca, cert = cert, key = key } })
say("with=" .. res.status .. ":" .. res:read_all())
local _, err, kind = lhyper.request{ url = base .. "/hello", tls = { ca = ca } }
say("without=" .. kind .. ":" .. tostring(err))
]], { base = base(s.port), ca = certs.ca, cert = certs.client.cert, key = certs.client.key })
    assert.equal("200:Hello, World!", r.with)
    assert.truthy(r.without:find("^tls:.*alert certificate required"), r.without)
  end)

  it("talks to nginx over TLS: reuse, resumption, a large body", function()
    if not up.have("nginx") then
      pending("nginx is not installed (apt-get install nginx)")
      return
    end
    local nginx = up.nginx(string.format([[
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_timeout 60;
    location = /hello { return 200 "hello from nginx over tls\n"; }
    location /static/ { alias ROOT/static/; }
]], certs.server.cert, certs.server.key), { ["big.bin"] = string.rep("0123456789abcdef", 65536 * 4) },
      { ssl = true })
    finally(function() nginx:stop() end)
    for _, max in ipairs({ "1.3", "1.2" }) do
      local r = run(REUSE, { base = base(nginx.port), path = "/hello", ca = certs.ca, max = max })
      assert.equal("200:hello from nginx over tls ", r.status1)
      assert.equal("true", r.reused3)
      assert.equal("1", r.ports)
      assert.equal("true:false", r.resumed2, max)
      assert.equal("true:false", r.resumed3, max)
    end
    local r = run([[
local res = assert(lhyper.request{ url = base .. "/static/big.bin", tls = { ca = ca } })
local body = res:read_all(1e8)
say("big=" .. res.status .. ":" .. #body .. ":" .. tostring(body == string.rep("0123456789abcdef", 65536 * 4)))
]], { base = base(nginx.port), ca = certs.ca })
    assert.equal("200:4194304:true", r.big)
  end)

  it("talks to Python's http.server over ssl, with and without a client certificate", function()
    local py = up.python([[
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        peer = self.connection.getpeercert()
        who = dict(x[0] for x in peer["subject"]).get("organizationalUnitName") if peer else "anonymous"
        body = ("hello %s over %s" % (who, self.connection.version())).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ctx.load_verify_locations(sys.argv[3])
ctx.verify_mode = ssl.CERT_OPTIONAL
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("PORT %d" % srv.server_address[1], flush=True)
srv.serve_forever()
]], table.concat({ h.shell_quote(certs.server.cert), h.shell_quote(certs.server.key), h.shell_quote(certs.ca) }, " "))
    finally(function() py:stop() end)
    local r = run([[
local c = lhyper.client{ tls = { ca = ca } }
for i = 1, 2 do
  local res = assert(c:request{ url = base .. "/" })
  say("anon" .. i .. "=" .. res.status .. ":" .. res:read_all() .. ":" .. tostring(res.reused))
end
local res = assert(lhyper.request{ url = base .. "/", tls = { ca = ca, cert = cert, key = key } })
say("client=" .. res.status .. ":" .. res:read_all())
]], { base = base(py.port), ca = certs.ca, cert = certs.client.cert, key = certs.client.key })
    assert.equal("200:hello anonymous over TLSv1.3:false", r.anon1)
    assert.equal("200:hello anonymous over TLSv1.3:true", r.anon2)
    assert.equal("200:hello client over TLSv1.3", r.client)
  end)

  it("follows redirects from http to https and relative ones over https", function()
    local plain = h.start_server({})
    finally(function() plain:stop() end)
    local r = run([[
local to = ("https://localhost:%d/tls"):format(tls_port)
local res = assert(lhyper.request{ url = ("http://127.0.0.1:%d/redirect?to=%s"):format(plain_port, to),
  follow_redirects = 2, tls = { ca = ca } })
say("up=" .. res.status .. ":" .. res:read_all():match("version=(%S+)") .. ":" .. tostring(res.tls and res.tls.version))
res = assert(lhyper.request{ url = ("https://localhost:%d/redirect?to=/hello"):format(tls_port),
  follow_redirects = 2, tls = { ca = ca } })
say("relative=" .. res.status .. ":" .. res:read_all() .. ":" .. tostring(res.tls ~= nil))
]], { ca = certs.ca, tls_port = tostring(srv.port), plain_port = tostring(plain.port) })
    assert.equal("200:TLSv1.3:TLSv1.3", r.up)
    assert.equal("200:Hello, World!:true", r.relative)
  end)

  it("counts the handshake in connect_timeout: a server that never answers it fails the request", function()
    local mute = up.python([[
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print("PORT %d" % s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept()
    held.append(c) # accepted, never read or answered
]])
    finally(function() mute:stop() end)
    local r = run([[
local t0 = lhyper.now()
local res, err, kind = lhyper.request{ url = base .. "/", connect_timeout = 1, tls = { ca = ca } }
say("mute=" .. tostring(res) .. ":" .. kind .. ":" .. tostring(err))
say("took=" .. (lhyper.now() - t0))
]], { base = base(mute.port), ca = certs.ca })
    assert.equal("nil:timeout:TLS handshake timed out", r.mute)
    assert.is_true(tonumber(r.took) >= 0.9 and tonumber(r.took) < 5, r.took)
  end)

  it("refuses bad tls options", function()
    local out = h.lua([[
local lhyper = require "lhyper"
print(pcall(lhyper.client, { tls = { verify = "no" } }))
print(pcall(lhyper.client, { tls = { cert = "x" } }))
lhyper.spawn(function()
  print(pcall(lhyper.request, { url = "https://localhost:1/", tls = { bogus = true } }))
  local res, err, kind = lhyper.request{ url = "https://localhost:1/", tls = { ca = "/nonexistent/ca.pem" } }
  print(res, kind, err.what, err.message)
  res, err, kind = lhyper.request{ url = "ftp://localhost/" }
end)
lhyper.run()
]])
    assert.truthy(out:find("false\t[^\n]*tls option 'verify' must be a boolean, got string"), out)
    assert.truthy(out:find("false\t[^\n]*'cert' and 'key' go together"), out)
    assert.truthy(out:find("false\t[^\n]*unknown tls option 'bogus'"), out)
    assert.truthy(out:find("nil\ttls\tconfig\tcannot load ca /nonexistent/ca.pem", 1, true), out)
    assert.truthy(out:find("unsupported URL scheme 'ftp'", 1, true), out)
  end)
end)
