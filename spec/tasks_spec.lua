local h = require "helper"

-- Tasks, timeouts, periodic tasks, channels and conditions. Each case is a
-- small program run by lua5.4 in a process of its own (the loop runs until
-- nothing is left); it prints what it saw, one "key=value" a line.

local PRELUDE = [[
local lhyper = require "lhyper"
local function say(k, ...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  io.write(k, "=", table.concat(t, ",", 1, t.n), "\n")
end
local function main(fn)
  lhyper.spawn(function()
    local ok, err = xpcall(fn, debug.traceback)
    if not ok then say("ERROR", err) end
  end)
  say("run", lhyper.run())
end
]]

-- runs the program; returns its output as a table of key -> value and the
-- whole text
local function run(src, limit)
  local out, code = h.lua(PRELUDE .. src, limit or 20)
  local kv = {}
  for k, v in out:gmatch("([%w_]+)=([^\n]*)") do kv[k] = v end
  assert.is_nil(kv.ERROR, out)
  assert.equal(0, code, out)
  return kv, out
end

describe("lhyper.spawn", function()
  it("returns a task whose join gives the function's results, true when there are none", function()
    local kv = run [[
      main(function()
        local t = lhyper.spawn(function(a, b) lhyper.sleep(0.01) return a + b, "two", nil end, 40, 2)
        say("before", t.done, t.status)
        say("join", t:join())
        say("after", t.done, t.status)
        say("again", t:join())
        say("empty", lhyper.spawn(function() end):join())
      end)
    ]]
    assert.equal("false,running", kv.before)
    assert.equal("42,two,nil", kv.join)
    assert.equal("true,done", kv.after)
    assert.equal("42,two,nil", kv.again)
    assert.equal("true", kv.empty)
    assert.equal("true", kv.run)
  end)

  it("starts the task on the next loop iteration, not inside spawn", function()
    local kv = run [[
      main(function()
        local ran = false
        local t = lhyper.spawn(function() ran = true end)
        say("at_once", ran)
        t:join()
        say("later", ran)
      end)
    ]]
    assert.equal("false", kv.at_once)
    assert.equal("true", kv.later)
  end)

  it("gives a joining task the error a task raised, intact, and does not log it", function()
    local kv, out = run [[
      main(function()
        local t = lhyper.spawn(function() error({ code = 42 }) end)
        local r, err, kind = t:join()
        say("table", r, type(err), err.code, kind, t.status)
        local s = lhyper.spawn(function() error("plain") end)
        local r2, err2, kind2 = s:join()
        say("string", r2, err2, kind2)
        local e = lhyper.spawn(function() error(lhyper.error("timeout", "upstream slow")) end)
        local _, err3, kind3 = e:join()
        say("object", err3.kind, err3.message, kind3)
      end)
    ]]
    assert.equal("nil,table,42,user_service,failed", kv.table)
    assert.truthy(kv.string:find("^nil,.*: plain,user_service$"), kv.string)
    assert.equal("timeout,upstream slow,timeout", kv.object)
    assert.is_nil(out:find("task failed", 1, true), out)
  end)

  it("logs the error of a task nobody joins, with its traceback", function()
    local _, out = run [[
      local function deep() error("nobody joins me") end
      main(function()
        lhyper.spawn(function() deep() end)
        lhyper.sleep(0.05)
      end)
    ]]
    assert.truthy(out:find("lhyper: task failed: .*nobody joins me"), out)
    assert.truthy(out:find("stack traceback:", 1, true), out)
    assert.truthy(out:find("in upvalue 'deep'", 1, true) or out:find("in local 'deep'", 1, true)
      or out:find("'deep'", 1, true), out)
  end)

  it("cancels a task where it waits, running its <close> variables; join gives canceled", function()
    local kv = run [[
      main(function()
        local closed = false
        local t = lhyper.spawn(function()
          local g <close> = setmetatable({}, { __close = function() closed = true end })
          lhyper.sleep(30)
          say("never", true)
        end)
        lhyper.sleep(0.02)
        t:cancel()
        local r, err, kind = t:join()
        say("cancel", closed, t.status, r, kind, err:is_canceled())
        t:cancel() -- again: nothing
        local pending = lhyper.spawn(function() say("never2", true) end)
        pending:cancel() -- before it ever ran
        say("pending", pending.status)
      end)
    ]]
    assert.equal("true,canceled,nil,canceled,true", kv.cancel)
    assert.equal("canceled", kv.pending)
    assert.is_nil(kv.never)
    assert.is_nil(kv.never2)
  end)

  it("ends a task that cancels itself at once", function()
    local kv = run [[
      local t
      main(function()
        t = lhyper.spawn(function()
          local g <close> = setmetatable({}, { __close = function() say("closed", true) end })
          t:cancel()
          say("never", true)
        end)
        say("join", select(3, t:join()))
      end)
    ]]
    assert.equal("true", kv.closed)
    assert.equal("canceled", kv.join)
    assert.is_nil(kv.never)
  end)

  it("cancels a task's children when it ends or is cancelled, but not a detached one", function()
    local kv = run [[
      main(function()
        local child, detached
        local parent = lhyper.spawn(function()
          child = lhyper.spawn(function() lhyper.sleep(30) end)
          detached = lhyper.spawn(function() lhyper.sleep(0.05) return "free" end):detach()
          lhyper.sleep(0.01)
          return "parent done"
        end)
        say("parent", parent:join())
        say("child", child.status)
        say("detached", detached.status, detached:join())

        local grandchild
        local outer = lhyper.spawn(function()
          lhyper.spawn(function()
            grandchild = lhyper.spawn(function() lhyper.sleep(30) end)
            lhyper.sleep(30)
          end)
          lhyper.sleep(30)
        end)
        lhyper.sleep(0.02)
        outer:cancel()
        say("grandchild", grandchild.status)
      end)
    ]]
    assert.equal("parent done", kv.parent)
    assert.equal("canceled", kv.child)
    assert.equal("running,free", kv.detached)
    assert.equal("canceled", kv.grandchild)
  end)

  it("waits in join with a timeout", function()
    local kv = run [[
      main(function()
        local t = lhyper.spawn(function() lhyper.sleep(30) end)
        local r, err, kind = t:join(0.02)
        say("join", r, kind, t.status)
        say("zero", select(3, t:join(0)))
        t:cancel()
      end)
    ]]
    assert.equal("nil,timeout,running", kv.join)
    assert.equal("timeout", kv.zero)
  end)

  it("refuses misuse", function()
    local kv = run [[
      local t = lhyper.spawn(function() end)
      say("outside", (pcall(t.join, t)))
      local self
      self = lhyper.spawn(function() say("self", pcall(self.join, self)) end)
      say("spawn_arg", (pcall(lhyper.spawn, 42)))
      say("run", lhyper.run())
    ]]
    assert.equal("false", kv.outside)
    assert.truthy(kv.self:find("^false,.*cannot join itself"), kv.self)
    assert.equal("false", kv.spawn_arg)
  end)
end)

describe("lhyper.timeout", function()
  it("returns the function's results when it ends in time", function()
    local kv = run [[
      main(function()
        say("now", lhyper.timeout(1, function(a) return a * 2, "b" end, 21))
        say("later", lhyper.timeout(1, function(a) lhyper.sleep(0.01) return a end, "x"))
        say("none", lhyper.timeout(1, function() end))
      end)
    ]]
    assert.equal("42,b", kv.now)
    assert.equal("x", kv.later)
    assert.equal("true", kv.none)
  end)

  it("cancels the function on expiry: its <close> variables and children end, and the caller gets nil, err, 'timeout'", function()
    local kv = run [[
      main(function()
        local closed, child = false, nil
        local t0 = lhyper.now()
        local r, err, kind = lhyper.timeout(0.05, function()
          local g <close> = setmetatable({}, { __close = function() closed = true end })
          child = lhyper.spawn(function() lhyper.sleep(30) end)
          lhyper.sleep(30)
        end)
        say("expired", r, kind, err:is_timeout(), closed, child.status)
        say("took", lhyper.now() - t0 < 5)
      end)
    ]]
    assert.equal("nil,timeout,true,true,canceled", kv.expired)
    assert.equal("true", kv.took)
  end)

  it("raises the function's error again, with the function's traceback in a string", function()
    local kv = run [[
      local function inner() error("inner failure") end
      main(function()
        local ok, err = pcall(lhyper.timeout, 1, function() lhyper.sleep(0.01) inner() end)
        say("string", ok, err:match("inner failure") ~= nil, err:find("in upvalue 'inner'", 1, true) ~= nil
          or err:find("'inner'", 1, true) ~= nil)
        local ok2, err2 = pcall(lhyper.timeout, 1, function() error({ code = 7 }) end)
        say("table", ok2, type(err2), err2.code)
      end)
    ]]
    assert.equal("false,true,true", kv.string)
    assert.equal("false,table,7", kv.table)
  end)

  it("hands what the function left open to the caller when it returns in time", function()
    local kv = run [[
      main(function()
        local bg
        local outer = lhyper.spawn(function()
          lhyper.timeout(1, function()
            bg = lhyper.spawn(function() lhyper.sleep(30) end)
          end)
          lhyper.sleep(0.02)
          say("after_return", bg.status)
          lhyper.sleep(30)
        end)
        lhyper.sleep(0.05)
        outer:cancel()
        say("after_caller", bg.status)
      end)
    ]]
    assert.equal("running", kv.after_return)
    assert.equal("canceled", kv.after_caller)
  end)

  it("raises outside a handler or task", function()
    local kv = run [[
      say("outside", (pcall(lhyper.timeout, 1, function() end)))
    ]]
    assert.equal("false", kv.outside)
  end)
end)

describe("lhyper.every", function()
  it("runs a function periodically until cancelled, without keeping lhyper.run() going", function()
    local kv = run [[
      local n, top = 0, 0
      lhyper.every(0.01, function() top = top + 1 end) -- never cancelled
      main(function()
        local t = lhyper.every(0.02, function(a) n = n + a end, 1)
        lhyper.sleep(0.25)
        t:cancel()
        local at = n
        lhyper.sleep(0.1)
        say("runs", n >= 4 and n <= 13, n == at)
      end)
      say("top_ran", top > 0)
    ]]
    assert.equal("true,true", kv.runs)
    assert.equal("true", kv.run)
    assert.equal("true", kv.top_ran)
  end)

  it("skips a run while the previous one is still going", function()
    local kv = run [[
      main(function()
        local running, most, n = 0, 0, 0
        local t = lhyper.every(0.01, function()
          running, n = running + 1, n + 1
          if running > most then most = running end
          lhyper.sleep(0.05)
          running = running - 1
        end)
        lhyper.sleep(0.3)
        t:cancel()
        say("most", most, n < 12)
      end)
    ]]
    assert.equal("1,true", kv.most)
  end)

  it("is stopped with the task that started it", function()
    local kv = run [[
      main(function()
        local n = 0
        lhyper.spawn(function()
          lhyper.every(0.01, function() n = n + 1 end)
          lhyper.sleep(0.1)
        end):join()
        local at = n
        lhyper.sleep(0.1)
        say("stopped", at > 0, n == at)
      end)
    ]]
    assert.equal("true,true", kv.stopped)
  end)
end)

describe("lhyper.channel", function()
  it("passes values in order, makes send wait while full, and ends a for loop once closed", function()
    local kv = run [[
      main(function()
        local ch = lhyper.channel(2)
        say("fields", ch.capacity, #ch, ch.closed)
        local log = {}
        local producer = lhyper.spawn(function()
          for i = 1, 6 do
            assert(ch:send(i))
            log[#log + 1] = "s" .. i
          end
          ch:close()
        end)
        lhyper.sleep(0.02)
        say("full", #ch, table.concat(log, " "))
        local got = {}
        for v in ch do got[#got + 1] = v end
        say("got", table.concat(got, " "), ch.closed)
        local r, err, kind = ch:send(7)
        say("closed_send", r, kind, err:is_closed())
        say("closed_receive", ch:receive())
      end)
    ]]
    assert.equal("2,0,false", kv.fields)
    assert.equal("2,s1 s2", kv.full)
    assert.equal("1 2 3 4 5 6,true", kv.got)
    assert.equal("nil,closed,true", kv.closed_send)
    assert.equal("nil", kv.closed_receive)
  end)

  it("wakes every waiting receiver and sender on close, after what is buffered", function()
    local kv = run [[
      main(function()
        local empty = lhyper.channel(1)
        local results = {}
        for i = 1, 3 do
          lhyper.spawn(function()
            local v = empty:receive()
            results[#results + 1] = tostring(v)
          end)
        end
        local full = lhyper.channel(1)
        full:send("kept")
        local senders = {}
        for i = 1, 2 do
          lhyper.spawn(function()
            local kind = select(3, full:send(i))
            senders[#senders + 1] = kind
          end)
        end
        lhyper.sleep(0.02)
        empty:close()
        full:close()
        lhyper.sleep(0.02)
        say("receivers", table.concat(results, " "))
        say("senders", table.concat(senders, " "))
        say("drain", full:receive(), full:receive())
      end)
    ]]
    assert.equal("nil nil nil", kv.receivers)
    assert.equal("closed closed", kv.senders)
    assert.equal("kept,nil", kv.drain)
  end)

  it("serves waiting senders first come first served, also against newcomers", function()
    local kv = run [[
      main(function()
        local ch = lhyper.channel(1)
        ch:send(0)
        local order = {}
        for i = 1, 4 do
          lhyper.spawn(function() ch:send(i) end)
          lhyper.sleep(0.005)
        end
        local got = {}
        for _ = 1, 5 do
          got[#got + 1] = ch:receive()
          -- a newcomer arriving while others wait must queue behind them
          if #got == 2 then lhyper.spawn(function() ch:send(99) end) end
        end
        got[#got + 1] = ch:receive()
        say("order", table.concat(got, " "))
      end)
    ]]
    assert.equal("0 1 2 3 4 99", kv.order)
  end)

  it("does not lose a turn when a woken task is cancelled before it runs", function()
    local kv = run [[
      main(function()
        local ch = lhyper.channel(1)
        ch:send("full")
        local a = lhyper.spawn(function() ch:send("a") end)
        lhyper.sleep(0.005)
        local b = lhyper.spawn(function() ch:send("b") end)
        lhyper.sleep(0.005)
        say("first", ch:receive()) -- frees the slot: a is woken
        a:cancel()                 -- before it ran: its turn goes to b
        say("second", ch:receive())
        local cond = lhyper.condition()
        local woke = {}
        local x = lhyper.spawn(function() cond:wait() woke[#woke + 1] = "x" end)
        local y = lhyper.spawn(function() cond:wait() woke[#woke + 1] = "y" end)
        lhyper.sleep(0.005)
        cond:signal()
        x:cancel()
        lhyper.sleep(0.01)
        say("cond", table.concat(woke, " "))
      end)
    ]]
    assert.equal("full", kv.first)
    assert.equal("b", kv.second)
    assert.equal("y", kv.cond)
  end)

  it("times out send and receive, and never waits with timeout 0", function()
    local kv = run [[
      main(function()
        local ch = lhyper.channel(1)
        say("empty0", select(3, ch:receive(0)))
        say("empty", select(3, ch:receive(0.01)))
        assert(ch:send("x", 0))
        say("full0", select(3, ch:send("y", 0)))
        say("full", select(3, ch:send("y", 0.01)))
        say("value", ch:receive(0))
      end)
    ]]
    assert.equal("timeout", kv.empty0)
    assert.equal("timeout", kv.empty)
    assert.equal("timeout", kv.full0)
    assert.equal("timeout", kv.full)
    assert.equal("x", kv.value)
  end)

  it("refuses nil values and a bad capacity", function()
    local kv = run [[
      local ch = lhyper.channel(3)
      say("nil", (pcall(ch.send, ch, nil)))
      say("zero", (pcall(lhyper.channel, 0)))
      say("frac", (pcall(lhyper.channel, 1.5)))
      say("default", lhyper.channel().capacity)
      say("wait_outside", (pcall(ch.receive, ch)))
    ]]
    assert.equal("false", kv["nil"])
    assert.equal("false", kv.zero)
    assert.equal("false", kv.frac)
    assert.equal("1", kv.default)
    assert.equal("false", kv.wait_outside)
  end)
end)

describe("lhyper.condition", function()
  it("wakes waiters in arrival order with signal, all with broadcast, and times out a wait", function()
    local kv = run [[
      main(function()
        local cond = lhyper.condition()
        local woke = {}
        for i = 1, 3 do
          lhyper.spawn(function() assert(cond:wait()) woke[#woke + 1] = i end)
          lhyper.sleep(0.002)
        end
        say("waiting", cond.waiting)
        say("signal", cond:signal())
        lhyper.sleep(0.01)
        say("first", table.concat(woke, " "))
        say("broadcast", cond:broadcast())
        lhyper.sleep(0.01)
        say("all", table.concat(woke, " "))
        say("nobody", cond:signal(), cond:broadcast())
        local r, err, kind = cond:wait(0.01)
        say("timeout", r, kind)
      end)
    ]]
    assert.equal("3", kv.waiting)
    assert.equal("true", kv.signal)
    assert.equal("1", kv.first)
    assert.equal("2", kv.broadcast)
    assert.equal("1 2 3", kv.all)
    assert.equal("false,0", kv.nobody)
    assert.equal("nil,timeout", kv.timeout)
  end)

  it("lets lhyper.run() return when tasks only wait on one (nothing else can wake them)", function()
    local kv = run [[
      local cond = lhyper.condition()
      lhyper.spawn(function() cond:wait() say("never", true) end)
      say("run", lhyper.run())
    ]]
    assert.equal("true", kv.run)
    assert.is_nil(kv.never)
  end)
end)

describe("lhyper.defer", function()
  it("runs deferred functions newest first when the task ends, however it ends", function()
    local kv = run [[
      main(function()
        local log = {}
        local function note(s) return function() log[#log + 1] = s end end
        lhyper.spawn(function()
          lhyper.defer(note("a1"))
          lhyper.defer(note("a2"))
        end):join()
        local t = lhyper.spawn(function()
          lhyper.defer(note("b"))
          lhyper.sleep(30)
        end)
        lhyper.sleep(0.01)
        t:cancel()
        lhyper.spawn(function()
          lhyper.defer(note("c"))
          error("fails")
        end):join()
        -- under lhyper.timeout: it runs when the caller ends
        lhyper.spawn(function()
          lhyper.timeout(1, function() lhyper.defer(note("d")) end)
          log[#log + 1] = "after-timeout"
        end):join()
        say("log", table.concat(log, " "))
        say("outside", (pcall(lhyper.defer, function() end)))
      end)
    ]]
    assert.equal("a2 a1 b c after-timeout d", kv.log)
  end)

  it("reports a deferred function that fails, and goes on", function()
    local kv, out = run [[
      main(function()
        lhyper.spawn(function()
          lhyper.defer(function() say("second", true) end)
          lhyper.defer(function() error("deferred boom") end)
        end):join()
      end)
    ]]
    assert.equal("true", kv.second)
    assert.truthy(out:find("deferred boom", 1, true), out)
  end)
end)

-- a time past what libuv's milliseconds hold (math.huge, 1e300) is "never":
-- it used to become 0 ms, so sleeps ended at once and a server with such a
-- timeout re-armed its timer for now, again and again, and hung
describe("times too long for a clock", function()
  it("sleep, timeout and join's timeout take math.huge and 1e300 as never", function()
    local r = run([[
main(function()
  for i, d in ipairs { math.huge, 1e300, 1e17 } do
    local t = lhyper.spawn(function() lhyper.sleep(d) end)
    lhyper.sleep(0.1)
    say("sleeping" .. i, not t.done)
    t:cancel()
    say("timeout" .. i, lhyper.timeout(d, function() lhyper.sleep(0.05) return "in time" end))
    local slow = lhyper.spawn(function() lhyper.sleep(0.1) return "joined" end)
    say("join" .. i, slow:join(d))
  end
end)
]])
    for i = 1, 3 do
      assert.equal("true", r["sleeping" .. i], i)
      assert.equal("in time", r["timeout" .. i], i)
      assert.equal("joined", r["join" .. i], i)
    end
    assert.equal("true", r.run)
  end)

  it("serves with idle and head timeouts of math.huge, and a client asks with one", function()
    local r = run([[
local socket = require "socket"
main(function()
  local srv = assert(lhyper.server { host = "127.0.0.1", port = 0, idle_timeout = math.huge,
    header_read_timeout = 1e300, handler = function() return 200, nil, "ok" end })
  local res = assert(lhyper.request { url = "http://127.0.0.1:" .. srv.port .. "/",
    timeout = math.huge, read_timeout = 1e300 })
  say("status", res.status, res:read_all())
  local c = socket.tcp()
  c:settimeout(0)
  c:connect("127.0.0.1", srv.port)
  lhyper.sleep(0.2) -- an idle connection, and the loop goes on
  say("connections", srv.connections)
  c:close()
  srv:close(0)
end)
]])
    assert.equal("200,ok", r.status)
    assert.equal("2", r.connections) -- the client's pooled one and the raw one
    assert.equal("true", r.run)
  end)
end)
