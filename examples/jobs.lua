-- Background jobs: a request starts a task with lhyper.spawn and answers at
-- once; the task goes on by itself, and its progress can be polled.
--   lua5.4 examples/jobs.lua [port]
--   curl -X POST 'localhost:8080/jobs?steps=5'   then   curl localhost:8080/jobs/1
local lhyper = require "lhyper"

local jobs, next_id = {}, 1

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
    lhyper.spawn(work, job)
    return lhyper.json(202, job, { location = "/jobs/" .. job.id })
  end
  local job = jobs[tonumber(req.path:match("^/jobs/(%d+)$"))]
  if job then return lhyper.json(200, job) end
  return lhyper.json(404, { error = "no such job" })
end

local server = assert(lhyper.server { port = tonumber(arg[1]) or 8080, handler = handler })
print("listening on http://127.0.0.1:" .. server.port)
io.stdout:flush()
lhyper.run()
