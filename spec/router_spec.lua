local h = require "helper"

-- Issue 19: lhyper.router over real sockets (spec/router_app.lua), with raw
-- requests, curl, Python and Node; and its rules checked in a Lua of its own.

-- "key=value" lines of a show() route
local function info(body)
  local t = {}
  for k, v in (body or ""):gmatch("([^=\n]+)=([^\n]*)") do t[k] = v end
  return t
end

local function get(srv, target, headers, method, body)
  local res, err = h.raw_request(srv.port, h.req(method or "GET", target, headers, body),
    { method = method })
  assert(res, err)
  return res
end

-- runs a Lua snippet with lhyper loaded (no server); its stdout
local function lua(body)
  local out, code = h.lua('local lhyper = require "lhyper"\n' .. body)
  assert.equal(0, code, out)
  return out
end

describe("lhyper.router", function()
  local srv
  setup(function() srv = h.start_app("spec/router_app.lua", {}) end)
  teardown(function() if srv then srv:stop() end end)

  it("answers GET / with Hello, World!", function()
    local res = get(srv, "/")
    assert.equal(200, res.status)
    assert.equal("Hello, World!", res.body)
  end)

  it("matches static segments, parameters and tails, and sets req.params and req.route", function()
    local t = info(get(srv, "/users/42").body)
    assert.same({ tag = "user", method = "GET", path = "/users/42", route = "/users/{id}",
      ["param.id"] = "42", id = t.id }, t)
    t = info(get(srv, "/users/7/posts/hello").body)
    assert.equal("post", t.tag)
    assert.equal("/users/{id}/posts/{post}", t.route)
    assert.equal("7", t["param.id"])
    assert.equal("hello", t["param.post"])
    t = info(get(srv, "/files/docs/guide/intro.md").body)
    assert.equal("file", t.tag)
    assert.equal("/files/{*path}", t.route)
    assert.equal("docs/guide/intro.md", t["param.path"])
  end)

  it("prefers static over parameter over tail whatever the order routes were added in", function()
    -- router_app adds /users/me after /users/{id}, /files/readme after /files/{*path}
    assert.equal("me", info(get(srv, "/users/me").body).tag)
    assert.equal("user", info(get(srv, "/users/mee").body).tag)
    assert.equal("readme", info(get(srv, "/files/readme").body).tag)
    assert.equal("file", info(get(srv, "/files/readme/more").body).tag)
    -- a constrained parameter before a plain one, added after it
    local t = info(get(srv, "/n/123").body)
    assert.equal("number", t.tag)
    assert.equal("/n/{id:%d+}", t.route)
    t = info(get(srv, "/n/12a").body)
    assert.equal("slug", t.tag)
    assert.equal("12a", t["param.slug"])
  end)

  it("percent-decodes parameters, keeps req.path raw, and answers 400 for a bad escape", function()
    local t = info(get(srv, "/users/J%C3%BCrgen%20M").body)
    assert.equal("J\xC3\xBCrgen M", t["param.id"])
    assert.equal("/users/J%C3%BCrgen%20M", t.path)
    t = info(get(srv, "/files/a%2Fb/c%3F").body)
    assert.equal("a/b/c?", t["param.path"])
    -- constrained parameters test the decoded value
    assert.equal("number", info(get(srv, "/n/%31%32").body).tag)
    local res = get(srv, "/users/%zz")
    assert.equal(400, res.status)
    res = get(srv, "/users/50%")
    assert.equal(400, res.status)
  end)

  it("answers 400 for %00 in a parameter, as req:path_decoded does", function()
    -- a NUL would cut the value short in C: io.open(dir .. "/" .. name)
    -- with name "secret%00.png" opens "secret"
    for _, p in ipairs { "/users/secret%00.png", "/files/a/b%00", "/n/%00", "/users/7/posts/x%00y" } do
      local res = get(srv, p)
      assert.equal(400, res.status, p)
    end
    assert.equal("a\1b", info(get(srv, "/users/a%01b").body)["param.id"])
  end)

  it("answers 404 for no match, empty segments and a trailing slash (strict)", function()
    for _, p in ipairs { "/nope", "/users/", "/users//posts/x", "/slash", "/noslash/", "/files/" } do
      local res = get(srv, p)
      assert.equal(404, res.status, p)
      assert.equal("not found\n", res.body, p)
    end
  end)

  it("answers 405 with Allow for a known path and another method", function()
    local res = get(srv, "/users/5", nil, "DELETE")
    assert.equal(405, res.status)
    assert.equal("GET, HEAD, PUT, OPTIONS", res.headers.get("allow"))
    res = get(srv, "/multi", nil, "POST", "x")
    assert.equal(405, res.status)
    assert.equal("GET, HEAD, PUT, DELETE, OPTIONS", res.headers.get("allow"))
    -- several methods on one path
    assert.equal("multi-put", info(get(srv, "/multi", nil, "PUT", "").body).tag)
    assert.equal("multi-delete", info(get(srv, "/multi", nil, "DELETE").body).tag)
    assert.equal("user-put", info(get(srv, "/users/9", nil, "PUT", "").body).tag)
  end)

  it("serves HEAD with the GET route (no body) unless a HEAD route exists", function()
    local res = get(srv, "/users/5", nil, "HEAD")
    assert.equal(200, res.status)
    assert.equal("", res.body)
    res = get(srv, "/", nil, "HEAD")
    assert.equal("", res.body)
    assert.equal("13", res.headers.get("content-length"))
    res = get(srv, "/head-only", nil, "HEAD")
    assert.equal(200, res.status)
    assert.equal("own", res.headers.get("x-head"))
    assert.equal(405, get(srv, "/head-only").status)
  end)

  it("answers OPTIONS with 204 and Allow when no route takes it", function()
    local res = get(srv, "/multi", nil, "OPTIONS")
    assert.equal(204, res.status)
    assert.equal("GET, HEAD, PUT, DELETE, OPTIONS", res.headers.get("allow"))
    assert.equal(404, get(srv, "/nowhere", nil, "OPTIONS").status)
  end)

  it("sends every method to an any route", function()
    for _, m in ipairs { "GET", "POST", "PATCH", "DELETE", "OPTIONS" } do
      local t = info(get(srv, "/any", nil, m, m == "POST" and "x" or nil).body)
      assert.equal("any", t.tag, m)
      assert.equal(m, t.method)
    end
  end)

  it("nests a router under a prefix with parameters: the inner one sees the rest of the path", function()
    local t = info(get(srv, "/api/v2/items/7").body)
    assert.same({ tag = "api-item", method = "GET", path = "/items/7",
      route = "/api/{version}/items/{item}", ["param.version"] = "v2", ["param.item"] = "7", id = t.id }, t)
    t = info(get(srv, "/api/v1").body)
    assert.equal("api-root", t.tag)
    assert.equal("/", t.path)
    assert.equal("/api/{version}", t.route)
    assert.equal("api-root", info(get(srv, "/api/v1/").body).tag)
    assert.equal("api-create", info(get(srv, "/api/v1/items", nil, "POST", "").body).tag)
    local res = get(srv, "/api/v1/zzz/y")
    assert.equal(404, res.status)
    assert.equal("api has no /zzz/y\n", res.body)
    assert.equal("static sees /css/site.css\n", get(srv, "/static/css/site.css").body)
    assert.equal("static sees /\n", get(srv, "/static").body)
    assert.equal(404, get(srv, "/staticx").status)
  end)

  it("streams a body through the router", function()
    local res = get(srv, "/stream?n=4")
    assert.equal(200, res.status)
    assert.equal("chunked", res.framing)
    assert.equal("chunk 1\nchunk 2\nchunk 3\nchunk 4\n", res.body)
  end)

  it("keeps the status of raised lhyper errors without on_error", function()
    local res = get(srv, "/raise")
    assert.equal(500, res.status)
    res = get(srv, "/raise-status")
    assert.equal(418, res.status)
    res = get(srv, "/read-small", nil, "POST", string.rep("x", 20))
    assert.equal(413, res.status)
    assert.equal("got ok", (get(srv, "/read-small", nil, "POST", "ok").body):gsub("^", "got "))
  end)

  it("answers with Python's http.client: HEAD, 405, OPTIONS and percent-encoded parameters", function()
    local out, code = h.run(string.format([[%stimeout -s KILL 20 /usr/bin/python3 -c '
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", %d, timeout=10)
def ask(m, p, body=None):
    c.request(m, p, body=body)
    r = c.getresponse()
    return r.status, r.getheader("allow"), r.read().decode()
print(ask("HEAD", "/users/5")[0:1])
print(ask("DELETE", "/users/5")[0:2])
print(ask("OPTIONS", "/users/5")[0:2])
s, a, b = ask("GET", "/api/v9/items/a%%20b")
print(s, [l for l in b.split("\n") if l.startswith("param.")])
' 2>&1]], h.CLIENT_ENV, srv.port))
    assert.equal(0, code, out)
    assert.equal("(200,)\n(405, 'GET, HEAD, PUT, OPTIONS')\n(204, 'GET, HEAD, PUT, OPTIONS')\n" ..
      "200 ['param.item=a b', 'param.version=v9']\n", out)
  end)

  it("answers Node's http client on one keep-alive connection", function()
    local out, code = h.node(string.format([[
const http = require("http");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const get = (path, method) => new Promise((ok, fail) => {
  const req = http.request({ host: "127.0.0.1", port: %d, path, method: method || "GET", agent }, res => {
    let b = ""; res.on("data", d => b += d); res.on("end", () => ok([res.statusCode, b, res.headers.allow])); });
  req.on("error", fail); req.end(); });
(async () => {
  const seen = [];
  for (const p of ["/users/me", "/users/1", "/files/x/y", "/api/v3/items/9", "/nope"]) {
    const [s, b] = await get(p);
    const tag = (b.match(/tag=(.*)/) || [])[1];
    seen.push(s + ":" + (tag || b.trim()));
  }
  const [s, , allow] = await get("/multi", "PATCH");
  seen.push(s + ":" + allow);
  console.log(seen.join(" "));
  agent.destroy();
})().catch(e => { console.log("error " + e); process.exit(1); });
]], srv.port))
    assert.equal(0, code, out)
    assert.equal("200:me 200:user 200:file 200:api-item 404:not found 405:GET, HEAD, PUT, DELETE, OPTIONS\n", out)
  end)
end)

describe("lhyper.router with on_error", function()
  local srv
  setup(function() srv = h.start_app("spec/router_app.lua", { on_error = true }) end)
  teardown(function() if srv then srv:stop() end end)

  it("gives the one error handler what a route raised, with the request", function()
    local res = get(srv, "/raise")
    assert.equal(500, res.status)
    assert.equal("handled", res.headers.get("x-error"))
    assert.truthy(res.body:find("handler failed on purpose (/raise)", 1, true), res.body)
    res = get(srv, "/raise-status")
    assert.equal(418, res.status)
    assert.equal("handled", res.headers.get("x-error"))
  end)

  it("keeps an lhyper error's status through lhyper.error_status (read_all over its limit: 413)", function()
    local res = get(srv, "/read-small", nil, "POST", string.rep("y", 30))
    assert.equal(413, res.status)
    assert.equal("handled", res.headers.get("x-error"))
    assert.truthy(res.body:find("body too large", 1, true), res.body)
  end)
end)

describe("lhyper.router trailing_slash", function()
  it("redirect: 308 to the path that has a route, query kept", function()
    local srv = h.start_app("spec/router_app.lua", { trailing_slash = "redirect" })
    finally(function() srv:stop() end)
    local res = get(srv, "/slash")
    assert.equal(308, res.status)
    assert.equal("/slash/", res.headers.get("location"))
    res = get(srv, "/noslash/?a=1&b=2")
    assert.equal(308, res.status)
    assert.equal("/noslash?a=1&b=2", res.headers.get("location"))
    res = get(srv, "/users/3/")
    assert.equal("/users/3", res.headers.get("location"))
    assert.equal(404, get(srv, "/nothing/").status)
    -- curl follows it, with the method kept (308)
    local out = h.curl(string.format("-L -X PUT -d '' http://127.0.0.1:%d/users/8/", srv.port))
    assert.equal("user-put", info(out).tag, out)
  end)

  it("redirect: never to another host (a location starting // or /\\), in C and in Lua", function()
    -- browsers read "/\evil.example" as "//evil.example": another host; the
    -- parser refuses a '\' in the path (400) before any router sees it
    local src = [[
local lhyper = require "lhyper"
local app = lhyper.router { trailing_slash = "redirect" }
app:get("/{name}", function(req) return 200, nil, "name " .. req.params.name end)
local api = lhyper.router { trailing_slash = "redirect" }
api:get("/items", function() return 200, nil, "items" end)
app:nest("/t/{tenant}", api)
app:nest("/{tenant}/api", api)
local srv = assert(lhyper.server { port = 0, handler = app, on_error = function() end })
lhyper.spawn(function()
  for _, p in ipairs { "/\\evil.example/", "//evil.example/", "//evil.example/api/items/", "/ok/", "/t/x/items/" } do
    local res = assert(lhyper.request { url = ("http://127.0.0.1:%d%s"):format(srv.port, p) })
    print(p, res.status, res.headers.location)
  end
  srv:close()
end)
lhyper.run()
]]
    for _, env in ipairs { "LHYPER_ROUTER_C=1", "LHYPER_ROUTER_C=0" } do
      local out, code = h.lua(src, 20, env)
      assert.equal(0, code, out)
      assert.equal(table.concat({
        "/\\evil.example/\t400\tnil", "//evil.example/\t404\tnil", "//evil.example/api/items/\t404\tnil",
        "/ok/\t308\t/ok", "/t/x/items/\t308\t/t/x/items", "",
      }, "\n"), out)
    end
  end)

  it("ignore: a trailing slash makes no difference", function()
    local srv = h.start_app("spec/router_app.lua", { trailing_slash = "ignore" })
    finally(function() srv:stop() end)
    assert.equal("slash", info(get(srv, "/slash").body).tag)
    assert.equal("slash", info(get(srv, "/slash/").body).tag)
    assert.equal("noslash", info(get(srv, "/noslash/").body).tag)
    assert.equal("user", info(get(srv, "/users/4/").body).tag)
    assert.equal("Hello, World!", get(srv, "/").body)
  end)
end)

describe("lhyper.router rules", function()
  it("raises on conflicting routes, naming both patterns", function()
    local out = lua([[
local function try(f)
  local ok, err = pcall(f, lhyper.router())
  print(ok and "accepted" or (tostring(err):gsub("^[^:]*:%d+: ", "")))
end
try(function(r) r:get("/a/{x}", print); r:get("/a/{y}", print) end)
try(function(r) r:get("/a/{x}", print); r:post("/a/{y}/b", print); r:get("/a/{x}/b", print) end)
try(function(r) r:get("/u/{id:%d+}", print); r:get("/u/{id:%a+}", print) end)
try(function(r) r:get("/f/{*rest}", print); r:get("/f/{*path}", print) end)
try(function(r) r:get("/s", print); r:get("/s", print) end)
try(function(r) r:any("/s", print); r:any("/s", print) end)
try(function(r) r:get("/api", print); r:nest("/api", print) end)
try(function(r) r:nest("/api", print); r:get("/api/{*x}", print) end)
try(function(r) r:get("/u/{id}", print); r:get("/u/me", print); r:get("/u/{id:%d+}", print); r:get("/u/{*t}", print) end)
]])
    assert.equal(table.concat({
      'router:get: "/a/{y}" conflicts with "/a/{x}": the same path with other parameter names',
      'router:get: "/a/{x}/b" conflicts with "/a/{y}/b": the same path with other parameter names',
      'router:get: "/u/{id:%a+}" conflicts with "/u/{id:%d+}": two different patterns for one segment',
      'router:get: "/f/{*path}" conflicts with "/f/{*rest}": the same path with other parameter names',
      'router:get: GET "/s" conflicts with GET "/s"',
      'router:any: "/s" conflicts with "/s" (any method, twice)',
      'router:nest: "/api" conflicts with "/api"',
      'router:get: "/api/{*x}" conflicts with "/api"',
      "accepted", "",
    }, "\n"), out)
  end)

  it("raises on malformed patterns and arguments", function()
    local out = lua([[
for _, p in ipairs { "users", "/a//b", "/a/{x", "/a/x{y}", "/{*t}/more", "/{1x}", "/{a}/{a}", "/{x:[}", "/{*t:%d}" } do
  local ok, err = pcall(function() lhyper.router():get(p, print) end)
  io.write(ok and "accepted " or "raised ", p, "\n")
end
print(pcall(function() lhyper.router():get("/x", 42) end))
print(pcall(lhyper.router, { trailing_slash = "sometimes" }))
print(pcall(function() lhyper.router():nest("/x/", print) end))
]])
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    for i = 1, 9 do assert.truthy(lines[i]:find("^raised "), lines[i]) end
    for i = 10, 12 do assert.truthy(lines[i]:find("^false"), lines[i]) end
  end)

  it("raises when added on a Lua pattern that string.find rejects only once a match reaches its fault", function()
    -- string.find("", "%d+[") succeeds: the fault is past where the match stops
    local out = lua([==[
for _, p in ipairs { "%d+[", "a[%d", "[^]", "%d%", "a(%d", "a%d)", "%1a", "(a)%2", "(a%1)", "a%f", "a%fx",
    "a%b", "a%bx", "(a", "()%d)" } do
  local ok, err = pcall(function() lhyper.router():get("/c/{x:" .. p .. "}", print) end)
  print(p, ok and "accepted" or (err:find("bad Lua pattern", 1, true) and "raised" or err))
end
local r = lhyper.router()
for _, p in ipairs { "[%w_-]+", "%x%x?", "%d%d%d%d%-%d%d", "()%a+", "(a)%1", "[]]", "[^%]]+", "%f[%a]%a+",
    "%b()", "%.%d", "a%]" } do
  r:get("/" .. #r.eps_ .. "/{x:" .. p .. "}", print)
end
for _, path in ipairs { "/0/a_b", "/1/f", "/2/2026-12", "/3/abc", "/4/aa", "/5/]", "/6/ab", "/7/word", "/8/(x)",
    "/9/.5", "/9/x5", "/10/a]" } do
  print(path, (r:match(path)))
end
]==])
    assert.equal(table.concat({
      "%d+[\traised", "a[%d\traised", "[^]\traised", "%d%\traised", "a(%d\traised", "a%d)\traised",
      "%1a\traised", "(a)%2\traised", "(a%1)\traised", "a%f\traised", "a%fx\traised", "a%b\traised",
      "a%bx\traised", "(a\traised", "()%d)\traised",
      "/0/a_b\t/0/{x:[%w_-]+}", "/1/f\t/1/{x:%x%x?}", "/2/2026-12\t/2/{x:%d%d%d%d%-%d%d}",
      "/3/abc\t/3/{x:()%a+}", "/4/aa\t/4/{x:(a)%1}", "/5/]\t/5/{x:[]]}", "/6/ab\t/6/{x:[^%]]+}",
      "/7/word\t/7/{x:%f[%a]%a+}", "/8/(x)\t/8/{x:%b()}", "/9/.5\t/9/{x:%.%d}", "/9/x5\tnil", "/10/a]\t/10/{x:a%]}", "",
    }, "\n"), out)
  end)

  it("names the caller's line in what it raises", function()
    local out = lua([[
local r = lhyper.router()
r:get("/s", print)
r:any("/a", print)
local function line(f)
  local ok, err = pcall(f)
  local file, n = tostring(err):match("^([^:]*):(%d+): ")
  print(ok and "accepted" or (file == arg[0] and n or "elsewhere: " .. tostring(err)))
end
line(function() r:get("/s", print) end) -- 10
line(function() r:any("/a", print) end) -- 11
line(function() r:get("/b/{x}", print); r:get("/b/{y}", print) end) -- 12
line(function() r:get("s", print) end) -- 13
line(function() r:get("/x", 42) end) -- 14
line(function() r:route("/y", { get = 42 }) end) -- 15
line(function() r:route("/s", { get = print }) end) -- 16
line(function() r:route("/z", { any = print }); r:route("/z", { any = print }) end) -- 17
line(function() r:route("/{x:%d+[}", { get = print }) end) -- 18
line(function() r:nest("/s", print) end) -- 19
line(function() r:nest("/n", 42) end) -- 20
line(function() r:fallback(42) end) -- 21
line(function() r:match(42) end) -- 22
]])
    assert.equal("10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\n21\n22\n", out)
  end)

  it("matches the same whatever the order routes were added in", function()
    local out = lua([[
local routes = { "/a", "/a/b", "/a/{x}", "/a/{x}/c", "/a/{n:%d+}", "/a/{*rest}", "/{top}", "/{top}/b",
  "/a/b/{y}", "/a/b/c", "/" }
local paths = { "/a", "/a/b", "/a/z", "/a/7", "/a/z/c", "/a/7/c", "/a/b/c", "/a/b/q", "/a/b/c/d", "/q",
  "/q/b", "/q/c", "/", "/a/", "/a/7/x/y" }
local function build(order)
  local r = lhyper.router()
  for _, i in ipairs(order) do r:get(routes[i], print) end
  local out = {}
  for _, p in ipairs(paths) do
    local route, params = r:match(p)
    local ps = {}
    for k, v in pairs(params or {}) do ps[#ps + 1] = k .. "=" .. v end
    table.sort(ps)
    out[#out + 1] = p .. " -> " .. tostring(route) .. " " .. table.concat(ps, ",")
  end
  return table.concat(out, "\n")
end
local forward, backward, shuffled = {}, {}, {}
for i = 1, #routes do forward[i] = i; backward[i] = #routes + 1 - i end
math.randomseed(7)
for i = 1, #routes do shuffled[i] = i end
for i = #routes, 2, -1 do local j = math.random(i); shuffled[i], shuffled[j] = shuffled[j], shuffled[i] end
local a = build(forward)
assert(a == build(backward) and a == build(shuffled), "order matters")
print(a)
]])
    assert.equal(table.concat({
      "/a -> /a ", "/a/b -> /a/b ", "/a/z -> /a/{x} x=z", "/a/7 -> /a/{n:%d+} n=7",
      "/a/z/c -> /a/{x}/c x=z", "/a/7/c -> /a/{x}/c x=7", "/a/b/c -> /a/b/c ",
      "/a/b/q -> /a/b/{y} y=q", "/a/b/c/d -> /a/{*rest} rest=b/c/d", "/q -> /{top} top=q",
      "/q/b -> /{top}/b top=q", "/q/c -> nil ", "/ -> / ", "/a/ -> nil ", "/a/7/x/y -> /a/{*rest} rest=7/x/y",
    }, "\n") .. "\n", out)
  end)

  it("dispatches on req.method as a layer set it, in C and in Lua", function()
    -- a method override layer (X-HTTP-Method-Override) in front of a router
    local src = [[
local lhyper = require "lhyper"
local app = lhyper.router()
app:post("/x", function(req) return 200, nil, "post" end)
app:delete("/x", function(req) return 200, nil, "delete " .. req.method end)
local function override(inner)
  return function(req)
    local m = req.headers["x-http-method-override"]
    if m then req.method = m end
    return inner(req)
  end
end
local srv = assert(lhyper.server { port = 0, handler = lhyper.stack { override, app } })
lhyper.spawn(function()
  for _, m in ipairs { "DELETE", "PUT" } do
    local res = assert(lhyper.request { method = "POST", url = ("http://127.0.0.1:%d/x"):format(srv.port),
      headers = { ["x-http-method-override"] = m } })
    print(res.status, res:read_all())
  end
  srv:close()
end)
lhyper.run()
]]
    for _, env in ipairs { "LHYPER_ROUTER_C=1", "LHYPER_ROUTER_C=0" } do
      local out, code = h.lua(src, 20, env)
      assert.equal(0, code, out)
      assert.equal("200\tdelete DELETE\n405\tmethod not allowed\n\n", out, env)
    end
  end)

  it("walks the same in C and in Lua (LHYPER_ROUTER_C=0) over many paths", function()
    local out = lua([[
local router = require "lhyper.router"
local core = require "lhyper.core"
assert(core.route_walk, "no C walk")
local r = lhyper.router()
for line in io.lines("bench/github_routes.txt") do if line ~= "" then r:get(line, print) end end
r:get("/x/{n:%d+}/y", print); r:get("/x/{s}/y", print); r:get("/x/{*t}", print)
r:nest("/n/{v}", print); r:get("/n/{v}/w/{*w}", print)
local EMPTY = {}
local segs = { "repos", "users", "user", "orgs", "x", "y", "n", "12", "a%20b", "%zz", "", "issues",
  "comments", "git", "refs", "import", "keys", "1", "%31", "octocat", "teams" }
math.randomseed(42)
local same, tried = 0, 0
local function key(ep, params, rest)
  if ep == nil then return "nil" end
  local ps = {}
  if params then for k, v in pairs(params) do ps[#ps + 1] = k .. "=" .. v end end
  table.sort(ps)
  return ep.route .. "|" .. tostring(params ~= false) .. "|" .. table.concat(ps, ",") .. "|" .. tostring(rest)
end
for i = 1, 20000 do
  local n = math.random(1, 7)
  local p = {}
  for j = 1, n do p[j] = segs[math.random(#segs)] end
  local path = "/" .. table.concat(p, "/")
  if math.random(4) == 1 then path = path .. "/" end
  local a = key(core.route_walk(r.root_, path, EMPTY))
  local b = key(router.lua_route_walk(r.root_, path, EMPTY))
  tried = tried + 1
  if a == b then same = same + 1 else print("differ: " .. path .. " C " .. a .. " Lua " .. b) end
end
for line in io.lines("bench/github_routes.txt") do
  if line ~= "" then
    local path = line:gsub("{[^}]*}", "v")
    local a = key(core.route_walk(r.root_, path, EMPTY))
    local b = key(router.lua_route_walk(r.root_, path, EMPTY))
    tried = tried + 1
    if a == b and a ~= "nil" then same = same + 1 else print("differ: " .. path .. " C " .. a .. " Lua " .. b) end
  end
end
print(same .. "/" .. tried)
]])
    assert.equal("20609/20609\n", out)
  end)
end)
