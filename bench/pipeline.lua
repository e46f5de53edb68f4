-- bench/pipeline.lua: wrk script sending 16 pipelined GET / requests per batch.
--   wrk -t1 -c50 -s bench/pipeline.lua http://127.0.0.1:PORT/
-- wrk counts the requests in the returned string and waits for that many responses.
local depth = tonumber(os.getenv("PIPELINE_DEPTH")) or 16
local batch

init = function(args)
  local reqs = {}
  for i = 1, depth do
    reqs[i] = wrk.format("GET", "/")
  end
  batch = table.concat(reqs)
end

request = function()
  return batch
end
