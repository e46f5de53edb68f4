local h = require "helper"

-- lhyper.layers.compression over real sockets (spec/static_app.lua): what
-- Accept-Encoding chooses, what is left alone, the fields a compressed
-- response gets, streamed bodies flushed chunk by chunk, and curl, Python
-- and Node decoding what it sends.

local srv, root

-- body decoded by Python's zlib (an independent decoder): wbits 31 gzip, 15 zlib
local function inflate(data, wbits)
  local file = h.tmpname(".z")
  h.write_file(file, data)
  local out, code = h.python(([[
import sys, zlib
d = zlib.decompressobj(%d)
sys.stdout.buffer.write(d.decompress(open(sys.argv[1], "rb").read()) + d.flush())
if not d.eof: sys.exit("stream not finished")
]]):format(wbits), h.shell_quote(file))
  os.remove(file)
  assert.equal(0, code, out)
  return out
end

local function get(target, headers, method)
  local res, err = h.raw_request(srv.port, h.req(method or "GET", target, headers), { method = method })
  assert(res, err)
  return res
end

local BIG = ("lhyper compresses what it may. "):rep(200)

setup(function()
  root = h.make_tree { ["index.html"] = "<h1>hello</h1>\n", ["big.txt"] = BIG }
  srv = h.start_app("spec/static_app.lua", { root = root })
end)
teardown(function()
  if srv then srv:stop() end
  h.remove_tree(root)
end)

describe("compression: the coding #offpath", function()
  local cases = {
    { "gzip", "gzip" }, { "deflate", "deflate" }, { "GZIP", "gzip" }, { "x-gzip", "gzip" },
    { "gzip, deflate, br", "gzip" }, { "deflate, gzip", "gzip" }, { "br", nil }, { "*", "gzip" },
    { "identity", nil }, { "gzip;q=0, deflate", "deflate" }, { "gzip;q=0.5, deflate;q=0.8", "deflate" },
    { "gzip;q=0, *;q=0.1", "deflate" }, { "*;q=0", nil }, { "deflate;q=0, *", "gzip" },
    { " gzip ; q=1.0 ", "gzip" }, { "", nil },
  }
  for _, c in ipairs(cases) do
    it(("Accept-Encoding %q -> %s"):format(c[1], tostring(c[2])), function()
      local res = get("/big", { ["accept-encoding"] = c[1] })
      assert.equal(200, res.status)
      assert.equal("accept-encoding", res.headers.get("vary"))
      assert.equal(c[2], res.headers.get("content-encoding"))
      if c[2] then
        assert.equal(tostring(#res.body), res.headers.get("content-length"))
        assert.is_true(#res.body < #BIG / 10)
        assert.equal(BIG, inflate(res.body, c[2] == "gzip" and 31 or 15))
      else
        assert.equal(BIG, res.body)
      end
    end)
  end

  it("no Accept-Encoding: the body as it was, with Vary", function()
    local res = get("/big")
    assert.is_nil(res.headers.get("content-encoding"))
    assert.equal("accept-encoding", res.headers.get("vary"))
    assert.equal(BIG, res.body)
  end)
end)

describe("compression: left alone #offpath", function()
  it("a body under min_size (Vary still says it could be)", function()
    local res = get("/small", { ["accept-encoding"] = "gzip" })
    assert.equal("tiny", res.body)
    assert.is_nil(res.headers.get("content-encoding"))
    assert.equal("accept-encoding", res.headers.get("vary"))
  end)
  for _, c in ipairs { { "/image", "an image/png" }, { "/no-transform", "Cache-Control: no-transform" },
    { "/sse", "text/event-stream" } } do
    it(c[2], function()
      local res = get(c[1], { ["accept-encoding"] = "gzip" })
      assert.equal(BIG, res.body)
      assert.is_nil(res.headers.get("content-encoding"))
      assert.is_nil(res.headers.get("vary"))
    end)
  end
  it("a response already encoded", function()
    local res = get("/encoded", { ["accept-encoding"] = "gzip" })
    assert.equal("br", res.headers.get("content-encoding"))
    assert.equal(BIG, res.body)
  end)
  it("304 and 206 from lhyper.static", function()
    local first = get("/files/index.html", { ["accept-encoding"] = "gzip" })
    local res = get("/files/index.html", { ["accept-encoding"] = "gzip", ["if-none-match"] = first.headers.get("etag") })
    assert.equal(304, res.status)
    res = get("/files/index.html", { ["accept-encoding"] = "gzip", range = "bytes=0-3" })
    assert.equal(206, res.status)
    assert.equal("<h1>", res.body)
    assert.is_nil(res.headers.get("content-encoding"))
  end)
end)

describe("compression: fields #offpath", function()
  it("makes a strong ETag weak and adds to an existing Vary", function()
    local res = get("/tagged", { ["accept-encoding"] = "gzip" })
    assert.equal("gzip", res.headers.get("content-encoding"))
    assert.equal('W/"v1"', res.headers.get("etag"))
    assert.equal("origin, accept-encoding", res.headers.get("vary"))
    assert.equal(1, res.headers.count("vary"))
    assert.equal(('{"a":1}'):rep(100), inflate(res.body, 31))
  end)
  it("HEAD gets the fields GET gets, and no body", function()
    local g = get("/big", { ["accept-encoding"] = "gzip" })
    local hd = get("/big", { ["accept-encoding"] = "gzip" }, "HEAD")
    assert.equal(200, hd.status)
    assert.equal("gzip", hd.headers.get("content-encoding"))
    assert.equal(g.headers.get("content-length"), hd.headers.get("content-length"))
    assert.equal("", hd.body)
    -- lhyper.static's HEAD has no body to compress: the length goes
    local sh = get("/files/big.txt", { ["accept-encoding"] = "gzip" }, "HEAD")
    assert.equal(200, sh.status)
    assert.equal("gzip", sh.headers.get("content-encoding"))
    assert.is_nil(sh.headers.get("content-length"))
    assert.is_nil(sh.headers.get("accept-ranges"))
  end)
end)

describe("compression: a streamed body #offpath", function()
  local function expected()
    local t = {}
    for i = 1, 50 do t[i] = ('{"n":%d,"pad":"%s"}\n'):format(i, ("x"):rep(40)) end
    return table.concat(t)
  end

  it("is chunked, flushed chunk by chunk, and keeps its trailers", function()
    local res = get("/stream", { ["accept-encoding"] = "gzip", te = "trailers" })
    assert.equal(200, res.status)
    assert.equal("chunked", res.framing)
    assert.equal("gzip", res.headers.get("content-encoding"))
    assert.is_nil(res.headers.get("content-length"))
    assert.is_true(#res.chunks > 40) -- one chunk (sync-flushed) for each the handler gave
    assert.equal("yes", res.trailers.get("x-done"))
    assert.equal(expected(), inflate(res.body, 31))
  end)

  it("reaches the client as it is made: the first piece decodes before the end", function()
    local out, code = h.python(([[
import http.client, zlib, sys
c = http.client.HTTPConnection("127.0.0.1", %d, timeout=10)
c.request("GET", "/stream?wait=1", headers={"Accept-Encoding": "deflate"})
r = c.getresponse()
d = zlib.decompressobj(15)
first = d.decompress(r.read1(65536))
rest = r.read()
print(r.getheader("Content-Encoding"), first.decode().split("\n")[0], (first + d.decompress(rest)).count(b"\n"))
]]):format(srv.port))
    assert.equal(0, code, out)
    assert.equal('deflate {"n":1,"pad":"' .. ("x"):rep(40) .. '"} 50\n', out)
  end)

  it("that raises mid-body aborts only its connection; the deflater goes with it", function()
    local res = get("/broken", { ["accept-encoding"] = "gzip" })
    assert.is_false(res.complete)
    assert.equal(200, get("/big", { ["accept-encoding"] = "gzip" }).status)
  end)
end)

describe("compression: real clients #offpath", function()
  it("curl --compressed", function()
    local out, code = h.curl(("--compressed -D - http://127.0.0.1:%d/big"):format(srv.port))
    assert.equal(0, code, out)
    assert.truthy(out:lower():find("content-encoding: gzip", 1, true), out)
    assert.truthy(out:find(BIG, 1, true))
    out, code = h.curl(("--compressed http://127.0.0.1:%d/stream"):format(srv.port))
    assert.equal(0, code, out)
    local n = 0
    for _ in out:gmatch('{"n":%d+') do n = n + 1 end
    assert.equal(50, n)
  end)

  it("Python's urllib with gzip.decompress, and Node's zlib", function()
    local out, code = h.python(([[
import urllib.request, gzip
r = urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/tagged", headers={"Accept-Encoding": "gzip"}))
print(r.headers["Content-Encoding"], len(gzip.decompress(r.read())))
]]):format(srv.port))
    assert.equal(0, code, out)
    assert.equal("gzip 700\n", out)
    out, code = h.node(([[
const http = require("http"), zlib = require("zlib");
http.get({ port: %d, host: "127.0.0.1", path: "/stream", headers: { "accept-encoding": "deflate" } }, (res) => {
  const parts = [];
  res.pipe(zlib.createInflate()).on("data", (d) => parts.push(d)).on("end", () => {
    console.log(res.headers["content-encoding"], Buffer.concat(parts).toString().split("\n").length - 1);
  });
});
]]):format(srv.port))
    assert.equal(0, code, out)
    assert.equal("deflate 50\n", out)
  end)
end)

describe("core.deflater and core.inflater #offpath", function()
  it("round-trip random data in random pieces; corrupt or oversized input fails with a kind", function()
    local out, code = h.lua([[
local core = require "lhyper.core"
math.randomseed(7)
local function rnd(n, alphabet)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, alphabet - 1) + (alphabet < 256 and 97 or 0)) end
  return table.concat(t)
end
local bad = 0
for round = 1, 300 do
  local fmt = round % 2 == 0 and "gzip" or "deflate"
  local data = rnd(math.random(0, 70000), round % 3 == 0 and 256 or 4)
  local d = core.deflater(fmt, math.random(0, 9))
  local parts, i = {}, 1
  while i <= #data do
    local n = math.random(1, 20000)
    parts[#parts + 1] = d:push(data:sub(i, i + n - 1), math.random() < 0.3 and "sync" or nil)
    i = i + n
  end
  parts[#parts + 1] = d:push("", "finish")
  local z = table.concat(parts)
  local inf = core.inflater(round % 4 == 0 and "auto" or fmt)
  local got, j, done = {}, 1, false
  while j <= #z do
    local n = math.random(1, 3000)
    local s, fin = inf:push(z:sub(j, j + n - 1))
    assert(s, fin)
    got[#got + 1] = s
    done = fin
    j = j + n
  end
  assert(done, "not at the end")
  assert(table.concat(got) == data, "round " .. round .. " differs")
  -- the same bytes damaged: an error with a kind, or a short or odd result, never a raise
  if #z > 20 then
    local k = math.random(11, #z - 8)
    local damaged = z:sub(1, k - 1) .. string.char((z:byte(k) + 1) % 256) .. z:sub(k + 1)
    local s, err, kind = core.inflater(fmt):push(damaged)
    if not s then assert(kind == "protocol", tostring(kind)); bad = bad + 1 end
  end
end
local s, err, kind = core.inflater("gzip", 1000):push(core.deflater("gzip"):push(("a"):rep(5000), "finish"))
assert(s == nil and kind == "too_large", kind)
print("ok", bad > 50)
]], 120)
    assert.equal(0, code, out)
    assert.equal("ok\ttrue\n", out)
  end)
end)

describe("compression: options #offpath", function()
  it("refuses bad ones with the culprit named", function()
    local out, code = h.lua([[
local L = require("lhyper").layers
for _, o in ipairs { { level = 10 }, { level = 1.5 }, { min_size = -1 }, { algorithms = { "br" } },
  { algorithms = {} }, { nope = 1 }, { types = 5 } } do
  print((select(2, pcall(L.compression, o))))
end
]])
    assert.equal(0, code, out)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(7, #lines, out)
    assert.truthy(lines[1]:find("level", 1, true))
    assert.truthy(lines[3]:find("min_size", 1, true))
    assert.truthy(lines[4]:find("br", 1, true))
    assert.truthy(lines[5]:find("no algorithm", 1, true))
    assert.truthy(lines[6]:find("nope", 1, true))
    assert.truthy(lines[7]:find("types", 1, true))
  end)
end)

describe("the client's decompress option #offpath", function()
  local function run(src)
    local out, code = h.lua(src, 30)
    assert.equal(0, code, out)
    return out
  end

  it("asks for gzip and deflate, decodes the body, keeps the head as it came", function()
    local out = run(([[
local lhyper = require "lhyper"
lhyper.spawn(function()
  for _, path in ipairs { "/big", "/stream", "/tagged", "/small" } do
    local res = assert(lhyper.request { url = "http://127.0.0.1:%d" .. path, decompress = true })
    local body = assert(res:read_all())
    print(path, res.headers["content-encoding"], #body, body:sub(1, 8))
  end
  local c = lhyper.client { decompress = true }
  local res = assert(c:request { url = "http://127.0.0.1:%d/big", headers = { ["accept-encoding"] = "deflate" } })
  print("client", res.headers["content-encoding"], #assert(res:read_all()))
  res = assert(lhyper.request { url = "http://127.0.0.1:%d/big" })
  print("off", res.headers["content-encoding"], #assert(res:read_all()))
  lhyper.stop()
end)
lhyper.run()
]]):format(srv.port, srv.port, srv.port))
    assert.equal(table.concat({
      "/big\tgzip\t6200\tlhyper c",
      '/stream\tgzip\t2891\t{"n":1,"',
      '/tagged\tgzip\t700\t{"a":1}{',
      "/small\tnil\t4\ttiny",
      "client\tdeflate\t6200",
      "off\tnil\t6200", "" }, "\n"), out)
  end)

  it("a truncated or corrupt body raises an error object (502, upstream); several codings stay encoded", function()
    local out = run(([[
local lhyper = require "lhyper"
lhyper.spawn(function()
  for _, path in ipairs { "/coded/cut", "/coded/bad", "/coded/raw", "/coded/two", "/coded/empty" } do
    local res = assert(lhyper.request { url = "http://127.0.0.1:%d" .. path, decompress = true })
    local body, err, kind = res:read_all()
    if body then print(path, "ok", #body)
    else print(path, kind, err.what, err.status, err.upstream) end
    res:close()
  end
  lhyper.stop()
end)
lhyper.run()
]]):format(srv.port))
    assert.equal(table.concat({
      "/coded/cut	incomplete	body	502	true",
      "/coded/bad	parse	content_encoding	502	true",
      "/coded/raw	ok	9000",
      "/coded/two	ok	" .. tostring(#"x"), -- gzip, gzip: left as it came
      "/coded/empty	ok	0", "" }, "\n"), out)
  end)
end)
