local h = require "helper"

-- Issue 3: every error a Lua caller sees is an object with a kind, a message,
-- predicates and a readable tostring; ordinary failures return nil, err, kind.

describe("lhyper.error objects", function()
  it("carry kind, message and what, with a readable tostring", function()
    local out, code = h.lua([[
      local lhyper = require "lhyper"
      local e = lhyper.error("timeout", "took too long", "head")
      print(e.kind, e.message, e.what, tostring(e):find("took too long", 1, true) ~= nil)
      local d = lhyper.error("closed")
      print(d.kind, d.message, tostring(d.what), tostring(d):find("closed", 1, true) ~= nil)
      print(getmetatable(e) == getmetatable(d), type(tostring(e)), tostring(e):find("table:", 1, true))
    ]])
    assert.equal(0, code, out)
    assert.equal("timeout\ttook too long\thead\ttrue\n"
      .. "closed\tclosed\tnil\ttrue\n"
      .. "true\tstring\tnil\n", out)
  end)

  it("answer each predicate for exactly the kinds it names", function()
    local out, code = h.lua([[
      local lhyper = require "lhyper"
      local preds = { "is_parse", "is_incomplete", "is_timeout", "is_closed", "is_canceled", "is_io", "is_user" }
      local kinds = { "parse", "incomplete", "unexpected_message", "header_timeout", "timeout",
        "user_body", "user_service", "io", "canceled", "closed" }
      for _, k in ipairs(kinds) do
        local e = lhyper.error(k, "m")
        local yes = {}
        for _, p in ipairs(preds) do
          local v = e[p](e)
          assert(type(v) == "boolean", p .. " gave a " .. type(v))
          if v then yes[#yes + 1] = p end
        end
        print(k .. "=" .. table.concat(yes, ","))
      end
    ]])
    assert.equal(0, code, out)
    assert.equal(table.concat({
      "parse=is_parse", "incomplete=is_incomplete", "unexpected_message=", "header_timeout=is_timeout",
      "timeout=is_timeout", "user_body=is_user", "user_service=is_user", "io=is_io",
      "canceled=is_canceled", "closed=is_closed", "" }, "\n"), out)
  end)

  it("come back as nil, err, \"io\" from lhyper.server on an address in use", function()
    local out, code = h.lua([[
      local lhyper = require "lhyper"
      local first = assert(lhyper.server { host = "127.0.0.1", port = 0, handler = function() end })
      local r = table.pack(lhyper.server { host = "127.0.0.1", port = first.port, handler = function() end })
      local err = r[2]
      print(r.n, tostring(r[1]), r[3], err.kind, tostring(err:is_io()), tostring(err:is_closed()))
      print(type(err.message), tostring(err):find(err.message, 1, true) ~= nil, #err.message > 0)
      print("text=" .. tostring(err))
      first:close(0)
      lhyper.run()
    ]])
    assert.equal(0, code, out)
    assert.truthy(out:find("^3\tnil\tio\tio\ttrue\tfalse\nstring\ttrue\ttrue\n"), out)
    local text = out:match("text=([^\n]*)")
    assert.truthy(text:lower():find("in use", 1, true), text)
  end)
end)

describe("req:read_all over its limit", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("returns exactly nil, err, \"user_body\" with err.message \"body too large\"", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/readall/pack?max=10", nil, string.rep("b", 50))))
    assert.equal(200, res.status)
    local t = h.parse_info(res.body)
    assert.equal("3", t.n)
    assert.equal("nil", t.type1)
    assert.equal("table", t.type2)
    assert.equal("string", t.type3)
    assert.equal("user_body", t.kind)
    assert.equal("user_body", t.third)
    assert.equal("body too large", t.message)
    assert.truthy(t.tostring:find("body too large", 1, true), t.tostring)
    assert.equal("true", t.is_user)
  end)

  it("returns the body alone under the limit", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/readall/pack?max=100", nil, "small")))
    local t = h.parse_info(res.body)
    assert.equal("1", t.n)
    assert.equal("string", t.type1)
  end)
end)

describe("on_error(err, info)", function()
  local srv
  setup(function() srv = h.start_server({ record_errors = true }) end)
  teardown(function() if srv then srv:stop() end end)

  local function infos()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/errors/info")))
    local list = {}
    for line in res.body:gmatch("[^\n]+") do
      local kind, method, target, is_user, text = line:match("^([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$")
      list[#list + 1] = { kind = kind, method = method, target = target, is_user = is_user, text = text }
    end
    return list
  end

  local function wait_for(pred)
    local deadline = h.now() + 2
    repeat
      for _, e in ipairs(infos()) do if pred(e) then return e end end
      h.sleep(0.05)
    until h.now() > deadline
  end

  it("gets an error object and the request's method and target for a handler error", function()
    assert.equal(500, assert(h.raw_request(srv.port, h.req("GET", "/error?from=spec"))).status)
    local e = wait_for(function(e) return e.target == "/error?from=spec" end)
    assert.truthy(e, "no on_error call for the handler error")
    assert.equal("user_service", e.kind)
    assert.equal("GET", e.method)
    assert.equal("true", e.is_user)
    assert.truthy(e.text:find("handler failed on purpose", 1, true), e.text)
  end)

  it("gets an info table without a request for a malformed request", function()
    assert.equal(400, assert(h.raw_request(srv.port, "BROKEN\r\n\r\n")).status)
    local e = wait_for(function(e) return e.kind == "parse" end)
    assert.truthy(e, "no on_error call for the parse error")
    assert.equal("nil", e.method)
    assert.equal("nil", e.target)
    assert.equal("false", e.is_user)
    assert.truthy(#e.text > 0)
  end)
end)
