local h = require "helper"

-- Issue 3: lhyper.on_signal(name, fn) -> watcher (libuv signal handles).
-- Each case runs in its own Lua process, which sends signals to itself.

-- Common prelude: lhyper, the process id, and kill(sig) from a task.
local PRELUDE = [[
local lhyper = require "lhyper"
local PID = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
local function kill(sig) os.execute("kill -" .. sig .. " " .. PID) end
local function say(...) io.stdout:write(table.concat({ ... }, " "), "\n"); io.stdout:flush() end
]]

local function run(src)
  return h.lua(PRELUDE .. src, 10)
end

describe("lhyper.on_signal", function()
  it("runs fn as a task with the signal number, so it may sleep and close a server", function()
    local out, code = run([[
      local server = assert(lhyper.server { host = "127.0.0.1", port = 0,
        handler = function() return 200, nil, "hi" end })
      local watcher = lhyper.on_signal("SIGUSR1", function(signum, ...)
        say("signal", math.type(signum), signum, select("#", ...))
        local t0 = lhyper.now()
        lhyper.sleep(0.05)
        say("slept", tostring(lhyper.now() - t0 >= 0.04))
        server:close(1)
        say("closed")
      end)
      lhyper.spawn(function() lhyper.sleep(0.02); kill("USR1") end)
      say("run", tostring(lhyper.run()))
      watcher:stop()
      say("end")
    ]])
    assert.equal(0, code, out)
    local signum = assert(tonumber((h.python("import signal; print(int(signal.SIGUSR1))"))))
    assert.truthy(out:find("signal integer " .. signum .. " 0\n", 1, true), out)
    assert.truthy(out:find("slept true\nclosed\nrun true\nend\n", 1, true), out)
  end)

  it("does not keep lhyper.run() from returning, alone or next to a closed server", function()
    local out, code = run([[
      local watcher = lhyper.on_signal("SIGUSR1", function() say("fired") end)
      say("run", tostring(lhyper.run()))
      local server = assert(lhyper.server { host = "127.0.0.1", port = 0,
        handler = function() return 200 end })
      lhyper.spawn(function() lhyper.sleep(0.02); server:close(1) end)
      say("run", tostring(lhyper.run()))
      say("end") -- the watcher is left live: the process still exits cleanly
    ]])
    assert.equal(0, code, out)
    assert.equal("run true\nrun true\nend\n", out)
  end)

  it("stops watching after watcher:stop(), also from inside fn, and stop is idempotent", function()
    local out, code = run([[
      local a, b = 0, 0
      local wa
      wa = lhyper.on_signal("SIGUSR1", function() a = a + 1; wa:stop(); wa:stop() end)
      local wb = lhyper.on_signal("SIGUSR1", function() b = b + 1 end)
      -- each delivery is awaited (up to 5 s: a loaded machine is slow to deliver)
      local function until_b(n)
        local t = lhyper.now() + 5
        while b < n and lhyper.now() < t do lhyper.sleep(0.01) end
      end
      lhyper.spawn(function()
        kill("USR1")
        until_b(1)
        kill("USR1")
        until_b(2)
        lhyper.sleep(0.1) -- time for a second delivery to wa, which must not come
        say("counts", a, b)
        wb:stop()
      end)
      lhyper.run()
      wb:stop()
      say("end")
    ]])
    assert.equal(0, code, out)
    assert.equal("counts 1 2\nend\n", out)
  end)

  it("lets several signals each reach their own watcher", function()
    local out, code = run([[
      local seen = {}
      local w1 = lhyper.on_signal("SIGUSR1", function(n) seen[#seen + 1] = "usr1" end)
      local w2 = lhyper.on_signal("SIGUSR2", function(n) seen[#seen + 1] = "usr2" end)
      local w3 = lhyper.on_signal("SIGHUP", function(n) seen[#seen + 1] = "hup" end)
      lhyper.spawn(function()
        kill("USR2"); lhyper.sleep(0.1)
        kill("HUP"); lhyper.sleep(0.1)
        kill("USR1"); lhyper.sleep(0.1)
        w1:stop(); w2:stop(); w3:stop()
      end)
      lhyper.run()
      say(table.concat(seen, ","))
    ]])
    assert.equal(0, code, out)
    assert.equal("usr2,hup,usr1\n", out)
  end)

  it("keeps the process running when fn raises", function()
    local out, code = run([[
      local n = 0
      local w = lhyper.on_signal("SIGUSR1", function()
        n = n + 1
        error("signal handler failed on purpose")
      end)
      lhyper.spawn(function()
        kill("USR1"); lhyper.sleep(0.1)
        kill("USR1"); lhyper.sleep(0.1)
        w:stop()
      end)
      say("run", tostring(lhyper.run()))
      say("calls", n)
    ]])
    assert.equal(0, code, out)
    assert.truthy(out:find("signal handler failed on purpose", 1, true), out)
    assert.truthy(out:find("run true\ncalls 2\n", 1, true), out)
  end)

  it("raises on an unknown signal name or a missing function", function()
    local out, code = run([[
      say(tostring(pcall(lhyper.on_signal, "SIGFOO", function() end)))
      say(tostring(pcall(lhyper.on_signal, "SIGUSR1")))
      say(tostring(pcall(lhyper.on_signal, "SIGUSR1", 42)))
    ]])
    assert.equal(0, code, out)
    assert.equal("false\nfalse\nfalse\n", out)
  end)
end)
