local h = require "helper"

-- lhyper.static over real sockets (spec/static_app.lua: /files with an
-- index and max_age, /plain with no index, dotfiles and 1000-byte chunks):
-- what it serves, what it refuses, conditional requests, ranges, and that
-- a download given up closes its file.

local srv, root, BIN

local function get(target, headers, method)
  local res, err = h.raw_request(srv.port, h.req(method or "GET", target, headers), { method = method })
  assert(res, err)
  return res
end

setup(function()
  local t = {}
  for i = 0, 199999 do t[#t + 1] = string.char((i * 7 + i // 256) % 256) end
  BIN = table.concat(t)
  root = h.make_tree {
    ["index.html"] = "<h1>hello</h1>\n", ["sub/index.html"] = "sub index\n", ["sub/notes.txt"] = "notes\n",
    ["bare/data.json"] = '{"a":1}', [".env"] = "SECRET=1\n", ["empty.txt"] = "", ["odd.ext"] = "x",
    ["big.bin"] = BIN,
  }
  -- a fixed modification time, to check Last-Modified and the dates
  os.execute("touch -d '2024-03-05 06:07:08 UTC' " .. h.shell_quote(root .. "/index.html"))
  srv = h.start_app("spec/static_app.lua", { root = root })
end)
teardown(function()
  if srv then srv:stop() end
  h.remove_tree(root)
end)

describe("lhyper.static: what it serves #offpath", function()
  it("a file with its type, length, validators and Cache-Control", function()
    local res = get("/files/index.html")
    assert.equal(200, res.status)
    assert.equal("<h1>hello</h1>\n", res.body)
    assert.equal("text/html; charset=utf-8", res.headers.get("content-type"))
    assert.equal("15", res.headers.get("content-length"))
    assert.equal("Tue, 05 Mar 2024 06:07:08 GMT", res.headers.get("last-modified"))
    assert.truthy(res.headers.get("etag"):match('^"%x+%-f"$'))
    assert.equal("public, max-age=60", res.headers.get("cache-control"))
    assert.equal("bytes", res.headers.get("accept-ranges"))
  end)
  it("the index of a directory, and 308 to the slash without it (query kept)", function()
    assert.equal("<h1>hello</h1>\n", get("/files/").body)
    assert.equal("sub index\n", get("/files/sub/").body)
    local res = get("/files/sub?x=1")
    assert.equal(308, res.status)
    assert.equal("/files/sub/?x=1", res.headers.get("location"))
  end)
  it("a large file streamed whole (and HEAD with no body)", function()
    local res = get("/files/big.bin")
    assert.equal(200, res.status)
    assert.equal("length", res.framing)
    assert.equal("application/octet-stream", res.headers.get("content-type"))
    assert.equal(#BIN, #res.body)
    assert.is_true(res.body == BIN)
    res = get("/plain/big.bin") -- in 1000-byte reads
    assert.is_true(res.body == BIN)
    res = get("/files/big.bin", nil, "HEAD")
    assert.equal(200, res.status)
    assert.equal(tostring(#BIN), res.headers.get("content-length"))
  end)
  it("an empty file, percent-encoded names, unknown extensions", function()
    local res = get("/files/empty.txt")
    assert.equal(200, res.status)
    assert.equal("0", res.headers.get("content-length"))
    assert.equal("notes\n", get("/files/%73ub/notes%2etxt").body)
    assert.equal("application/octet-stream", get("/files/odd.ext").headers.get("content-type"))
    assert.equal("application/json", get("/plain/bare/data.json").headers.get("content-type"))
  end)
  it("curl, Python and Node download the same bytes", function()
    local file = h.tmpname(".bin")
    local out, code = h.curl(("-o %s http://127.0.0.1:%d/files/big.bin"):format(file, srv.port))
    assert.equal(0, code, out)
    assert.is_true(h.read_file(file) == BIN)
    os.remove(file)
    out, code = h.python(([[
import urllib.request, hashlib
print(hashlib.sha1(urllib.request.urlopen("http://127.0.0.1:%d/plain/big.bin").read()).hexdigest())
]]):format(srv.port))
    assert.equal(0, code, out)
    local sha = h.run("sha1sum " .. h.shell_quote(root .. "/big.bin")):match("^(%x+)")
    assert.equal(sha .. "\n", out)
    out, code = h.node(([[
const http = require("http"), crypto = require("crypto");
http.get("http://127.0.0.1:%d/files/big.bin", (res) => {
  const hash = crypto.createHash("sha1");
  res.on("data", (d) => hash.update(d)).on("end", () => console.log(hash.digest("hex")));
});
]]):format(srv.port))
    assert.equal(0, code, out)
    assert.equal(sha .. "\n", out)
  end)
end)

describe("lhyper.static: what it refuses #offpath", function()
  local cases = {
    { "/files/.env", 404, "a hidden file" }, { "/files/nope.txt", 404, "a missing file" },
    { "/files/index.html/x", 404, "a path through a file" },
    { "/files/../spec/helper.lua", 404, "a .. segment" }, { "/files/%2e%2e/etc", 404, "an encoded .. segment" },
    { "/files/./index.html", 404, "a . segment" }, { "/files/sub%2Fnotes.txt", 400, "an encoded /" },
    { "/files/a%00b", 400, "an encoded NUL" }, { "/plain/sub/", 404, "a directory with no index" },
  }
  for _, c in ipairs(cases) do
    it(("%s: %d (%s)"):format(c[1], c[2], c[3]), function()
      assert.equal(c[2], get(c[1]).status)
    end)
  end
  it("serves dotfiles only when told", function()
    assert.equal("SECRET=1\n", get("/plain/.env").body)
  end)
  it("other methods: 405 with Allow; OPTIONS: 204 with Allow", function()
    local res = get("/files/index.html", nil, "POST")
    assert.equal(405, res.status)
    assert.equal("GET, HEAD, OPTIONS", res.headers.get("allow"))
    res = get("/files/index.html", nil, "OPTIONS")
    assert.equal(204, res.status)
    assert.equal("GET, HEAD, OPTIONS", res.headers.get("allow"))
  end)
  it("bad options and a root that is not a directory raise, naming them", function()
    local out, code = h.lua([[
local lhyper = require "lhyper"
for _, a in ipairs { { "/nonexistent-dir" }, { "README.md" }, { ".", { index = "a/b" } },
  { ".", { chunk = 0 } }, { ".", { bogus = 1 } }, { 42 } } do
  print((select(2, pcall(lhyper.static, a[1], a[2]))))
end
]])
    assert.equal(0, code, out)
    local l = {}
    for x in out:gmatch("[^\n]+") do l[#l + 1] = x end
    assert.equal(6, #l, out)
    assert.truthy(l[1]:find("/nonexistent-dir is not a directory", 1, true), l[1])
    assert.truthy(l[2]:find("README.md is not a directory", 1, true), l[2])
    assert.truthy(l[3]:find("index", 1, true), l[3])
    assert.truthy(l[4]:find("chunk", 1, true), l[4])
    assert.truthy(l[5]:find("bogus", 1, true), l[5])
    assert.truthy(l[6]:find("root", 1, true), l[6])
  end)
end)

describe("lhyper.static: conditional requests #offpath", function()
  local etag
  setup(function() etag = get("/files/index.html").headers.get("etag") end)

  it("If-None-Match: the tag, its weak form, a list, *: 304 with the validators", function()
    for _, v in ipairs { etag, "W/" .. etag, '"zzz", ' .. etag, "*" } do
      local res = get("/files/index.html", { ["if-none-match"] = v })
      assert.equal(304, res.status, v)
      assert.equal(etag, res.headers.get("etag"))
      assert.equal("public, max-age=60", res.headers.get("cache-control"))
      assert.equal("", res.body)
    end
    assert.equal(200, get("/files/index.html", { ["if-none-match"] = '"other"' }).status)
  end)
  it("If-Modified-Since in the three date forms; If-None-Match wins", function()
    for _, d in ipairs { "Tue, 05 Mar 2024 06:07:08 GMT", "Tuesday, 05-Mar-24 06:07:08 GMT",
      "Tue Mar  5 06:07:08 2024", "Wed, 06 Mar 2024 00:00:00 GMT" } do
      assert.equal(304, get("/files/index.html", { ["if-modified-since"] = d }).status, d)
    end
    assert.equal(200, get("/files/index.html", { ["if-modified-since"] = "Tue, 05 Mar 2024 06:07:07 GMT" }).status)
    assert.equal(200, get("/files/index.html", { ["if-modified-since"] = "yesterday" }).status)
    assert.equal(200, get("/files/index.html", { ["if-modified-since"] = "Tue, 05 Mar 2024 06:07:08 GMT",
      ["if-none-match"] = '"other"' }).status)
  end)
end)

describe("lhyper.static: ranges #offpath", function()
  local function range(v, extra)
    local hd = { range = v }
    for k, x in pairs(extra or {}) do hd[k] = x end
    return get("/files/big.bin", hd)
  end
  it("one range: first-last, first-, -suffix, past the end clipped", function()
    local res = range("bytes=100-199")
    assert.equal(206, res.status)
    assert.equal("bytes 100-199/200000", res.headers.get("content-range"))
    assert.is_true(res.body == BIN:sub(101, 200))
    res = range("bytes=199990-")
    assert.equal("bytes 199990-199999/200000", res.headers.get("content-range"))
    assert.is_true(res.body == BIN:sub(199991))
    res = range("bytes=-70000") -- streamed: over one chunk
    assert.equal("bytes 130000-199999/200000", res.headers.get("content-range"))
    assert.is_true(res.body == BIN:sub(130001))
    res = range("bytes=150000-999999")
    assert.equal("bytes 150000-199999/200000", res.headers.get("content-range"))
    assert.equal(50000, #res.body)
  end)
  it("416 past the end, with the length", function()
    local res = range("bytes=200000-")
    assert.equal(416, res.status)
    assert.equal("bytes */200000", res.headers.get("content-range"))
  end)
  it("the whole file for several ranges, a bad one, or an If-Range that does not match", function()
    for _, v in ipairs { "bytes=0-1,5-6", "bytes=9-3", "lines=1-2", "bytes=x-" } do
      local res = range(v)
      assert.equal(200, res.status, v)
      assert.equal(#BIN, #res.body)
    end
    local etag = get("/files/big.bin", nil, "HEAD").headers.get("etag")
    assert.equal(206, range("bytes=0-9", { ["if-range"] = etag }).status)
    assert.equal(200, range("bytes=0-9", { ["if-range"] = '"old"' }).status)
    assert.equal(200, range("bytes=0-9", { ["if-range"] = "W/" .. etag }).status)
  end)
  it("curl -r and Python agree", function()
    local out, code = h.curl(("-r 1000-1999 http://127.0.0.1:%d/files/big.bin"):format(srv.port))
    assert.equal(0, code)
    assert.is_true(out == BIN:sub(1001, 2000))
  end)
end)

describe("lhyper.static: structured #offpath", function()
  it("closes the file of a download the client gave up", function()
    local function open_files()
      local out = h.run("ls -l /proc/" .. srv.pid .. "/fd 2>/dev/null")
      local n = 0
      for _ in out:gmatch("big%.bin") do n = n + 1 end
      return n
    end
    for _ = 1, 20 do
      local sock = assert(h.connect(srv.port))
      sock:send(h.req("GET", "/plain/big.bin"))
      sock:receive(4000) -- the head and a little of the body, then away
      sock:close()
    end
    local n, ok = h.wait_for(open_files, function(v) return v == 0 end, 5)
    assert.is_true(ok, n .. " files still open")
    assert.equal(200, get("/files/index.html").status)
  end)
end)
