local h = require "helper"
local cjson = require "cjson"
local socket = require "socket"

-- The README's recipes are the files in examples/: each one is quoted in
-- README.md whole (after a "<!-- recipe: examples/x.lua -->" line) and run
-- here as written, against curl, Python and Node.

local PY = h.CLIENT_ENV .. "timeout -s KILL 30 /usr/bin/python3 "

local function py(src)
  local file = h.tmpname(".py")
  h.write_file(file, src)
  local out, code = h.run(PY .. file .. " 2>&1")
  os.remove(file)
  return out, code
end

-- the lua block after each recipe marker in README.md, by file name
local function readme_recipes()
  local text = assert(h.read_file(h.ROOT .. "/README.md"))
  local t = {}
  for file, code in text:gmatch("<!%-%- recipe: (%S+) %-%->\n```lua\n(.-)```\n") do t[file] = code end
  return t
end

-- runs an example on a free port; waits until it accepts connections
local function start(file, ...)
  local port = h.free_port()
  local args = { h.shell_quote(file), tostring(port) }
  for _, a in ipairs { ... } do args[#args + 1] = h.shell_quote(a) end
  local p = h.start_lua(table.concat(args, " "), 120)
  local deadline = socket.gettime() + 10
  repeat
    local s = socket.tcp()
    s:settimeout(0.2)
    local ok = s:connect("127.0.0.1", port)
    s:close()
    if ok then p.port = port; return p end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  local log = p:log()
  p:stop()
  error(file .. " did not start: " .. log)
end

local function curl(fmt, ...) return h.curl(fmt:format(...)) end

local function tmpdir()
  local d = h.tmpname(".d")
  assert(os.execute("mkdir -p " .. h.shell_quote(d)))
  return d
end

local function rmdir(d) os.execute("rm -rf " .. h.shell_quote(d)) end

describe("README recipes", function()
  local recipes = readme_recipes()

  for _, file in ipairs { "examples/json_api.lua", "examples/upload.lua", "examples/files.lua", "examples/jobs.lua",
    "examples/sse.lua", "examples/chat.lua", "examples/proxy.lua", "examples/shutdown.lua" } do
    it(file .. " is quoted in README.md as it is", function()
      assert.is_not_nil(recipes[file], "no recipe block for " .. file)
      assert.equal(h.read_file(h.ROOT .. "/" .. file), recipes[file])
    end)
  end

  describe("JSON API (examples/json_api.lua)", function()
    local app
    setup(function() app = start("examples/json_api.lua") end)
    teardown(function() if app then app:stop() end end)

    it("creates, lists, reads and deletes with curl", function()
      local out, code = curl("-si -H 'content-type: application/json' -d '{\"title\":\"milk\"}' http://127.0.0.1:%d/todos", app.port)
      assert.equal(0, code, out)
      assert.matches("^HTTP/1.1 201", out)
      assert.matches("\r\nlocation: /todos/1\r\n", out)
      assert.same({ id = 1, title = "milk", done = false }, cjson.decode(out:match("\r\n\r\n(.*)$")))
      out = curl("-s http://127.0.0.1:%d/todos", app.port)
      assert.same({ { id = 1, title = "milk", done = false } }, cjson.decode(out))
      out = curl("-s -o /dev/null -w '%%{http_code}' -X DELETE http://127.0.0.1:%d/todos/1", app.port)
      assert.equal("204", out)
      out = curl("-s -w ' %%{http_code}' http://127.0.0.1:%d/todos/1", app.port)
      assert.equal('{"error":"not found"} 404', out)
    end)

    it("answers bad bodies with 400, 415, 413 and 422 for Python's requests", function()
      local out, code = py(([[
import requests
u = "http://127.0.0.1:%d/todos"
print(requests.post(u, data="{nope", headers={"content-type": "application/json"}).status_code)
print(requests.post(u, data="title=x").status_code)
print(requests.post(u, json={"title": "x" * 70000}).status_code)
print(requests.post(u, json={"name": "x"}).status_code)
r = requests.post(u, json={"title": "bread"})
print(r.status_code, r.json()["title"], r.headers["location"])
]]):format(app.port))
      assert.equal(0, code, out)
      assert.equal("400\n415\n413\n422\n201 bread /todos/2\n", out)
    end)
  end)

  describe("streaming upload (examples/upload.lua)", function()
    local app, dir
    setup(function()
      dir = tmpdir()
      app = start("examples/upload.lua", dir)
    end)
    teardown(function()
      if app then app:stop() end
      if dir then rmdir(dir) end
    end)

    it("stores a 64 MB PUT body in bounded memory", function()
      local size = 64 * 1024 * 1024
      local src = h.make_file(size)
      local out, code = h.curl(("-s -T %s http://127.0.0.1:%d/files/big.bin"):format(src, app.port), 60)
      assert.equal(0, code, out)
      assert.equal(("stored big.bin (%d bytes)\n"):format(size), out)
      local same = os.execute("cmp -s " .. h.shell_quote(src) .. " " .. h.shell_quote(dir .. "/big.bin"))
      os.remove(src)
      assert.is_true(same)
      local _, peak = h.rss_kib(app.pid)
      h.log("upload recipe 64 MB: peak RSS %d KiB", peak)
      if not h.SANITIZED then assert.is_true(peak < 40 * 1024, "peak RSS " .. peak .. " KiB") end
    end)

    it("stores the files of a multipart form, and refuses bad names", function()
      local a = h.tmpname(".txt")
      h.write_file(a, "first file\n")
      local out, code = curl("-s -F 'note=hi' -F 'f=@%s;filename=a.txt' -F 'g=@%s;filename=../evil' http://127.0.0.1:%d/upload", a, a, app.port)
      os.remove(a)
      assert.equal(0, code, out)
      assert.same({ { name = "a.txt", bytes = 11 } }, cjson.decode(out))
      assert.equal("first file\n", h.read_file(dir .. "/a.txt"))
      out = curl("-s -w ' %%{http_code}' -T /dev/null http://127.0.0.1:%d/files/.hidden", app.port)
      assert.equal("bad file name\n 400", out)
    end)
  end)

  describe("file serving (examples/files.lua)", function()
    local app, dir
    setup(function()
      dir = tmpdir()
      os.execute("mkdir -p " .. h.shell_quote(dir .. "/sub"))
      h.write_file(dir .. "/index.html", "<h1>home</h1>\n")
      h.write_file(dir .. "/a b.txt", "spaced\n")
      h.write_file(dir .. "/empty.txt", "")
      h.write_file(dir .. "/.secret", "no\n")
      local blob = {}
      for i = 1, 20000 do blob[i] = ("%07d\n"):format(i) end
      h.write_file(dir .. "/sub/data.bin", table.concat(blob)) -- 160,000 bytes
      app = start("examples/files.lua", dir)
    end)
    teardown(function()
      if app then app:stop() end
      if dir then rmdir(dir) end
    end)

    it("serves files, index.html and HEAD", function()
      assert.equal("<h1>home</h1>\n", (curl("-s http://127.0.0.1:%d/", app.port)))
      assert.equal("spaced\n", (curl("-s 'http://127.0.0.1:%d/a%%20b.txt'", app.port)))
      local out = curl("-sI http://127.0.0.1:%d/sub/data.bin", app.port)
      assert.matches("^HTTP/1.1 200", out)
      assert.matches("\r\ncontent%-length: 160000\r\n", out)
      assert.matches("\r\ncontent%-type: application/octet%-stream\r\n", out)
      out = curl("-s -w ' %%{http_code} %%{size_download}' http://127.0.0.1:%d/empty.txt", app.port)
      assert.equal(" 200 0", out)
    end)

    it("streams a file to Node intact", function()
      local out, code = h.node(([[
(async () => {
  const r = await fetch("http://127.0.0.1:%d/sub/data.bin");
  const t = await r.text();
  console.log(r.status, t.length, t.slice(0, 8) === "0000001\n", t.slice(-8) === "0020000\n");
})();
]]):format(app.port))
      assert.equal(0, code, out)
      assert.equal("200 160000 true true\n", out)
    end)

    it("refuses paths out of the root, hidden files and directories", function()
      for _, t in ipairs { "/../etc/passwd", "/%2e%2e/etc/passwd", "/sub/..%2F..%2Fetc", "/.secret", "/sub", "/nope" } do
        local res = assert(h.raw_request(app.port, h.req("GET", t)))
        assert.is_true(res.status == 404 or res.status == 400, t .. " gave " .. res.status)
      end
      local res = assert(h.raw_request(app.port, h.req("DELETE", "/index.html")))
      assert.equal(405, res.status)
    end)
  end)

  describe("background jobs (examples/jobs.lua)", function()
    local app
    setup(function() app = start("examples/jobs.lua") end)
    teardown(function() if app then app:stop() end end)

    it("answers at once and finishes the job in a task", function()
      local out, code = curl("-si -X POST 'http://127.0.0.1:%d/jobs?steps=3'", app.port)
      assert.equal(0, code, out)
      assert.matches("^HTTP/1.1 202", out)
      assert.same({ id = 1, steps = 3, done = 0, state = "running" }, cjson.decode(out:match("\r\n\r\n(.*)$")))
      local job
      local deadline = socket.gettime() + 10
      repeat
        socket.sleep(0.1)
        job = cjson.decode((curl("-s http://127.0.0.1:%d/jobs/1", app.port)))
      until job.state == "finished" or socket.gettime() > deadline
      assert.same({ id = 1, steps = 3, done = 3, state = "finished" }, job)
      assert.equal('{"error":"no such job"}', (curl("-s http://127.0.0.1:%d/jobs/9", app.port)))
    end)

    it("cancels a running job with DELETE, and it stays where it was", function()
      local out = curl("-s -X POST 'http://127.0.0.1:%d/jobs?steps=100'", app.port)
      local id = cjson.decode(out).id
      socket.sleep(0.25)
      local job = cjson.decode((curl("-s -X DELETE http://127.0.0.1:%d/jobs/%d", app.port, id)))
      assert.equal("canceled", job.state)
      assert.truthy(job.done >= 1 and job.done < 100, job.done)
      socket.sleep(0.3)
      local later = cjson.decode((curl("-s http://127.0.0.1:%d/jobs/%d", app.port, id)))
      assert.equal(job.done, later.done)
      assert.equal("canceled", later.state)
    end)
  end)
  describe("server-sent events and long polling (examples/sse.lua)", function()
    local app
    setup(function() app = start("examples/sse.lua") end)
    teardown(function() if app then app:stop() end end)

    local function subscribers()
      return tonumber((curl("-s http://127.0.0.1:%d/subscribers", app.port)))
    end

    it("streams what is published to every subscriber, and drops a subscription when its client leaves", function()
      local out, code = py(([[
import http.client, threading, time, urllib.request
port = %d
def publish(msg):
    return urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%%d/publish" %% port, data=msg.encode())).read().decode()
streams = []
for i in range(2):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/events")
    r = c.getresponse()
    print("type=" + r.getheader("content-type"))
    streams.append((c, r))
time.sleep(0.3)
print("published=" + publish("one").strip())
print("published=" + publish("two\nlines").strip())
for i, (c, r) in enumerate(streams):
    got = b""
    while got.count(b"\n\n") < 2:
        got += r.read1(4096)
    print("stream%%d=%%r" %% (i, got.decode()))
streams[0][0].sock.close()
]]):format(app.port))
      assert.equal(0, code, out)
      assert.truthy(out:find("type=text/event-stream", 1, true), out)
      assert.truthy(out:find("published=2 subscribers", 1, true), out)
      assert.truthy(out:find("stream0='data: one\\n\\ndata: two\\ndata: lines\\n\\n'", 1, true), out)
      assert.truthy(out:find("stream1='data: one\\n\\ndata: two\\ndata: lines\\n\\n'", 1, true), out)
      -- both clients are gone (the script ended): their subscriptions with them
      local n
      local deadline = socket.gettime() + 5
      repeat
        n = subscribers()
        if n == 0 then break end
        socket.sleep(0.05)
      until socket.gettime() > deadline
      assert.equal(0, n)
    end)

    it("answers a long poll with the next message, or 204 when none comes in time", function()
      local out = curl("-s -o /dev/null -w '%%{http_code}' 'http://127.0.0.1:%d/poll?timeout=0.2'", app.port)
      assert.equal("204", out)
      local waiting = io.popen(string.format("%stimeout -s KILL 20 curl -sS --max-time 10 'http://127.0.0.1:%d/poll?timeout=5'",
        h.CLIENT_ENV, app.port))
      local deadline = socket.gettime() + 5
      repeat socket.sleep(0.05) until subscribers() == 1 or socket.gettime() > deadline
      assert.equal("1 subscribers\n", (curl("-s -d 'news' http://127.0.0.1:%d/publish", app.port)))
      assert.equal("news", waiting:read("a"))
      waiting:close()
      assert.equal(0, subscribers())
    end)
  end)

  describe("WebSocket chat (examples/chat.lua)", function()
    local app
    setup(function() app = start("examples/chat.lua") end)
    teardown(function() if app then app:stop() end end)

    it("gives every member of a room what one says, and empties the room when they leave", function()
      local out = py(([[
import asyncio, websockets
URL = "ws://127.0.0.1:%d/chat/lobby"
async def until(ws, want):
    seen = []
    while True:
        m = await asyncio.wait_for(ws.recv(), 10)
        seen.append(m)
        if m == want: return seen
async def main():
    a = await websockets.connect(URL)
    await until(a, "* someone joined lobby")
    b = await websockets.connect(URL)
    await until(a, "* someone joined lobby")
    await a.send("hello from a")
    print("b saw", await until(b, "hello from a"))
    other = await websockets.connect(URL.replace("lobby", "other"))
    await other.send("only here")
    await b.send("hello from b")
    print("a saw", await until(a, "hello from b"))
    await b.close()
    await until(a, "* someone left lobby")
    print("left seen")
    await a.close()
    await other.close()
asyncio.run(main())
]]):format(app.port))
      assert.truthy(out:find("b saw ['* someone joined lobby', 'hello from a']", 1, true), out)
      -- the speaker hears itself; "only here" (another room) never comes
      assert.truthy(out:find("a saw ['hello from a', 'hello from b']", 1, true), out)
      assert.truthy(out:find("left seen", 1, true), out)
      -- every member gone: no room left (the defer ran for each)
      local rooms
      for _ = 1, 50 do
        rooms = curl("-s http://127.0.0.1:%d/", app.port)
        if rooms == "" then break end
        h.sleep(0.05)
      end
      assert.equal("", rooms)
    end)
  end)

  describe("reverse proxy with cancellation (examples/proxy.lua)", function()
    local upstream, app
    setup(function()
      upstream = h.start_server()
      app = start("examples/proxy.lua", "http://127.0.0.1:" .. upstream.port)
    end)
    teardown(function()
      if app then app:stop() end
      if upstream then upstream:stop() end
    end)

    it("forwards requests and bodies both ways", function()
      assert.equal("Hello, World!", (curl("-s http://127.0.0.1:%d/hello", app.port)))
      local out = curl("-s --data-binary 'a body' http://127.0.0.1:%d/echo", app.port)
      assert.equal("a body", out)
    end)

    it("cancels the upstream handler when the client leaves", function()
      local sock, r = h.connect(app.port)
      assert(sock:send(h.req("GET", "/cancel")))
      socket.sleep(0.3)
      sock:close()
      local deadline, n = socket.gettime() + 5, nil
      repeat
        socket.sleep(0.05)
        n = tonumber(assert(h.raw_request(upstream.port, h.req("GET", "/cancelled"))).body)
      until n == 1 or socket.gettime() > deadline
      assert.equal(1, n)
    end)
  end)

  describe("graceful shutdown (examples/shutdown.lua)", function()
    it("finishes the request under way with Connection: close, refuses new ones, and exits", function()
      local app = start("examples/shutdown.lua")
      local undo = h.undo()
      finally(undo.run)
      undo.add(function() app:stop() end)
      local sock, r = h.connect(app.port)
      undo.add(function() sock:close() end)
      assert(sock:send(h.req("GET", "/slow")))
      socket.sleep(0.2)
      app:kill("TERM")
      assert.is_true(app:wait_log("closing (signal 15)", 5))
      local res = assert(r:response({ timeout = 5 }))
      assert.equal(200, res.status)
      assert.equal("done\n", res.body)
      assert.equal("close", res.headers.get("connection"))
      local refused = socket.tcp()
      refused:settimeout(1)
      assert.is_nil((refused:connect("127.0.0.1", app.port)))
      refused:close()
      assert.is_true(app:wait_log("closed\n", 5))
      assert.is_true(app:wait_log("bye", 5), app:log())
      assert.equal(0, app:exit_code(5))
    end)
  end)
end)
