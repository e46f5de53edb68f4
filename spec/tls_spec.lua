-- The server over TLS: curl, Python's ssl, Node's https and openssl
-- s_client as clients; certificates made by spec/tls_certs.lua.
local h = require "helper"
local tc = require "tls_certs"
local socket = require "socket"

local MiB = 1024 * 1024

local function q(s) return h.shell_quote(s) end

describe("TLS server #offpath", function()
  if not tc.available() then
    pending(tc.MISSING)
    return
  end
  local certs, srv
  setup(function() certs, srv = tc.start_server { record_errors = true } end)
  teardown(function() tc.stop(certs, srv) end)

  local function curl(args, limit)
    return h.curl(string.format("--cacert %s --resolve localhost:%d:127.0.0.1 %s", q(certs.ca),
      srv.port, args), limit)
  end

  -- openssl s_client with `args`, sending `input`; its output and stderr
  local function s_client(args, input, port)
    local file = h.tmpname(".in")
    h.write_file(file, input or "")
    local out = h.run(string.format("%stimeout -s KILL 10 openssl s_client -connect 127.0.0.1:%d %s < %s 2>&1",
      h.CLIENT_ENV, port or srv.port, args, q(file)))
    os.remove(file)
    return out
  end

  it("serves curl over TLS 1.3 with ALPN http/1.1, keeping the connection alive", function()
    local out, code = curl(string.format("-v https://localhost:%d/hello https://localhost:%d/tls", srv.port, srv.port))
    assert.equal(0, code, out)
    assert.truthy(out:find("SSL connection using TLSv1.3", 1, true), out)
    assert.truthy(out:find("ALPN: server accepted http/1.1", 1, true), out)
    assert.truthy(out:find("Re-using existing connection", 1, true), out)
    assert.truthy(out:find("Hello, World!", 1, true), out)
    assert.truthy(out:find("version=TLSv1.3\ncipher=TLS_", 1, true), out)
    assert.truthy(out:find("alpn=http/1.1\nsni=localhost\nresumed=false", 1, true), out)
  end)

  it("speaks TLS 1.2 with a forward-secret AEAD cipher", function()
    local out, code = curl(string.format("--tls-max 1.2 -w ' %%{http_code}' https://localhost:%d/tls", srv.port))
    assert.equal(0, code, out)
    assert.truthy(out:find("version=TLSv1.2\ncipher=ECDHE%-RSA%-AES%d+%-GCM%-SHA%d+\n"), out)
    assert.truthy(out:find(" 200$"), out)
  end)

  it("refuses TLS 1.1 and ciphers outside its list", function()
    local out = s_client("-tls1_1 -CAfile " .. q(certs.ca), "")
    assert.truthy(out:find("alert protocol version", 1, true) or out:find("no protocols available", 1, true), out)
    out = s_client("-tls1_2 -cipher AES128-SHA -CAfile " .. q(certs.ca), "")
    assert.truthy(out:find("handshake failure", 1, true), out)
  end)

  it("echoes a 4 MiB upload to Python's ssl client (http.client, TLS 1.2 and 1.3)", function()
    local out, code = h.python([[
import http.client, ssl, sys
data = bytes(range(256)) * (4 * 1024 * 4)
for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    ctx.maximum_version = v
    c = http.client.HTTPSConnection("localhost", int(sys.argv[1]), context=ctx, timeout=20)
    c.request("POST", "/echo", body=data)
    r = c.getresponse()
    body = r.read()
    c.request("GET", "/hello")
    r2 = c.getresponse()
    print(c.sock.version(), r.status, len(body), body == data, r2.read().decode())
    c.close()
]], tostring(srv.port) .. " " .. q(certs.ca), 40)
    assert.equal(0, code, out)
    assert.equal("TLSv1.2 200 4194304 True Hello, World!\nTLSv1.3 200 4194304 True Hello, World!\n", out)
  end)

  it("serves Node's https with a keep-alive agent on one socket", function()
    local out, code = h.node([[
const https = require("https"), fs = require("fs");
const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: fs.readFileSync(process.argv[3]) });
let ports = new Set(), n = 0;
function one() {
  https.get({ host: "localhost", port: +process.argv[2], path: "/echo", agent,
              method: "GET", servername: "localhost" }, (res) => {
    const sock = res.socket;
    ports.add(sock.localPort);
    const proto = sock.getProtocol();
    res.resume();
    res.on("end", () => {
      if (++n < 5) return one();
      console.log(res.statusCode, n, ports.size, proto);
      agent.destroy();
    });
  }).on("error", (e) => { console.log("error", e.message); process.exit(1); });
}
one();
]], tostring(srv.port) .. " " .. q(certs.ca))
    assert.equal(0, code, out)
    assert.equal("200 5 1 TLSv1.3\n", out)
  end)

  it("resumes sessions with tickets for openssl s_client (TLS 1.2 and 1.3)", function()
    local req = "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    for _, v in ipairs({ "-tls1_2", "-tls1_3" }) do
      local sess = h.tmpname(".sess")
      local first = s_client(v .. " -ign_eof -CAfile " .. q(certs.ca) .. " -sess_out " .. q(sess), req)
      assert.truthy(first:find("Verify return code: 0 (ok)", 1, true), first)
      assert.truthy(first:find("Hello, World!", 1, true), first)
      assert.truthy(first:find("\nNew, TLSv1.", 1, true), first)
      local second = s_client(v .. " -ign_eof -CAfile " .. q(certs.ca) .. " -sess_in " .. q(sess), req)
      os.remove(sess)
      assert.truthy(second:find("\nReused, TLSv1.", 1, true), v .. ": " .. second)
      assert.truthy(second:find("Hello, World!", 1, true), second)
    end
  end)

  it("answers a plain HTTP request on the TLS port with 400 and closes", function()
    local res, r, sock = h.raw_request(srv.port, h.req("GET", "/hello"), { keep = true })
    finally(function() sock:close() end)
    assert.is_truthy(res, r)
    assert.equal(400, res.status)
    assert.equal("close", res.headers.get("connection"))
    assert.truthy(res.body:find("TLS port", 1, true), res.body)
    assert.is_true(r:expect_close(2))
    local out = curl(string.format("-sS -w ' %%{http_code}' http://localhost:%d/hello", srv.port))
    assert.truthy(out:find("plain HTTP request was sent to a TLS port.\n 400", 1, true), out)
  end)

  it("reports failed handshakes to on_error with OpenSSL's reason, quietly for silent clients", function()
    local sock = assert(h.connect(srv.port))
    sock:close() -- connected and left: no report
    s_client("-tls1_2 -cipher AES128-SHA", "")
    local out = curl(string.format("https://localhost:%d/errors/info", srv.port))
    assert.truthy(out:find("tls|nil|nil|", 1, true), out)
    assert.truthy(out:find("no shared cipher", 1, true), out)
    assert.truthy(out:find("plain HTTP request sent to a TLS port", 1, true), out)
    assert.falsy(out:find("incomplete", 1, true), out)
  end)

  it("counts the handshake in header_read_timeout: silent and stalled clients are closed", function()
    local fast = h.start_server({ tls = certs.server_tls(),
      header_read_timeout = 1 })
    finally(function() fast:stop() end)
    -- nothing sent
    local sock, r = assert(h.connect(fast.port))
    local t0 = h.now()
    assert.is_true(r:expect_close(5))
    sock:close()
    local took = h.now() - t0
    assert.is_true(took > 0.5 and took < 4, "closed after " .. took)
    -- half a client hello, then nothing
    sock, r = assert(h.connect(fast.port))
    sock:send("\22\3\1\2\0\1\0\1\252\3\3")
    t0 = h.now()
    local data = r:rest(5)
    sock:close()
    took = h.now() - t0
    assert.is_true(r.closed, "still open after " .. took)
    assert.is_true(took > 0.5 and took < 4, "closed after " .. took)
    assert.falsy(data:find("HTTP/1", 1, true), data)
    -- a handshake, then no request: the head deadline still runs from accept
    local out = h.python([[
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
t0 = time.time()
s.settimeout(5)
try:
    print("got", repr(s.recv(100)))
except Exception as e:
    print("error", type(e).__name__)
print("closed after %.1f" % (time.time() - t0))
]], tostring(fast.port) .. " " .. q(certs.ca))
    assert.truthy(out:find("got b''", 1, true), out)
    local after = tonumber(out:match("closed after ([%d.]+)"))
    assert.is_true(after and after < 4, out)
  end)

  it("keeps the response backpressure: a stalled reader does not grow the server", function()
    if h.SANITIZED then
      pending("RSS is not meaningful under sanitizers")
      return
    end
    local n = 48 * MiB
    local out, code = h.python([[
import socket, ssl, sys, time
port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
pid = sys.argv[4]
def hwm():
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmHWM:"): return int(line.split()[1])
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
s.sendall(b"GET /stream?n=%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % n)
h0 = hwm()
time.sleep(1.0)
h1 = hwm()
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(65536)
head, rest = buf.split(b"\r\n\r\n", 1)
got, tail = len(rest), rest[-5:]
while True:
    d = s.recv(1 << 20)
    if not d: break
    got += len(d)
    tail = (tail + d)[-5:]
    if tail == b"0\r\n\r\n" and got > n: break
print("stalled_growth_kib", h1 - h0, "growth_kib", hwm() - h0, "body", got > n)
]], string.format("%d %s %d %d", srv.port, q(certs.ca), n, srv.pid), 60)
    assert.equal(0, code, out)
    local stalled, growth = out:match("stalled_growth_kib (%-?%d+) growth_kib (%-?%d+) body True")
    assert.truthy(stalled, out)
    assert.is_true(tonumber(stalled) < 8 * 1024, out)
    assert.is_true(tonumber(growth) < 8 * 1024, out)
  end)

  it("streams a 100 MiB download and a 20 MiB upload to curl (20 and 5 under sanitizers)", function()
    local down, up = 100 * MiB, 20 * MiB
    if h.SANITIZED then down, up = 20 * MiB, 5 * MiB end
    local out, code = curl(string.format("-o /dev/null -w '%%{http_code} %%{size_download}' https://localhost:%d/stream?n=%d",
      srv.port, down), 120)
    assert.equal(0, code, out)
    assert.equal("200 " .. down, out)
    local file = h.make_file(up)
    finally(function() os.remove(file) end)
    out, code = curl(string.format("-H 'Expect:' --data-binary @%s https://localhost:%d/sink?slow=0.05", file, srv.port), 120)
    assert.equal(0, code, out)
    assert.equal(tostring(up), out)
  end)

  it("upgrades a connection to a raw stream over TLS", function()
    local out, code = h.python([[
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
s.settimeout(10)
s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf: buf += s.recv(4096)
head, rest = buf.split(b"\r\n\r\n", 1)
msg = b"ping " * 10000
s.sendall(msg)
while len(rest) < len(msg): rest += s.recv(65536)
print(head.split(b"\r\n")[0].decode(), rest == msg)
]], tostring(srv.port) .. " " .. q(certs.ca))
    assert.equal(0, code, out)
    assert.equal("HTTP/1.1 101 Switching Protocols True\n", out)
  end)

  it("picks certificates by SNI, with the default for other names", function()
    local s = h.start_server({ tls = certs.server_tls(),
      sni_certs = { ["b.test"] = { certs.b.cert, certs.b.key } } })
    finally(function() s:stop() end)
    local out = s_client("-ign_eof -servername b.test -CAfile " .. q(certs.ca) .. " -verify_hostname b.test",
      "GET /tls HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n", s.port)
    assert.truthy(out:find("OU = sni-b", 1, true), out)
    assert.truthy(out:find("Verify return code: 0 (ok)", 1, true), out)
    assert.truthy(out:find("sni=b.test", 1, true), out)
    out = s_client("-servername localhost -CAfile " .. q(certs.ca), "", s.port)
    assert.truthy(out:find("OU = first", 1, true), out)
    -- an sni function that raises refuses the handshake
    out = s_client("-servername raise.test", "", s.port)
    assert.truthy(out:find("unrecognized name", 1, true), out)
    -- curl sees b.test's certificate through its own name
    local body, code = h.curl(string.format("--cacert %s --resolve b.test:%d:127.0.0.1 https://b.test:%d/tls",
      q(certs.ca), s.port, s.port))
    assert.equal(0, code, body)
    assert.truthy(body:find("sni=b.test", 1, true), body)
  end)

  it("reloads certificates without dropping open connections; tickets stay good", function()
    local s = h.start_server({ tls = certs.server_tls() })
    finally(function() s:stop() end)
    local out, code = h.python([[
import http.client, ssl, sys, socket
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
def ou(sock):
    der = sock.getpeercert()
    return dict(x[0] for x in der["subject"]).get("organizationalUnitName")
old = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
old.request("GET", "/hello"); old.getresponse().read()
sess = old.sock.session
print("before", ou(old.sock))
c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
c.request("GET", "/__reload_tls?cert=%s&key=%s" % (cert, key))
r = c.getresponse()
print("reload", r.status, r.read().decode())
old.request("GET", "/hello")
print("old connection", old.getresponse().read().decode(), ou(old.sock))
new = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
new.request("GET", "/hello"); new.getresponse().read()
print("new connection", ou(new.sock))
raw = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost", session=sess)
print("resumed", raw.session_reused)
c.request("GET", "/__reload_tls?cert=/nonexistent.pem&key=%s" % key)
r = c.getresponse()
print("bad", r.status, r.read().decode())
new2 = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
new2.request("GET", "/hello"); new2.getresponse().read()
print("after bad reload", ou(new2.sock))
]], string.format("%d %s %s %s", s.port, q(certs.ca), q(certs.reloaded.cert), q(certs.reloaded.key)), 30)
    assert.equal(0, code, out)
    assert.truthy(out:find("before first\nreload 200 reloaded\nold connection Hello, World! first\nnew connection reloaded\n", 1, true), out)
    assert.truthy(out:find("resumed True", 1, true), out)
    assert.truthy(out:find("bad 500 tls: cannot load certificate /nonexistent.pem", 1, true), out)
    assert.truthy(out:find("after bad reload reloaded", 1, true), out)
  end)

  it("serve.lua serves https with TLS_CERT and TLS_KEY and reloads them on SIGHUP", function()
    local dir = h.tmpname("-serve")
    assert(os.execute(string.format("mkdir -p %s && cp %s %s/cert.pem && cp %s %s/key.pem", q(dir),
      q(certs.server.cert), q(dir), q(certs.server.key), q(dir))))
    local port = h.free_port()
    local p = h.start_lua("serve.lua " .. port, 30,
      string.format("TLS_CERT=%s TLS_KEY=%s", q(dir .. "/cert.pem"), q(dir .. "/key.pem")))
    finally(function() -- one finally per test: busted keeps the last
      p:stop()
      os.execute("rm -rf " .. q(dir))
    end)
    assert.is_true(p:wait_log("lhyper listening on https://127.0.0.1:" .. port, 5), p:log())
    local out = h.python([[
import http.client, ssl, sys, os, time, shutil
port, ca, d, cert, key, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
ctx = ssl.create_default_context(cafile=ca)
def ou(sock):
    return dict(x[0] for x in sock.getpeercert()["subject"]).get("organizationalUnitName")
old = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
old.request("GET", "/"); print("first", old.getresponse().read().decode(), ou(old.sock))
shutil.copy(cert, d + "/cert.pem"); shutil.copy(key, d + "/key.pem")
os.kill(pid, 1)
time.sleep(0.5)
old.request("GET", "/"); print("old", old.getresponse().read().decode(), ou(old.sock))
new = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
new.request("GET", "/"); new.getresponse().read(); print("new", ou(new.sock))
]], string.format("%d %s %s %s %s %d", port, q(certs.ca), q(dir), q(certs.reloaded.cert),
      q(certs.reloaded.key), p.pid))
    assert.truthy(out:find("first Hello, World! first\nold Hello, World! first\nnew reloaded\n", 1, true),
      out .. p:log())
    assert.truthy(p:log():find("lhyper: certificates reloaded", 1, true), p:log())
  end)

  it("serves from workers, which share the ticket keys: a session resumes on any of them", function()
    local script = h.tmpname(".lua")
    h.write_file(script, string.format([[
local lhyper = require "lhyper"
local id
local s = assert(lhyper.server { port = tonumber(arg[1]), tls = { cert = %q, key = %q },
  handler = function() return 200, nil, tostring(id) end })
id = lhyper.workers { n = 2, mode = "reuseport" }
lhyper.run()
]], certs.server.cert, certs.server.key))
    local port = h.free_port()
    local p = h.start_lua(q(script) .. " " .. port, 60)
    finally(function() -- one finally per test: busted keeps the last
      p:stop()
      os.remove(script)
    end)
    local out, code = h.python([[
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
deadline = time.time() + 20
sess, workers, resumed = None, {}, 0
n = 0
while n < 24 and time.time() < deadline:
    try:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                            server_hostname="localhost", session=sess)
    except OSError:
        time.sleep(0.1) # the workers are starting
        continue
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d: break
        data += d
    w = data.split(b"\r\n\r\n", 1)[1].decode()
    if n > 0:
        workers[w] = workers.get(w, 0) + 1
        resumed += 1 if s.session_reused else 0
    sess = s.session
    s.close()
    n += 1
print("connections", n - 1, "workers", len(workers), "resumed", resumed)
]], string.format("%d %s", port, q(certs.ca)), 40)
    assert.equal(0, code, out .. p:log())
    local n, w, r = out:match("connections (%d+) workers (%d+) resumed (%d+)")
    assert.equal("23", n, out .. p:log())
    assert.equal("2", w, out) -- both workers took connections
    assert.equal("23", r, out) -- and each resumed the session the other made
  end)

  it("requires client certificates with client_ca", function()
    local s = h.start_server({ tls = certs.server_tls { client_ca = certs.ca } })
    finally(function() s:stop() end)
    local out = h.curl(string.format("--cacert %s --cert %s --key %s --resolve localhost:%d:127.0.0.1 https://localhost:%d/hello",
      q(certs.ca), q(certs.client.cert), q(certs.client.key), s.port, s.port))
    assert.equal("Hello, World!", out)
    out = h.curl(string.format("--cacert %s --resolve localhost:%d:127.0.0.1 https://localhost:%d/hello",
      q(certs.ca), s.port, s.port))
    assert.truthy(out:find("alert", 1, true), out)
  end)

  it("refuses bad tls options: nil, err, 'tls' for files, errors for programming mistakes", function()
    local out = h.lua(string.format([[
local lhyper = require "lhyper"
local s, err, kind = lhyper.server{ port = 0, handler = function() end,
  tls = { cert = "/nonexistent/cert.pem", key = %q } }
print(s, kind, err.what, err.message)
s, err, kind = lhyper.server{ port = 0, handler = function() end, tls = { cert = %q, key = %q } }
print(s, kind, err.message)
print(pcall(lhyper.server, { port = 0, handler = function() end, tls = { cert = "x" } }))
print(pcall(lhyper.server, { port = 0, handler = function() end, tls = { cert = "x", key = "y", min_version = "1.1" } }))
print(pcall(lhyper.server, { port = 0, handler = function() end, tls = { cert = "x", key = "y", bogus = 1 } }))
local plain = assert(lhyper.server{ port = 0, handler = function() end })
print(plain:reload_tls{ cert = %q, key = %q })
plain:close()
]], certs.server.key, certs.server.cert, certs.other_ca, certs.server.cert, certs.server.key))
    assert.truthy(out:find("nil\ttls\tconfig\tcannot load certificate /nonexistent/cert.pem: ", 1, true), out)
    assert.truthy(out:find("nil\ttls\tcannot load key " .. certs.other_ca, 1, true), out)
    assert.truthy(out:find("false\t[^\n]*tls options 'cert' and 'key' are required"), out)
    assert.truthy(out:find("false\t[^\n]*min_version' must be \"1.2\" or \"1.3\""), out)
    assert.truthy(out:find("false\t[^\n]*unknown tls option 'bogus'"), out)
    assert.truthy(out:find("nil\tnot a TLS server", 1, true), out)
  end)
end)
