local h = require "helper"
local cjson = require "cjson"

-- req:multipart(): a streaming multipart/form-data reader (RFC 7578, RFC
-- 2046 5.1), against curl -F, Python's requests, Node's FormData, raw bytes.

local PY = h.CLIENT_ENV .. "timeout -s KILL 60 /usr/bin/python3 "

local function py(src)
  local file = h.tmpname(".py")
  h.write_file(file, src)
  local out, code = h.run(PY .. file .. " 2>&1")
  os.remove(file)
  return out, code
end

local function start_app()
  local p = h.start_lua("spec/helpers_app.lua", 170)
  assert(p:wait_log("PORT ", 10), "helpers_app did not start: " .. p:log())
  p.port = tonumber(p:log():match("PORT (%d+)"))
  return p
end

-- a multipart body from { {headers..., body}, ... } with boundary b
local function body_of(b, parts, opts)
  opts = opts or {}
  local out = { opts.preamble or "" }
  for _, p in ipairs(parts) do
    out[#out + 1] = "--" .. b .. "\r\n" .. table.concat(p, "\r\n", 1, #p - 1) .. "\r\n\r\n" .. p[#p] .. "\r\n"
  end
  out[#out + 1] = "--" .. b .. "--\r\n" .. (opts.epilogue or "")
  return table.concat(out)
end

local function post(port, target, body, ct)
  return assert(h.raw_request(port, h.req("POST", target,
    { ["content-type"] = ct or "multipart/form-data; boundary=XyZ" }, body)))
end

describe("req:multipart()", function()
  local app
  setup(function() app = start_app() end)
  teardown(function() if app then app:stop() end end)

  it("reads the fields and files curl -F sends", function()
    local small = h.tmpname(" name.txt")
    h.write_file(small, "hello file\r\n--not a boundary\r\nend")
    local out, code = h.curl(("-F 'title=My \"doc\"' -F 'empty=' -F %s -F 'data=@%s;type=image/png;filename=pic.png' http://127.0.0.1:%d/multipart")
      :format(h.shell_quote("doc=@" .. small), small, app.port))
    os.remove(small)
    assert.equal(0, code, out)
    local parts = cjson.decode(out)
    assert.equal(4, #parts)
    assert.same({ name = "title", filename = false, content_type = "text/plain", size = 8, head = 'My "doc"',
      header_names = "content-disposition" }, parts[1])
    assert.same({ name = "empty", filename = false, content_type = "text/plain", size = 0, head = "",
      header_names = "content-disposition" }, parts[2])
    assert.equal("doc", parts[3].name)
    assert.equal(small:match("[^/]+$"), parts[3].filename)
    assert.equal("text/plain", parts[3].content_type)
    assert.equal(33, parts[3].size)
    assert.equal("hello file\r\n--not a boundary\r\nend", parts[3].head)
    assert.equal("content-disposition,content-type", parts[3].header_names)
    assert.equal("pic.png", parts[4].filename)
    assert.equal("image/png", parts[4].content_type)
  end)

  it("reads what Python's requests sends", function()
    local out, code = py(([[
import requests, sys
files = [("up", ("a.bin", bytes(range(256)) * 300, "application/octet-stream")),
         ("up", ("b.txt", b"second", "text/plain"))]
r = requests.post("http://127.0.0.1:%d/multipart", data={"k": "v", "u": "ünï"}, files=files)
import sys
print(r.status_code, flush=True)
sys.stdout.buffer.write(r.content)
]]):format(app.port))
    assert.equal(0, code, out)
    local status, json = out:match("^(%d+)\n(.*)$")
    assert.equal("200", status, out)
    local parts = cjson.decode(json)
    local byname = {}
    for _, p in ipairs(parts) do byname[#byname + 1] = ("%s=%s:%d"):format(p.name, p.filename or "", p.size) end
    assert.same({ "k=:1", "u=:5", "up=a.bin:76800", "up=b.txt:6" }, byname)
    assert.equal("ünï", parts[2].head)
    local bytes = {}
    for i = 0, 63 do bytes[#bytes + 1] = string.char(i) end
    assert.equal(table.concat(bytes), parts[3].head)
    local last = {}
    for i = 192, 255 do last[#last + 1] = string.char(i) end
    assert.equal(table.concat(last), parts[3].tail)
  end)

  it("reads what Node's FormData sends", function()
    local out, code = h.node(([[
(async () => {
  const fd = new FormData();
  fd.append("field", "value");
  fd.append("file", new Blob([Buffer.alloc(100000, 0x61)], { type: "text/csv" }), "data.csv");
  const r = await fetch("http://127.0.0.1:%d/multipart", { method: "POST", body: fd });
  console.log(r.status, await r.text());
})();
]]):format(app.port))
    assert.equal(0, code, out)
    local parts = cjson.decode(out:match("^200 (.*)$"))
    assert.equal("field", parts[1].name)
    assert.equal("value", parts[1].head)
    assert.equal("data.csv", parts[2].filename)
    assert.equal("text/csv", parts[2].content_type)
    assert.equal(100000, parts[2].size)
  end)

  it("streams a 100 MB file with the server's memory staying small", function()
    local size = 100 * 1024 * 1024
    local file = h.make_file(size)
    local rss_before = h.rss_kib(app.pid)
    local out, code = h.curl(("-F 'note=big one' -F 'blob=@%s;filename=big.bin' http://127.0.0.1:%d/multipart"):format(file, app.port), 120)
    os.remove(file)
    assert.equal(0, code, out)
    local parts = cjson.decode(out)
    assert.equal("big one", parts[1].head)
    assert.equal(size, parts[2].size)
    assert.equal(string.rep("0123456789abcdef", 4), parts[2].head)
    assert.equal(string.rep("0123456789abcdef", 4), parts[2].tail)
    local _, peak = h.rss_kib(app.pid)
    h.log("multipart 100 MB: RSS before %d KiB, peak %d KiB", rss_before, peak)
    if not h.SANITIZED then
      assert.is_true(peak < 40 * 1024, "peak RSS " .. peak .. " KiB")
    end
  end)

  it("skips parts whose body is not read", function()
    local body = body_of("XyZ", {
      { 'Content-Disposition: form-data; name="a"', string.rep("A", 100000) },
      { 'Content-Disposition: form-data; name="b"; filename="f"', "x" },
      { 'Content-Disposition: form-data; name="c"', "" },
    })
    local res = post(app.port, "/multipart/names", body)
    assert.equal(200, res.status)
    assert.equal("a,b,c", res.body)
  end)

  it("ignores the preamble and the epilogue, takes quoted boundaries and transport padding", function()
    local body = "preamble text\r\n--XyZ  \t\r\n"
      .. 'Content-Disposition: form-data; name="q"\r\n\r\nv1\r\n'
      .. "--XyZ\r\ncontent-disposition: FORM-DATA; NAME=bare; filename*=UTF-8''%E2%82%AC.txt\r\n\r\n\r\n--XyZ--\r\nepilogue"
    local res = post(app.port, "/multipart", body, 'multipart/form-data; charset=utf-8; boundary="XyZ"')
    assert.equal(200, res.status, res.body)
    local parts = cjson.decode(res.body)
    assert.equal("v1", parts[1].head)
    assert.equal("bare", parts[2].name)
    assert.equal("€.txt", parts[2].filename)
    assert.equal(0, parts[2].size)
  end)

  it("answers 400 or 415 for malformed bodies and bad content-types", function()
    local ok_part = { 'Content-Disposition: form-data; name="a"', "v" }
    local cases = {
      { "no boundary parameter", 400, body_of("XyZ", { ok_part }), "multipart/form-data" },
      { "boundary too long", 400, body_of("XyZ", { ok_part }), "multipart/form-data; boundary=" .. string.rep("b", 71) },
      { "not multipart", 415, body_of("XyZ", { ok_part }), "multipart/mixed; boundary=XyZ" },
      { "empty body", 400, "" },
      { "no boundary in the body", 400, "just text" },
      { "no closing boundary", 400, '--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue' },
      { "ends after a boundary", 400, "--XyZ" },
      { "ends inside a head", 400, '--XyZ\r\nContent-Disposition: form-data; na' },
      { "no content-disposition", 400, body_of("XyZ", { { "Content-Type: text/plain", "v" } }) },
      { "not form-data", 400, body_of("XyZ", { { 'Content-Disposition: attachment; name="a"', "v" } }) },
      { "no name", 400, body_of("XyZ", { { 'Content-Disposition: form-data; filename="a"', "v" } }) },
      { "unterminated quote", 400, body_of("XyZ", { { 'Content-Disposition: form-data; name="a', "v" } }) },
      { "bad header line", 400, body_of("XyZ", { { 'Content-Disposition: form-data; name="a"', "no colon here", "v" } }) },
      { "folded header", 400, body_of("XyZ", { { 'Content-Disposition: form-data;', ' name="a"', "v" } }) },
      { "junk after a boundary", 400, '--XyZjunk\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--XyZ--' },
      { "boundary inside a part", 400, body_of("XyZ", { { 'Content-Disposition: form-data; name="a"', "x\r\n--XyZ-more" } }) },
    }
    for _, c in ipairs(cases) do
      local res = post(app.port, "/multipart", c[3], c[4])
      assert.equal(c[2], res.status, c[1] .. ": " .. tostring(res.body))
    end
    assert.falsy(app:log():find("on_error", 1, true), app:log())
  end)

  it("answers 413 past its limits", function()
    local parts3 = {}
    for i = 1, 3 do parts3[i] = { 'Content-Disposition: form-data; name="p' .. i .. '"', "v" } end
    assert.equal(200, post(app.port, "/multipart?max_parts=3", body_of("XyZ", parts3)).status)
    assert.equal(413, post(app.port, "/multipart?max_parts=2", body_of("XyZ", parts3)).status)
    local field = body_of("XyZ", { { 'Content-Disposition: form-data; name="f"', string.rep("x", 20) } })
    assert.equal(200, post(app.port, "/multipart?max_field=20", field).status)
    assert.equal(413, post(app.port, "/multipart?max_field=19", field).status)
    local file = body_of("XyZ", { { 'Content-Disposition: form-data; name="f"; filename="x"', string.rep("x", 20) } })
    assert.equal(200, post(app.port, "/multipart?max_field=1", file).status) -- max_field is for fields
    assert.equal(413, post(app.port, "/multipart?max_file=10", file).status)
    local long = body_of("XyZ", { { 'Content-Disposition: form-data; name="f"', "X-Long: " .. string.rep("h", 300), "v" } })
    assert.equal(200, post(app.port, "/multipart?max_header=400", long).status)
    assert.equal(413, post(app.port, "/multipart?max_header=200", long).status)
  end)

  it("raises when a part is read after the reader moved past it (500)", function()
    local body = body_of("XyZ", {
      { 'Content-Disposition: form-data; name="a"', "first" },
      { 'Content-Disposition: form-data; name="b"', "second" },
    })
    assert.equal(500, post(app.port, "/multipart/passed", body).status)
    assert.truthy(app:log():find("was passed before it was read", 1, true), app:log())
  end)

  it("answers while a client still sends an epilogue that does not end", function()
    -- the parts are over at the closing delimiter; the epilogue is dropped,
    -- and past 64 KiB of it the handler no longer waits for its end
    local out, code = py(string.format([[
import socket, time
s = socket.create_connection(("127.0.0.1", %d))
s.sendall(b"POST /multipart/names HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
          b"Content-Type: multipart/form-data; boundary=XyZ\r\n\r\n")
body = b'--XyZ\r\ncontent-disposition: form-data; name="a"\r\n\r\nv\r\n--XyZ--\r\n'
s.sendall(b"%%x\r\n%%s\r\n" %% (len(body), body))
s.setblocking(False)
got, t0 = b"", time.time()
while time.time() - t0 < 8 and b"\r\n\r\n" not in got:
    try:
        s.sendall(b"400\r\n" + b"e" * 1024 + b"\r\n")
    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
        pass
    try:
        got += s.recv(4096)
    except BlockingIOError:
        pass
    time.sleep(0.005)
print(got.split(b"\r\n")[0].decode(), "while sending" if time.time() - t0 < 8 else "never")
]], app.port))
    assert.equal(0, code, out)
    assert.equal("HTTP/1.1 200 OK while sending\n", out)
  end)

  it("answers 400 while a client still sends a preamble that does not end", function()
    -- no part can come before the first delimiter: past 64 KiB of preamble
    -- the body is malformed, and the limits of the parts stay the only ones
    local out, code = py(string.format([[
import socket, time
s = socket.create_connection(("127.0.0.1", %d))
s.sendall(b"POST /multipart/names HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
          b"Content-Type: multipart/form-data; boundary=XyZ\r\n\r\n")
s.setblocking(False)
got, t0 = b"", time.time()
while time.time() - t0 < 8 and b"\r\n\r\n" not in got:
    try:
        s.sendall(b"400\r\n" + b"p" * 1024 + b"\r\n")
    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
        pass
    try:
        got += s.recv(4096)
    except BlockingIOError:
        pass
    time.sleep(0.005)
print(got.split(b"\r\n")[0].decode(), "while sending" if time.time() - t0 < 8 else "never")
]], app.port))
    assert.equal(0, code, out)
    assert.equal("HTTP/1.1 400 Bad Request while sending\n", out)
  end)

  it("keeps the connection for the next request", function()
    local sock, r = h.connect(app.port)
    local body = body_of("XyZ", { { 'Content-Disposition: form-data; name="a"', "v" } }, { epilogue = "tail" })
    for _ = 1, 3 do
      sock:send(h.req("POST", "/multipart", { ["content-type"] = "multipart/form-data; boundary=XyZ" }, body))
      local res = assert(r:final_response())
      assert.equal(200, res.status)
    end
    sock:close()
  end)
end)

describe("the multipart parser", function()
  -- the same body whole, byte by byte and in uneven pieces gives the same parts
  it("gives the same parts however the body is split", function()
    local out, code = h.lua([==[
local multipart = require "lhyper.multipart"
local b = "bOuNdArY"
local body = "pre\r\n--" .. b .. "\r\nContent-Disposition: form-data; name=\"one\"\r\n\r\n"
  .. "line\r\n--bOuNdAr almost\r\n-\r\n--\r\n" .. "\r\n--" .. b .. "\r\n"
  .. "Content-Disposition: form-data; name=\"two\"; filename=\"t.bin\"\r\nContent-Type: app/x\r\n\r\n"
  .. string.rep("\r\n-", 50) .. "\r\n--" .. b .. "--\r\nepi"
local function run(split)
  local i = 1
  local next_chunk = function()
    if i > #body then return nil end
    local n = split(i)
    local c = body:sub(i, i + n - 1)
    i = i + n
    return c
  end
  local ok, res = pcall(function()
    local out = {}
    for part in multipart.new(next_chunk, b, { max_parts = 10, max_header = 1000, max_field = 1000, max_file = false }) do
      local chunks = {}
      for c in part:body() do chunks[#chunks + 1] = c end
      out[#out + 1] = part.name .. "|" .. tostring(part.filename) .. "|" .. part.content_type .. "|" .. table.concat(chunks)
    end
    return table.concat(out, "#")
  end)
  return ok and res or ("error: " .. tostring(res))
end
local whole = run(function() return #body end)
local ones = run(function() return 1 end)
math.randomseed(7)
local uneven = true
for _ = 1, 50 do
  if run(function() return math.random(1, 17) end) ~= whole then uneven = false end
end
print(whole == ones, uneven)
print(whole)
]==])
    assert.equal(0, code, out)
    local lines = {}
    for l in out:gmatch("[^\n]*") do lines[#lines + 1] = l end
    assert.equal("true\ttrue", lines[1])
    assert.matches("^one|nil|text/plain|line\r\n%-%-bOuNdAr almost\r\n%-\r\n%-%-\r\n#two|t%.bin|app/x|" .. ("\r\n%-"):rep(50) .. "$", out:match("\n(.-)\n$"))
  end)
end)
