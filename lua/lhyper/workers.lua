--- lhyper.workers{ n = "auto" | N, mode = "reuseport" | "shared", grace = 10 }
-- Called after the servers are made and before lhyper.run(). In the master
-- it forks the workers, supervises them (csrc/uv/workers.c) and returns only
-- once they have all exited after SIGTERM/SIGINT: then the servers are
-- closed and it returns nil (nil, err, kind when the workers could not
-- start). In a worker it returns the worker's number (1..n) and generation
-- (0, then one more on each reload), and the program goes on to
-- lhyper.run(). A reload (SIGHUP to the master) runs the program anew, from
-- its first line, with the same command line: lhyper.server there takes the
-- master's listeners (LISTEN_FDS, in the order the servers were made) and
-- lhyper.workers returns at once.
local core = require "lhyper.core"

local M = {}

local type, tostring = type, tostring

local function check(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("lhyper.workers: options table expected", 3) end
  for k in pairs(opts) do
    if k ~= "n" and k ~= "mode" and k ~= "grace" then
      error("lhyper.workers: unknown option '" .. tostring(k) .. "'", 3)
    end
  end
  local n = opts.n
  if n == nil or n == "auto" then
    n = core.cpu_count()
  elseif type(n) ~= "number" or n ~= math.floor(n) or n < 1 or n > 1024 then
    error("lhyper.workers: option 'n' must be \"auto\" or an integer 1..1024", 3)
  end
  local mode = opts.mode or "reuseport"
  if mode ~= "reuseport" and mode ~= "shared" then
    error("lhyper.workers: option 'mode' must be \"reuseport\" or \"shared\"", 3)
  end
  local grace = opts.grace or 10
  if type(grace) ~= "number" or grace < 0 then
    error("lhyper.workers: option 'grace' must be a number >= 0", 3)
  end
  return { n = math.tointeger(n), shared = mode == "shared", grace = grace }
end

-- the command line that started this program (arg[-k] .. arg[#arg]), for
-- a new generation; nil when the program was not started by lua's
-- standalone interpreter
local function command_line()
  local a = rawget(_G, "arg")
  if type(a) ~= "table" or type(a[0]) ~= "string" then return nil end
  local first = 0
  while a[first - 1] ~= nil do first = first - 1 end
  local argv = {}
  for i = first, #a do
    if type(a[i]) ~= "string" then return nil end
    argv[#argv + 1] = a[i]
  end
  return argv
end

-- In a worker: the master's commands (and the worker's own SIGTERM,
-- SIGQUIT) end the process: drain or retire every server, then stop the
-- loop once they are closed (tasks of the program must not keep it). The
-- command takes effect in the callback that reads it, not in a task a loop
-- turn later: a request read after the command (in the same turn) is
-- answered with Connection: close, and a timer due meanwhile cannot send a
-- response head that still promises keep-alive.
local function serve_commands(lhyper, ctl, grace)
  local ending = false
  local function wait_closed(list)
    local deadline = core.now() + grace + 0.5
    repeat
      local open = false
      for _, s in ipairs(list) do open = open or not s.closed end
      if not open then break end
      core.sleep(0.02)
    until core.now() > deadline
    lhyper.stop()
  end
  local function on_command(cmd)
    if cmd == "quit" then
      lhyper.stop()
      return
    end
    if ending then return end
    ending = true
    local list = lhyper._servers()
    for _, s in ipairs(list) do
      if cmd == "drain" then
        s:drain(grace)
      else
        lhyper._run_drain_hooks(s)
        s:_retire(grace)
      end
    end
    core.spawn(wait_closed, list)
  end
  assert(core.worker_control(ctl, on_command))
end

function M.new(lhyper)
  local started = false
  return function(opts)
    local o = check(opts)
    if core.in_task() then error("lhyper.workers: call it from the main chunk, not in a task or handler", 2) end
    if started then error("lhyper.workers: already called", 2) end
    started = true
    local id, gen, ctl = core.worker_env()
    if not id then
      local list = lhyper._servers()
      for _, s in ipairs(list) do
        if s.connections > 0 then
          started = false
          error("lhyper.workers: a server already has connections (call it before lhyper.run)", 2)
        end
      end
      id, gen, ctl = core.workers_run(o, list, command_line())
      if id == nil then
        started = false
        return nil, gen, ctl
      end
      if id == false then
        -- the master, after the last worker: its listeners are gone
        for _, s in ipairs(list) do s:close(0) end
        return nil
      end
    end
    -- a worker: its own random sequence, then the master's commands
    math.randomseed(os.time(), id * 1000003 + (gen or 0) + math.floor(core.now() * 1e6))
    serve_commands(lhyper, ctl, o.grace)
    return id, gen
  end
end

return M
