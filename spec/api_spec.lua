local h = require "helper"

-- Runs `body` in a fresh lua5.4 with lhyper loaded; the snippet prints its verdict.
local function lua(body)
  local out, code = h.lua('local lhyper = require "lhyper"\n' .. body)
  return out, code
end

describe("lhyper module API", function()
  it("loads and exposes the documented functions", function()
    local out, code = lua([[
for _, name in ipairs({ "server", "run", "stop", "sleep", "spawn", "now" }) do
  assert(type(lhyper[name]) == "function", name)
end
print("ok")
]])
    assert.equal(0, code, out)
    assert.equal("ok\n", out)
  end)

  it("reports the bound port for port 0", function()
    local out, code = lua([[
local s = assert(lhyper.server{ host = "127.0.0.1", port = 0, handler = function() end })
assert(math.type(s.port) == "integer" and s.port > 0, tostring(s.port))
print("ok")
]])
    assert.equal(0, code, out)
    assert.equal("ok\n", out)
  end)

  it("raises on a server without a handler", function()
    local out, code = lua([[
local ok = pcall(lhyper.server, { host = "127.0.0.1", port = 0 })
print(ok and "no error" or "raised")
]])
    assert.equal(0, code, out)
    assert.equal("raised\n", out)
  end)

  it("raises on an option of the wrong type", function()
    local out, code = lua([[
local f = function() end
local bad = {
  { handler = 42 },
  { handler = f, max_headers = "many" },
  { handler = f, max_buf_size = -1 },
  { handler = f, idle_timeout = "soon" },
  { handler = f, keep_alive = "yes" },
}
local accepted = {}
for i, o in ipairs(bad) do
  o.host, o.port = "127.0.0.1", 0
  if pcall(lhyper.server, o) then accepted[#accepted + 1] = i end
end
print("accepted: " .. table.concat(accepted, ","))
]])
    assert.equal(0, code, out)
    assert.equal("accepted: \n", out)
  end)

  it("returns nil, err, kind when the port is taken", function()
    local out, code = lua([[
local s = assert(lhyper.server{ host = "127.0.0.1", port = 0, handler = function() end })
local s2, err, kind = lhyper.server{ host = "127.0.0.1", port = s.port, handler = function() end }
print(s2 == nil, err ~= nil, type(kind))
]])
    assert.equal(0, code, out)
    assert.equal("true\ttrue\tstring\n", out)
  end)

  it("raises when sleep is called outside a handler or task", function()
    local out, code = lua([[
print(pcall(lhyper.sleep, 0.01) and "no error" or "raised")
]])
    assert.equal(0, code, out)
    assert.equal("raised\n", out)
  end)

  it("returns from run when stop is called in a handler", function()
    local out, code = lua([[
local s = assert(lhyper.server{ host = "127.0.0.1", port = 0, handler = function()
  lhyper.stop()
  return 200, nil, "bye"
end })
local port = s.port
os.execute(string.format("(sleep 0.2; env -u LD_PRELOAD curl -s -m 5 http://127.0.0.1:%d/) >/dev/null 2>&1 &", port))
lhyper.run()
print("returned")
]])
    assert.equal(0, code, out)
    assert.equal("returned\n", out)
  end)

  it("core.methods adds Lua methods to a C object type and never replaces one", function()
    local out, code = lua([[
local core = require "lhyper.core"
local res = {}
res[#res + 1] = pcall(core.methods, "req", { body = function() end }) and "replaced" or "kept"
res[#res + 1] = pcall(core.methods, "nosuch", { f = function() end }) and "unknown accepted" or "unknown refused"
res[#res + 1] = pcall(core.methods, "req", { x = 1 }) and "value accepted" or "value refused"
core.methods("req", { hello_ = function(req) return "hi " .. req.method end })
local s = assert(lhyper.server{ host = "127.0.0.1", port = 0, handler = function(req)
  return 200, nil, req:hello_() .. " " .. assert(req:read_all())
end })
lhyper.spawn(function()
  local r = assert(lhyper.request{ url = "http://127.0.0.1:" .. s.port .. "/", method = "POST", body = "x" })
  res[#res + 1] = r:read_all()
  s:close()
end)
lhyper.run()
print(table.concat(res, ","))
]])
    assert.equal(0, code, out)
    assert.equal("kept,unknown refused,value refused,hi POST x\n", out)
  end)

  it("reads each shortcut switch once, at load, from its LHYPER_* variable (0: off)", function()
    local vars = {
      fast_head = "LHYPER_FAST_HEAD", kept_heads = "LHYPER_KEPT_HEADS", kept_values = "LHYPER_KEPT_VALUES",
      next_msg = "LHYPER_NEXT_MSG",
      doze = "LHYPER_DOZE", fast_close = "LHYPER_FAST_CLOSE", alloc_cache = "LHYPER_ALLOC_CACHE",
      router_c = "LHYPER_ROUTER_C", tls_one_read = "LHYPER_TLS_ONE_READ",
      tls_keep_buffers = "LHYPER_TLS_KEEP_BUFFERS", fast_layers = "LHYPER_FAST_LAYERS",
    }
    local file = h.tmpname(".lua")
    h.write_file(file, [[
local core = require "lhyper.core"
local names = {}
for k, v in pairs(core.tuning()) do if not v then names[#names + 1] = k end end
table.sort(names)
print("off: " .. table.concat(names, ","))
]])
    for name, var in pairs(vars) do
      local env = {}
      for _, v in pairs(vars) do env[#env + 1] = v .. "=" .. (v == var and "0" or "1") end
      local out, code = h.run(string.format("cd %s && %stimeout -s KILL 10 %senv LUA_PATH=%s LUA_CPATH=%s %s %s %s 2>&1",
        h.shell_quote(h.ROOT), h.CLIENT_ENV, h.PRELOAD_ENV, h.shell_quote(h.LUA_PATH),
        h.shell_quote(h.LUA_CPATH), table.concat(env, " "), h.LUA, file))
      assert.equal(0, code, out)
      assert.equal("off: " .. name .. "\n", out)
    end
    os.remove(file)
  end)
end)

