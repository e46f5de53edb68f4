-- WebSocket interop with real peers: Node's ws (client and server), headless
-- Chromium (a page served by lhyper), and lhyper's client against
-- lua-resty-websocket on Debian's nginx. Each peer runs in its own process
-- group under `timeout` and is stopped by the test.
local h = require "helper"
local up = require "upstreams"
local socket = require "socket"

local NODE_ENV = "NODE_PATH=/usr/share/nodejs "

local function have_node_ws()
  return up.have("node") and os.execute(NODE_ENV .. "node -e \"require('ws')\" >/dev/null 2>&1") == true
end

local function run(src, port, limit) return up.run(src, { port = port }, limit or 30) end

local function result(srv, id, key, t)
  local deadline = socket.gettime() + t
  while true do
    local res = assert(h.raw_request(srv.port, h.req("GET", "/ws/result?id=" .. id)))
    local v = res.body:match(key .. "=([^\n]*)")
    if v or socket.gettime() > deadline then return v end
    socket.sleep(0.1)
  end
end

describe("WebSocket interop #peers", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  describe("with Node's ws", function()
    if not have_node_ws() then
      pending("node and Debian's node-ws are needed")
      return
    end

    it("serves Node's client: text, binary, 1 MiB, compressed, clean close", function()
      local out, code = h.run(string.format("%s%stimeout -s KILL 30 node -e %s 2>&1", h.CLIENT_ENV, NODE_ENV,
        h.shell_quote(([[
const WebSocket = require("ws");
const ws = new WebSocket("ws://127.0.0.1:%d/ws/echo?compress=1", { perMessageDeflate: true });
const msgs = ["hello", "\u03ba\u1f79\u03c3\u03bc\u03b5", "x".repeat(1 << 20), Buffer.from([0, 1, 2, 255])];
let i = 0;
ws.on("open", () => { console.log("ext=" + ws.extensions); ws.send(msgs[0]); });
ws.on("message", (data, isBinary) => {
  const want = msgs[i];
  const ok = typeof want === "string" ? (!isBinary && data.toString() === want) : (isBinary && Buffer.compare(data, want) === 0);
  console.log("echo" + i + "=" + ok);
  i++;
  if (i < msgs.length) ws.send(msgs[i]); else ws.close(4005, "node done");
});
ws.on("close", (code, reason) => console.log("close=" + code + ":" + reason));
ws.on("error", (e) => console.log("ERROR " + e));
]]):format(srv.port))))
      assert.equal(0, code, out)
      local r = up.parse(out)
      assert.truthy((r.ext or ""):find("permessage%-deflate"), out)
      for i = 0, 3 do assert.equal("true", r["echo" .. i], out) end
      assert.equal("4005:", r.close, out)
    end)

    it("talks to Node's server from lhyper's client", function()
      local node = up.node([[
const { WebSocketServer } = require("ws");
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: true });
wss.on("listening", () => ready(wss));
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    if (!isBinary && data.toString() === "bye") return ws.close(4006, "node server done");
    ws.send(data, { binary: isBinary });
  });
});
]], NODE_ENV)
      finally(function() node:stop() end)
      local r = run([[
local ws = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/", { compress = true }))
say("ext=" .. tostring(ws.extensions))
local ok = true
for _, m in ipairs { "one", ("\u{3ba}"):rep(5000), ("z"):rep(300000) } do
  assert(ws:send(m))
  local got, kind = ws:receive()
  ok = ok and got == m and kind == "text"
end
assert(ws:send("\1\2\3", "binary"))
local got, kind = ws:receive()
say("binary=" .. tostring(got == "\1\2\3" and kind == "binary"))
say("echo=" .. tostring(ok))
assert(ws:send("bye"))
say("end=" .. tostring(ws:receive()) .. ":" .. ws.close_code .. ":" .. ws.close_reason)
]], node.port)
      assert.truthy(r.ext:find("^permessage%-deflate"), r.ext)
      assert.equal("true", r.echo)
      assert.equal("true", r.binary)
      assert.equal("nil:4006:node server done", r["end"])
    end)
  end)

  describe("with headless Chromium", function()
    if not up.have("chromium") then
      pending("chromium is not installed")
      return
    end

    it("runs a page that echoes text and binary over lhyper and closes cleanly", function()
      local dir = h.tmpname("-chromium")
      local id = "chrome" .. math.random(1e6)
      local url = string.format("http://127.0.0.1:%d/ws/page?id=%s", srv.port, id)
      local cmd = string.format("sh -c %s", h.shell_quote(string.format(
        "echo PGID $PPID; exec %schromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
          .. "--disable-background-networking --disable-component-update --disable-sync "
          .. "--disable-dev-shm-usage --user-data-dir=%s %s", h.CLIENT_ENV, dir, url)))
      local chrome = up.spawn(cmd)
      chrome.files = dir
      finally(function() chrome:stop() end)
      local report = result(srv, id, "report", 60)
      assert.equal("open permessage-deflate;text true;binary true;close 1000 true", report, chrome:log())
    end)
  end)

  describe("lhyper's client with lua-resty-websocket on nginx", function()
    local mod = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
    local lib = "/usr/share/lua/5.1/nginx/websocket/server.lua"
    if not (up.have("nginx") and h.read_file(mod) and h.read_file(lib)) then
      pending("nginx with libnginx-mod-http-lua and lua-nginx-websocket is needed")
      return
    end
    local nginx
    setup(function()
      nginx = up.nginx([[
    location /ws {
      content_by_lua_block {
        local server = require "nginx.websocket.server"
        local wb, err = server:new{ timeout = 10000, max_payload_len = 16777216 }
        if not wb then ngx.log(ngx.ERR, "ws: ", err) return ngx.exit(444) end
        local parts, kind = {}, nil
        while true do
          local data, typ, err = wb:recv_frame()
          if not data then
            if not string.find(err or "", "timeout", 1, true) then break end
          elseif typ == "close" then
            wb:send_close(1000, "nginx done")
            break
          elseif typ == "ping" then
            wb:send_pong(data)
          elseif typ ~= "pong" then
            if typ ~= "continuation" then kind, parts = typ, {} end
            parts[#parts + 1] = data
            if err ~= "again" then
              local msg = table.concat(parts)
              if msg == "bye" then wb:send_close(4007, "nginx closes") break end
              if kind == "text" then wb:send_text(msg) else wb:send_binary(msg) end
            end
          end
        end
      }
    }
]], nil, {
        main = "load_module /usr/lib/nginx/modules/ndk_http_module.so;\nload_module " .. mod .. ";\n",
        http = "lua_package_path '/usr/share/lua/5.1/?.lua;;';",
      })
    end)
    teardown(function() if nginx then nginx:stop() end end)

    it("echoes text, binary and fragmented messages, and closes both ways", function()
      local r = run([[
local ws = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/ws"))
local ok = true
for _, m in ipairs { "hello nginx", ("\u{3ba}\u{1f79}"):rep(1000), ("f"):rep(200000) } do
  assert(ws:send(m))
  local got, kind = ws:receive()
  ok = ok and got == m and kind == "text"
end
assert(ws:send("\0\255", "binary"))
local got, kind = ws:receive()
say("binary=" .. tostring(got == "\0\255" and kind == "binary"))
say("echo=" .. tostring(ok))
assert(ws:ping("p"))
say("close=" .. tostring(ws:close(1000, "lhyper done")) .. ":" .. ws.close_code .. ":" .. ws.close_reason)
ws = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. port .. "/ws"))
assert(ws:send("bye"))
say("server_close=" .. tostring(ws:receive()) .. ":" .. ws.close_code .. ":" .. ws.close_reason)
]], nginx.port)
      assert.equal("true", r.echo)
      assert.equal("true", r.binary)
      assert.equal("true:1000:nginx done", r.close)
      assert.equal("nil:4007:nginx closes", r.server_close)
    end)
  end)
end)
