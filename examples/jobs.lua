-- Background jobs: a request starts a task with lhyper.spawn and answers at
-- once; the task goes on by itself, its progress can be polled, and it can
-- be cancelled.
--   lua5.4 examples/jobs.lua [port]
--   curl -X POST 'localhost:8080/jobs?steps=5'   then   curl localhost:8080/jobs/1
--   curl -X DELETE localhost:8080/jobs/1
local lhyper = require "lhyper"

local jobs, tasks, next_id = {}, {}, 1

local function work(job)
  for step = 1, job.steps do
    lhyper.sleep(0.1) -- stands for real work: a request, a file, a computation
    job.done = step
  end
  job.state = "finished"
end

local function handler(req)
  if req.method == "POST" and req.path == "/jobs" then
    local steps = tonumber(assert(req:query_params()).steps) or 10
    local job = { id = next_id, steps = steps, done = 0, state = "running" }
    jobs[job.id], next_id = job, next_id + 1
    -- a task spawned in a handler is its child, cancelled when the handler
    -- returns: this one is detached to outlive it
    tasks[job.id] = lhyper.spawn(work, job):detach()
    return lhyper.json(202, job, { location = "/jobs/" .. job.id })
  end
  local id = tonumber(req.path:match("^/jobs/(%d+)$"))
  local job = jobs[id]
  if job and req.method == "DELETE" then
    tasks[id]:cancel() -- ends it where it waits; nothing if it is over
    if job.state == "running" then job.state = "canceled" end
    return lhyper.json(200, job)
  end
  if job then return lhyper.json(200, job) end
  return lhyper.json(404, { error = "no such job" })
end

local server = assert(lhyper.server { port = tonumber(arg[1]) or 8080, handler = handler })
print("listening on http://127.0.0.1:" .. server.port)
io.stdout:flush()
lhyper.run()
