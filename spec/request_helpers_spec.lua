local h = require "helper"
local cjson = require "cjson"

-- The request helpers (issue 18) against real clients: curl, Python's
-- requests and urllib (Debian's /usr/bin/python3), Node's fetch, raw sockets.

local PY = h.CLIENT_ENV .. "timeout -s KILL 20 /usr/bin/python3 "

local function py(src, args)
  local file = h.tmpname(".py")
  h.write_file(file, src)
  local out, code = h.run(PY .. file .. " " .. (args or "") .. " 2>&1")
  os.remove(file)
  return out, code
end

-- starts spec/helpers_app.lua; the port comes on its stderr
local function start_app()
  local p = h.start_lua("spec/helpers_app.lua", 170)
  assert(p:wait_log("PORT ", 10), "helpers_app did not start: " .. p:log())
  p.port = tonumber(p:log():match("PORT (%d+)"))
  return p
end

local function get(port, target, headers)
  return assert(h.raw_request(port, h.req("GET", target, headers)))
end

local function post(port, target, headers, body)
  return assert(h.raw_request(port, h.req("POST", target, headers, body)))
end

describe("request helpers", function()
  local app
  setup(function() app = start_app() end)
  teardown(function() if app then app:stop() end end)

  describe("req:query_params()", function()
    it("decodes names and values, + as space, repeated names as arrays", function()
      local out, code = h.curl(("'http://127.0.0.1:%d/query?a=1&a=2&b=x+y%%21&c&=e&%%E2%%82%%AC=%%C3%%BC&&a=3'"):format(app.port))
      assert.equal(0, code, out)
      assert.same({ a = { "1", "2", "3" }, b = "x y!", c = "", [""] = "e", ["€"] = "ü" }, cjson.decode(out))
    end)

    it("reads what Python's requests encodes", function()
      local out, code = py(([[
import requests, json
r = requests.get("http://127.0.0.1:%d/query", params={"tag": ["x", "y z"], "q": "a&b=c/d", "e": "é+"})
print(r.status_code, json.dumps(r.json(), sort_keys=True, ensure_ascii=False))
]]):format(app.port))
      assert.equal(0, code, out)
      assert.equal('200 {"e": "é+", "q": "a&b=c/d", "tag": ["x", "y z"]}\n', out)
    end)

    it("is an empty table without a query", function()
      local res = get(app.port, "/query")
      assert.equal(200, res.status)
      assert.equal("{}", res.body)
    end)

    it("answers 400 through assert for an invalid percent-escape", function()
      for _, t in ipairs { "/query?a=%zz", "/query?a=%4", "/query?%=1", "/query?a=b%" } do
        local res = get(app.port, t)
        assert.equal(400, res.status, t)
      end
      -- the client's mistake is not reported as a server error
      assert.falsy(app:log():find("on_error", 1, true), app:log())
    end)
  end)

  describe("req:path_decoded()", function()
    it("decodes escapes and keeps %2F by default", function()
      assert.equal("/path/a b%2Fc/café", get(app.port, "/path/a%20b%2fc/caf%C3%A9").body)
      assert.equal("/path/plain", get(app.port, "/path/plain").body)
      assert.equal("/path/a+b", get(app.port, "/path/a+b").body)
    end)

    it("decodes or refuses %2F when asked", function()
      assert.equal("/path/a/b", get(app.port, "/path/a%2Fb?mode=decode").body)
      local res = get(app.port, "/path/a%2Fb?mode=reject")
      assert.equal(400, res.status)
      assert.matches("encoded /", res.body)
    end)

    it("returns nil, err for an invalid escape or an encoded NUL", function()
      for _, t in ipairs { "/path/a%zzb", "/path/a%2", "/path/a%00b" } do
        local res = get(app.port, t)
        assert.equal(400, res.status, t)
        assert.matches("^error: ", res.body)
      end
    end)
  end)

  describe("req:form()", function()
    it("reads a form curl sends", function()
      local out, code = h.curl(("--data-urlencode 'name=Jo Smith' --data-urlencode 'note=a&b=c' -d 'x=1&x=2' http://127.0.0.1:%d/form"):format(app.port))
      assert.equal(0, code, out)
      assert.same({ name = "Jo Smith", note = "a&b=c", x = { "1", "2" } }, cjson.decode(out))
    end)

    it("reads a form Python's requests sends", function()
      local out, code = py(([[
import requests, json
r = requests.post("http://127.0.0.1:%d/form", data={"city": "Zürich", "list": ["1", "2"]})
print(r.status_code, json.dumps(r.json(), sort_keys=True, ensure_ascii=False))
]]):format(app.port))
      assert.equal(0, code, out)
      assert.equal('200 {"city": "Zürich", "list": ["1", "2"]}\n', out)
    end)

    it("returns nil, err, kind with status 415 for another content-type", function()
      local res = post(app.port, "/form/pack", { ["content-type"] = "application/json" }, "{}")
      local r = cjson.decode(res.body)
      assert.same({ n = 3, first = "nil", kind = "parse", err_kind = "parse", status = 415,
        what = "content_type", message = r.message }, r)
      assert.matches("application/x%-www%-form%-urlencoded", r.message)
      assert.equal(415, post(app.port, "/form", { ["content-type"] = "text/plain" }, "a=1").status)
    end)

    it("answers 400 for a bad escape and 413 over max", function()
      local ct = { ["content-type"] = "application/x-www-form-urlencoded" }
      assert.equal(400, post(app.port, "/form", ct, "a=%GG").status)
      assert.equal(413, post(app.port, "/form?max=10", ct, "a=" .. string.rep("b", 100)).status)
      assert.equal(200, post(app.port, "/form?max=10", ct, "a=bb").status)
    end)
  end)

  describe("req:json() and lhyper.json()", function()
    it("round-trips a JSON body from curl", function()
      local out, code = h.curl(("-i -H 'content-type: application/json' -d '{\"a\":[1,2.5,\"x/y\"],\"b\":{\"c\":true}}' http://127.0.0.1:%d/json"):format(app.port))
      assert.equal(0, code, out)
      assert.matches("^HTTP/1.1 201", out)
      assert.matches("\r\ncontent%-type: application/json\r\n", out)
      assert.matches("\r\nx%-lua%-type: table\r\n", out)
      local body = out:match("\r\n\r\n(.*)$")
      assert.same({ got = { a = { 1, 2.5, "x/y" }, b = { c = true } } }, cjson.decode(body))
      assert.truthy(body:find('"x/y"', 1, true), body) -- "/" is not escaped
    end)

    it("gives whole numbers back as integers", function()
      local res = post(app.port, "/json/types", { ["content-type"] = "application/json" }, '{"i":10,"f":2.5,"big":1e300,"s":"1"}')
      assert.same({ i = "integer", f = "float", big = "float", s = "string" }, cjson.decode(res.body))
    end)

    it("answers Node's fetch, +json types included", function()
      local out, code = h.node(([[
(async () => {
  const r = await fetch("http://127.0.0.1:%d/json", { method: "POST",
    headers: { "content-type": "application/problem+json; charset=utf-8" }, body: JSON.stringify({ n: [1, 2] }) });
  console.log(r.status, r.headers.get("content-type"), JSON.stringify(await r.json()));
})();
]]):format(app.port))
      assert.equal(0, code, out)
      assert.equal('201 application/json {"got":{"n":[1,2]}}\n', out)
    end)

    it("answers 400 for invalid JSON, 415 for another type and 413 over max, through assert", function()
      local ct = { ["content-type"] = "application/json" }
      for _, body in ipairs { "{bad", "", "[1,", "NaN", "[Infinity]", "0x10", string.rep("[", 200) .. string.rep("]", 200) } do
        local res = post(app.port, "/json", ct, body)
        assert.equal(400, res.status, body)
      end
      assert.equal(415, post(app.port, "/json", { ["content-type"] = "text/plain" }, "{}").status)
      assert.equal(415, post(app.port, "/json", {}, "{}").status)
      assert.equal(413, post(app.port, "/json?max=5", ct, '{"a":"long"}').status)
      assert.falsy(app:log():find("on_error", 1, true), app:log())
    end)

    it("answers 400 for a number too large for a double, which no JSON answer could hold", function()
      -- lua-cjson reads 1e400 as inf; echoed back, lhyper.json raised: 500
      local ct = { ["content-type"] = "application/json" }
      for _, body in ipairs { "1e400", "[1, -1e400]", '{"a":{"b":[2e308]}}' } do
        local res = post(app.port, "/json", ct, body)
        assert.equal(400, res.status, body)
      end
      local res = post(app.port, "/json", ct, "[1.7976931348623157e308, -4.9e-324]")
      assert.equal(201, res.status, res.body)
    end)

    it("keeps the connection after a 400 for a body it read whole", function()
      local sock, r = h.connect(app.port)
      sock:send(h.req("POST", "/json", { ["content-type"] = "application/json" }, "{bad"))
      local res = assert(r:final_response())
      assert.equal(400, res.status)
      assert.falsy(res.headers.get("connection"))
      sock:send(h.req("GET", "/query?a=1"))
      res = assert(r:final_response())
      assert.equal(200, res.status)
      sock:close()
    end)
  end)

  describe("over one keep-alive connection of Python's http.client", function()
    it("answers a form, bad JSON and good JSON in turn", function()
      local out, code = py(([[
import http.client, json, urllib.parse
c = http.client.HTTPConnection("127.0.0.1", %d, timeout=10)
c.request("POST", "/form", urllib.parse.urlencode({"a": "1 2", "b": "ä"}), {"content-type": "application/x-www-form-urlencoded"})
r = c.getresponse(); print(r.status, json.dumps(json.loads(r.read()), sort_keys=True, ensure_ascii=False))
c.request("POST", "/json", "[1,", {"content-type": "application/json"})
r = c.getresponse(); r.read(); print(r.status)
c.request("POST", "/json", json.dumps({"k": [True, None]}), {"content-type": "application/json"})
r = c.getresponse(); print(r.status, r.read().decode())
]]):format(app.port))
      assert.equal(0, code, out)
      assert.equal("200 {\"a\": \"1 2\", \"b\": \"ä\"}\n400\n201 {\"got\":{\"k\":[true,null]}}\n", out)
    end)
  end)

  describe("req:read_all() under assert", function()
    it("answers 413 when the body is over max (the error's status)", function()
      local res = post(app.port, "/readall?max=10", {}, string.rep("x", 50))
      assert.equal(413, res.status)
      assert.equal("close", res.headers.get("connection"))
      assert.equal(200, post(app.port, "/readall?max=10", {}, "short").status)
    end)
  end)

  describe("read_all with a bad max", function()
    it("raises naming the caller's line: req, res and multipart part", function()
      local out, code = h.lua([[
local lhyper = require "lhyper"
local function line(f)
  local ok, err = pcall(f)
  local file, n = tostring(err):match("^([^:]*):(%d+): bad argument")
  return ok and "accepted" or (file == arg[0] and n or "elsewhere: " .. tostring(err))
end
local srv = assert(lhyper.server { port = 0, on_error = false, handler = function(req)
  local a = line(function() local x = req:read_all(-1) return x end) -- 8
  local b = "no part"
  for part in assert(req:multipart()) do
    b = line(function() local x = part:read_all("big") return x end) -- 11
  end
  return 200, nil, a .. "," .. b
end })
lhyper.spawn(function()
  local res = assert(lhyper.request { method = "POST", url = ("http://127.0.0.1:%d/"):format(srv.port),
    headers = { ["content-type"] = "multipart/form-data; boundary=b" },
    body = '--b\r\ncontent-disposition: form-data; name="f"\r\n\r\nv\r\n--b--\r\n' })
  local c = line(function() local x = res:read_all(-5) return x end) -- 19
  print(res:read_all() .. "," .. c)
  srv:close()
end)
lhyper.run()
]], 20)
      assert.equal(0, code, out)
      assert.equal("8,11,19\n", out)
    end)
  end)

  describe("cookies", function()
    it("reads the Cookie field curl sends", function()
      local out, code = h.curl(("-b 'sid=s1; theme=\"dark\"; empty=; sid=second; junk' http://127.0.0.1:%d/cookies"):format(app.port))
      assert.equal(0, code, out)
      assert.same({ all = { sid = "s1", theme = "dark", empty = "" }, sid = "s1" }, cjson.decode(out))
    end)

    it("is empty without a Cookie field", function()
      assert.same({ all = {}, sid = "none" }, cjson.decode(get(app.port, "/cookies").body))
    end)

    it("builds Set-Cookie values a client's cookie jar takes", function()
      local out, code = py(([[
import requests, http.cookies
s = requests.Session()
r = s.get("http://127.0.0.1:%d/setcookie")
print(r.headers["set-cookie"])
c = {k.name: (k.value, k.path, k.has_nonstandard_attr("HttpOnly"), k.expires) for k in s.cookies}
print(sorted(c.items()))
r = s.get("http://127.0.0.1:%d/cookies")
print(r.json()["sid"])
]]):format(app.port, app.port))
      assert.equal(0, code, out)
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.equal("sid=abc123; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax, theme=dark; Expires=Fri, 01 Jan 2100 00:00:00 GMT", lines[1])
      assert.equal("[('sid', ('abc123', '/', True, " .. lines[2]:match("'/', True, (%d+)%)") .. ")), ('theme', ('dark', '/', False, 4102444800))]", lines[2])
      assert.equal("abc123", lines[3])
    end)

    it("refuses invalid names, values and attributes", function()
      local out, code = h.lua([[
local lhyper = require "lhyper"
local bad = {
  { "", "v" }, { "a b", "v" }, { "a;b", "v" }, { "a", "v;x" }, { "a", "v x" }, { "a", 'v"x' },
  { "a", "v\r\nset-cookie: x=1" }, { "a", "v", { same_site = "sometimes" } },
  { "a", "v", { same_site = "None" } }, { "a", "v", { max_age = 1.5 } },
  { "a", "v", { path = "/x;y" } }, { "a", "v", { domain = "" } }, { "a", "v", { colour = 1 } },
  { "__Host-a", "v", { secure = true } }, { "__Secure-a", "v" }, { "a", {} },
}
local accepted = {}
for i, b in ipairs(bad) do
  if pcall(lhyper.cookie, b[1], b[2], b[3]) then accepted[#accepted + 1] = i end
end
print("accepted: " .. table.concat(accepted, ","))
print(lhyper.cookie("a", '"quoted"'), lhyper.cookie("n", 42))
print(lhyper.cookie("__Host-id", "1", { secure = true, path = "/", same_site = "none" }))
print(lhyper.cookie("gone", "", { max_age = 0, expires = 0 }))
]])
      assert.equal(0, code, out)
      assert.equal("accepted: \n"
        .. 'a="quoted"\tn=42\n'
        .. "__Host-id=1; Path=/; Secure; SameSite=None\n"
        .. "gone=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT\n", out)
    end)
  end)
end)
