-- The WebSocket conformance client (spec/wsconf.py: the Autobahn testsuite's
-- case categories 1-7, 9, 10, 12, 13, rebuilt from their descriptions) against
-- spec/app.lua's /ws/echo. One test per case; each must be OK (not NON-STRICT,
-- not FAILED). Categories 9, 12 and 13 run smaller here; `make test-ws-full`
-- runs them at full size.
local h = require "helper"

local PY = "/usr/bin/python3"

local function wsconf(args, limit)
  return h.run(string.format("%stimeout -s KILL %d %s %s/spec/wsconf.py %s 2>&1",
    h.CLIENT_ENV, limit, PY, h.shell_quote(h.ROOT), args))
end

-- path: the app's route; the normal pass also runs every case against a
-- detached ws's callback (/ws/detached), whose frames take the same paths
-- under the sanitizers in websocket_detach_spec
local function conformance(title, path)
  describe(title, function()
    local list = wsconf("--list", 20)
    local srv, results, out
    setup(function()
      srv = h.start_server()
      out = wsconf("--port " .. srv.port .. " --path " .. path, 600)
      results = {}
      for line in out:gmatch("[^\n]+") do
        local id, verdict = line:match("^([%d.]+) (.*)$")
        if id then results[id] = verdict end
      end
    end)
    teardown(function()
      if srv then srv:stop() end
    end)

    local n = 0
    for line in list:gmatch("[^\n]+") do
      local id, desc = line:match("^([%d.]+) (.*)$")
      n = n + 1
      it(id .. " " .. desc, function()
        local v = results[id]
        assert(v, "case " .. id .. " did not run:\n" .. out:sub(-2000))
        assert.equal("OK", v:match("^(%S+)"), v)
      end)
    end

    it("lists every category", function()
      assert.is_true(n > 400, list)
      for _, cat in ipairs { "1", "2", "3", "4", "5", "6", "7", "9", "10", "12", "13" } do
        assert.truthy(list:find("\n" .. cat .. "%.") or list:find("^" .. cat .. "%."), "category " .. cat)
      end
    end)
  end)
end

conformance("WebSocket conformance (spec/wsconf.py) #offpath", "/ws/echo")
conformance("WebSocket conformance of a detached ws (spec/wsconf.py) #offpath #nosan", "/ws/detached")
