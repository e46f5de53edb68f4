-- lhyper.request against Debian's nginx, run on a loopback port with a temp
-- prefix and config (daemon off), killed at teardown.
local up = require "upstreams"

local FILE = string.rep("nginx static file line\n", 4000) -- 92000 bytes

local LOCATIONS = [[
    keepalive_timeout 60;
    keepalive_requests 10000;
    location = /hello { return 200 "hello from nginx\n"; }
    location = /empty { return 200; }
    location = /port { return 200 "$remote_port"; }
    location = /nocontent { return 204; }
    location = /few { keepalive_requests 2; return 200 "$remote_port"; }
    location /static/ { alias ROOT/static/; etag on; }
    location /sub/ {
      alias ROOT/static/;
      sub_filter "line" "LINE";
      sub_filter_once off;
      sub_filter_types *;
    }
    location /dav/ {
      root ROOT;
      dav_methods PUT DELETE;
      create_full_put_path on;
      client_max_body_size 64m;
      client_body_buffer_size 1m;
    }
]]

local function run(src, port)
  local out, code = up.client(string.format("local base = %q\n", "http://127.0.0.1:" .. port) .. src, 30)
  assert.equal(0, code, out)
  assert.is_nil(out:find("ERROR", 1, true), out)
  return up.parse(out), out
end

describe("lhyper.request against nginx", function()
  if not up.have("nginx") then
    pending("nginx is not installed (apt-get install nginx)")
    return
  end
  local nginx
  setup(function()
    nginx = up.nginx(LOCATIONS, { ["file.txt"] = FILE })
  end)
  teardown(function()
    if nginx then nginx:stop() end
  end)

  it("reads a length body and reuses the connection (same remote port)", function()
    local r = run([[
local res = assert(lhyper.request{ url = base .. "/hello" })
say("hello=" .. res.status .. ":" .. res.headers.server:match("^nginx") .. ":" .. res:read_all():gsub("\n", ""))
local ports = {}
for i = 1, 5 do
  local p = assert(lhyper.request{ url = base .. "/port" })
  ports[p:read_all()] = true
end
local n = 0
for _ in pairs(ports) do n = n + 1 end
say("ports=" .. n)
res = assert(lhyper.request{ url = base .. "/empty" })
say("empty=" .. res.status .. ":" .. #res:read_all())
]], nginx.port)
    assert.equal("200:nginx:hello from nginx", r.hello)
    assert.equal("1", r.ports)
    assert.equal("200:0", r.empty)
  end)

  it("follows nginx closing after keepalive_requests", function()
    local r = run([[
local ports, good = {}, 0
for i = 1, 6 do
  local res, err = lhyper.request{ url = base .. "/few" }
  if res then
    local p = res:read_all()
    ports[#ports + 1] = p
    good = good + 1
  else
    say("failed=" .. tostring(err))
  end
end
local distinct = {}
for _, p in ipairs(ports) do distinct[p] = true end
local n = 0
for _ in pairs(distinct) do n = n + 1 end
say("good=" .. good)
say("distinct=" .. n)
]], nginx.port)
    assert.equal("6", r.good)
    assert.equal("3", r.distinct)
  end)

  it("uploads a chunked and a length body (WebDAV PUT) and reads them back", function()
    local r = run([[
local part = string.rep("0123456789", 10000) -- 100000 bytes
local i = 0
local res = assert(lhyper.request{ method = "PUT", url = base .. "/dav/up1.bin", body = function()
  i = i + 1
  if i > 20 then return nil end
  return part
end })
say("put_chunked=" .. res.status)
res:read_all()
res = assert(lhyper.request{ url = base .. "/dav/up1.bin" })
local got = res:read_all()
say("get_chunked=" .. res.headers["content-length"] .. ":" .. tostring(got == string.rep(part, 20)))
res = assert(lhyper.request{ method = "PUT", url = base .. "/dav/up2.txt", body = "length body" })
say("put_length=" .. res.status)
res:read_all()
res = assert(lhyper.request{ url = base .. "/dav/up2.txt" })
say("get_length=" .. res:read_all())
res = assert(lhyper.request{ method = "PUT", url = base .. "/dav/up3.txt", body = "waited", expect_continue = true })
say("put_expect=" .. res.status)
res:read_all()
say("get_expect=" .. assert(lhyper.request{ url = base .. "/dav/up3.txt" }):read_all())
]], nginx.port)
    assert.equal("201", r.put_chunked)
    assert.equal("2000000:true", r.get_chunked)
    assert.equal("201", r.put_length)
    assert.equal("length body", r.get_length)
    assert.equal("201", r.put_expect)
    assert.equal("waited", r.get_expect)
  end)

  it("reads a chunked response (sub_filter) and a static file", function()
    local r = run(string.format([[
local expect = %q
local res = assert(lhyper.request{ url = base .. "/sub/file.txt" })
say("te=" .. tostring(res.headers["transfer-encoding"]))
say("sub=" .. tostring(res:read_all() == expect:gsub("line", "LINE")))
res = assert(lhyper.request{ url = base .. "/static/file.txt" })
say("static=" .. res.headers["content-length"] .. ":" .. tostring(res:read_all() == expect))
]], FILE), nginx.port)
    assert.equal("chunked", r.te)
    assert.equal("true", r.sub)
    assert.equal("92000:true", r.static)
  end)

  it("reads HEAD, 204 and 304 without a body on a kept connection", function()
    local r = run([[
local res = assert(lhyper.request{ method = "HEAD", url = base .. "/static/file.txt" })
local etag = res.headers.etag
say("head=" .. res.status .. ":" .. res.headers["content-length"] .. ":" .. #res:read_all())
res = assert(lhyper.request{ url = base .. "/static/file.txt", headers = { ["if-none-match"] = etag } })
say("s304=" .. res.status .. ":" .. #res:read_all() .. ":" .. tostring(res.reused))
res = assert(lhyper.request{ url = base .. "/nocontent" })
say("s204=" .. res.status .. ":" .. #res:read_all() .. ":" .. tostring(res.reused))
res = assert(lhyper.request{ url = base .. "/hello" })
say("after=" .. res.status .. ":" .. tostring(res.reused))
]], nginx.port)
    assert.equal("200:92000:0", r.head)
    assert.equal("304:0:true", r.s304)
    assert.equal("204:0:true", r.s204)
    assert.equal("200:true", r.after)
  end)

  it("answers 50 concurrent tasks through one pool", function()
    local r = run([[
local c = lhyper.client{ pool_max_idle_per_host = 50 }
local done, good = 0, 0
for i = 1, 50 do
  lhyper.spawn(function()
    for j = 1, 20 do
      local res = c:request{ url = base .. "/hello" }
      if res and res:read_all() == "hello from nginx\n" then good = good + 1 end
    end
    done = done + 1
  end)
end
while done < 50 do lhyper.sleep(0.01) end
say("good=" .. good)
say("connections=" .. c:stats().connections)
]], nginx.port)
    assert.equal("1000", r.good)
    assert.equal("50", r.connections)
  end)
end)
