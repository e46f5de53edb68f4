-- lhyper.request against Node's http module, and against raw Node sockets
-- that misbehave: reset or close mid-body, never answer, close idle
-- keep-alive connections, send garbage.
local up = require "upstreams"

local HTTP = [[
const http = require("http");
const crypto = require("crypto");
const server = http.createServer((req, res) => {
  const u = new URL(req.url, "http://x");
  const n = Number(u.searchParams.get("n") || 0);
  switch (u.pathname) {
  case "/port":
    res.end(String(req.socket.remotePort));
    break;
  case "/echo": // no length: chunked back
    res.setHeader("x-te", String(req.headers["transfer-encoding"]));
    res.setHeader("x-len", String(req.headers["content-length"]));
    req.pipe(res);
    break;
  case "/sha": {
    const h = crypto.createHash("sha256");
    let len = 0;
    req.on("data", (d) => { h.update(d); len += d.length; });
    req.on("end", () => {
      const body = len + " " + h.digest("hex") + " " + req.headers["transfer-encoding"];
      res.setHeader("content-length", Buffer.byteLength(body));
      res.end(body);
    });
    break;
  }
  case "/big":
    res.setHeader("content-length", n);
    res.end(Buffer.alloc(n, "b"));
    break;
  case "/chunks":
    res.setHeader("trailer", "x-sum");
    for (let i = 0; i < n; i++) res.write("chunk" + i + ";");
    res.addTrailers({ "x-sum": String(n) });
    res.end();
    break;
  case "/204":
    res.writeHead(204);
    res.end();
    break;
  case "/304":
    res.writeHead(304, { etag: '"e1"' });
    res.end();
    break;
  case "/close":
    res.setHeader("connection", "close");
    res.end("bye");
    break;
  case "/slow":
    setTimeout(() => res.end("late"), 2000);
    break;
  default:
    res.writeHead(404);
    res.end();
  }
});
server.on("checkContinue", (req, res) => {
  if (req.url.startsWith("/reject")) {
    res.writeHead(417, { connection: "close" });
    res.end("no");
  } else {
    res.writeContinue();
    server.emit("request", req, res);
  }
});
server.keepAliveTimeout = Number(process.env.KA_MS || 5000);
server.listen(0, "127.0.0.1", () => ready(server));
]]

local RAW = [[
const net = require("net");
const server = net.createServer((sock) => {
  let buf = "";
  sock.on("error", () => {});
  sock.on("data", (d) => {
    buf += d;
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return;
    const path = buf.slice(0, buf.indexOf("\r\n")).split(" ")[1];
    buf = buf.slice(end + 4);
    switch (path) {
    case "/reset": // RST in the middle of a length body
      sock.write("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + "r".repeat(1000));
      setTimeout(() => sock.resetAndDestroy(), 50);
      break;
    case "/fin": // FIN in the middle of a chunked body
      sock.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nwor");
      break;
    case "/garbage":
      sock.end("HTTP/1.1 2OO OK\r\n\r\n");
      break;
    case "/badheader":
      sock.end("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello");
      break;
    case "/nothing": // close without a byte
      sock.destroy();
      break;
    case "/silent":
      break;
    case "/tolerant": // a keep-alive answer, then the server closes at once
      sock.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      break;
    case "/stray": // a keep-alive answer, then an unsolicited 408 on the idle connection
      sock.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      setTimeout(() => sock.write("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"), 30);
      break;
    case "/eof-body": // HTTP/1.0 style: the body runs to the close
      sock.end("HTTP/1.1 200 OK\r\n\r\nuntil close");
      break;
    case "/interim":
      sock.write("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n");
      setTimeout(() => sock.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 20);
      break;
    }
  });
});
server.listen(0, "127.0.0.1", () => ready(server));
]]

local function sha256(s)
  local h = require "helper"
  local f = h.tmpname(".bin")
  h.write_file(f, s)
  local out = h.run("sha256sum " .. f)
  os.remove(f)
  return out:match("^(%x+)")
end

local function run(src, port, raw_port)
  local out, code = up.client(string.format("local base = %q\nlocal raw = %q\n",
    "http://127.0.0.1:" .. port, "http://127.0.0.1:" .. (raw_port or 1)) .. src)
  assert.equal(0, code, out)
  assert.is_nil(out:find("ERROR", 1, true), out)
  return up.parse(out), out
end

describe("lhyper.request against Node #peers", function()
  if not up.have("node") then
    pending("node is not installed")
    return
  end
  local http, raw
  setup(function()
    http = up.node(HTTP)
    raw = up.node(RAW)
  end)
  teardown(function()
    if http then http:stop() end
    if raw then raw:stop() end
  end)

  it("reuses one keep-alive connection (Node sees one remote port)", function()
    local r = run([[
local seen = {}
for i = 1, 5 do
  local res = assert(lhyper.request{ url = base .. "/port" })
  seen[res:read_all()] = true
end
local n = 0
for _ in pairs(seen) do n = n + 1 end
say("ports=" .. n)
]], http.port)
    assert.equal("1", r.ports)
  end)

  it("uploads length and chunked bodies and downloads length and chunked ones", function()
    local r = run([[
local data = string.rep("0123456789abcdef", 64 * 1024) -- 1 MiB
local res = assert(lhyper.request{ method = "POST", url = base .. "/sha", body = data })
say("length_up=" .. res:read_all())
local i = 0
res = assert(lhyper.request{ method = "POST", url = base .. "/sha", body = function()
  i = i + 1
  if i > 16 then return nil end
  return data:sub(1, 65536)
end })
say("chunked_up=" .. res:read_all())
res = assert(lhyper.request{ method = "POST", url = base .. "/echo", body = "round trip" })
say("echo_te=" .. tostring(res.headers["transfer-encoding"]) .. ":" .. res.headers["x-len"])
say("echo=" .. res:read_all())
res = assert(lhyper.request{ url = base .. "/big?n=3000000" })
say("big=" .. res.headers["content-length"] .. ":" .. #res:read_all())
res = assert(lhyper.request{ url = base .. "/chunks?n=3" })
say("chunks=" .. res:read_all())
say("trailer=" .. res:trailers()["x-sum"])
]], http.port)
    -- 16 x the first 64 KiB is the same 1 MiB
    local digest = sha256(string.rep("0123456789abcdef", 64 * 1024))
    assert.equal("1048576 " .. digest .. " undefined", r.length_up)
    assert.equal("1048576 " .. digest .. " chunked", r.chunked_up)
    assert.equal("chunked:10", r.echo_te)
    assert.equal("round trip", r.echo)
    assert.equal("3000000:3000000", r.big)
    assert.equal("chunk0;chunk1;chunk2;", r.chunks)
    assert.equal("3", r.trailer)
  end)

  it("reads HEAD, 204 and 304 without a body on a kept connection", function()
    local r = run([[
local res = assert(lhyper.request{ method = "HEAD", url = base .. "/big?n=500" })
say("head=" .. res.status .. ":" .. res.headers["content-length"] .. ":" .. #res:read_all())
res = assert(lhyper.request{ url = base .. "/204" })
say("s204=" .. res.status .. ":" .. #res:read_all() .. ":" .. tostring(res.reused))
res = assert(lhyper.request{ url = base .. "/304", headers = { ["if-none-match"] = '"e1"' } })
say("s304=" .. res.status .. ":" .. #res:read_all() .. ":" .. tostring(res.reused))
res = assert(lhyper.request{ url = base .. "/big?n=7" })
say("after=" .. res:read_all() .. ":" .. tostring(res.reused))
]], http.port)
    assert.equal("200:500:0", r.head)
    assert.equal("204:0:true", r.s204)
    assert.equal("304:0:true", r.s304)
    assert.equal("bbbbbbb:true", r.after)
  end)

  it("opens a new connection after Connection: close", function()
    local r = run([[
local a = assert(lhyper.request{ url = base .. "/close" }):read_all()
local res = assert(lhyper.request{ url = base .. "/port" })
say("bye=" .. a)
say("reused=" .. tostring(res.reused))
]], http.port)
    assert.equal("bye", r.bye)
    assert.equal("false", r.reused)
  end)

  it("survives the keep-alive race: idle connections the server closes", function()
    -- Node closes idle sockets after 100 ms; requests come at about that pace
    local ka = up.node("process.env.KA_MS = '100';\n" .. HTTP)
    local ok, r = pcall(run, [[
local good = 0
for i = 1, 24 do
  local res, err = lhyper.request{ url = base .. "/port" }
  if res and res:read_all() then good = good + 1 else say("failed=" .. tostring(err)) end
  lhyper.sleep(0.09 + (i % 4) * 0.01)
end
say("good=" .. good)
]], ka.port)
    ka:stop()
    assert(ok, r)
    assert.equal("24", r.good)
  end)

  it("never reuses a connection the server closed right after answering", function()
    local r = run([[
local good, reused = 0, 0
for i = 1, 10 do
  local res, err = lhyper.request{ url = raw .. "/tolerant" }
  if res and res:read_all() == "ok" then good = good + 1 end
  if res and res.reused then reused = reused + 1 end
end
say("good=" .. good)
]], http.port, raw.port)
    assert.equal("10", r.good)
  end)

  it("drops an idle connection that receives bytes nobody asked for", function()
    local r = run([[
local c = lhyper.client{}
local res = assert(c:request{ url = raw .. "/stray" })
say("first=" .. res:read_all())
say("idle_before=" .. c:stats().idle)
lhyper.sleep(0.15)
say("idle_after=" .. c:stats().idle)
res = assert(c:request{ url = raw .. "/tolerant" })
say("second=" .. res:read_all() .. ":" .. tostring(res.reused))
]], http.port, raw.port)
    assert.equal("ok", r.first)
    assert.equal("1", r.idle_before)
    assert.equal("0", r.idle_after)
    assert.equal("ok:false", r.second)
  end)

  it("reports a reset in the middle of the body as kind io", function()
    local r = run([[
local res = assert(lhyper.request{ url = raw .. "/reset" })
local body, err, kind = res:read_all()
say("kind=" .. tostring(kind))
say("msg=" .. tostring(err))
]], http.port, raw.port)
    assert.equal("io", r.kind)
    assert.equal("connection reset by peer", r.msg)
  end)

  it("reports a close in the middle of the body as kind incomplete", function()
    local r = run([[
local res = assert(lhyper.request{ url = raw .. "/fin" })
local got = {}
local ok, err = pcall(function() for chunk in res:body() do got[#got + 1] = chunk end end)
say("got=" .. table.concat(got))
say("kind=" .. err.kind)
local res2, err2, kind2 = lhyper.request{ url = raw .. "/nothing" }
say("nothing=" .. tostring(res2) .. ":" .. tostring(kind2))
local res3 = assert(lhyper.request{ url = raw .. "/eof-body" })
say("eof_body=" .. res3:read_all())
]], http.port, raw.port)
    assert.equal("hellowor", r.got)
    assert.equal("incomplete", r.kind)
    assert.equal("nil:incomplete", r.nothing)
    assert.equal("until close", r.eof_body)
  end)

  it("reports a malformed response as kind parse", function()
    local r = run([[
local res, err, kind = lhyper.request{ url = raw .. "/garbage" }
say("garbage=" .. tostring(res) .. ":" .. tostring(kind))
res, err, kind = lhyper.request{ url = raw .. "/badheader" }
say("badheader=" .. tostring(res) .. ":" .. tostring(kind) .. ":" .. tostring(err and err.what))
]], http.port, raw.port)
    assert.equal("nil:parse", r.garbage)
    assert.equal("nil:parse:content_length", r.badheader)
  end)

  it("skips interim 1xx responses", function()
    local r = run([[
local res = assert(lhyper.request{ url = raw .. "/interim" })
say("final=" .. res.status .. ":" .. res:read_all())
]], http.port, raw.port)
    assert.equal("200:ok", r.final)
  end)

  it("times out a server that never answers", function()
    local r = run([[
local t0 = lhyper.now()
local res, err, kind = lhyper.request{ url = raw .. "/silent", timeout = 0.3 }
say("silent=" .. tostring(res) .. ":" .. kind .. ":" .. tostring(err))
res, err, kind = lhyper.request{ url = base .. "/slow", read_timeout = 0.3 }
say("slow=" .. tostring(res) .. ":" .. kind .. ":" .. tostring(err))
say("fast=" .. tostring(lhyper.now() - t0 < 1.5))
]], http.port, raw.port)
    assert.equal("nil:timeout:request timed out", r.silent)
    assert.equal("nil:timeout:read timed out", r.slow)
    assert.equal("true", r.fast)
  end)

  it("waits for 100 Continue, and keeps the body when the server refuses it", function()
    local r = run([[
local res = assert(lhyper.request{ method = "PUT", url = base .. "/sha", body = "abc", expect_continue = true })
say("continued=" .. res:read_all())
local sent = 0
res = assert(lhyper.request{ method = "PUT", url = base .. "/reject", expect_continue = true, body = function()
  sent = sent + 1
  return sent < 100 and string.rep("z", 65536) or nil
end })
say("rejected=" .. res.status .. ":" .. res:read_all())
say("sent=" .. sent)
]], http.port, raw.port)
    assert.matches("^3 %x+ undefined$", r.continued)
    assert.equal("417:no", r.rejected)
    assert.equal("0", r.sent)
  end)
end)
