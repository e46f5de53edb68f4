local h = require "helper"

-- Issue 3. If the server lacks these options, mark the file pending with:
--   local it = function(name) pending(name .. " (not implemented yet)") end

describe("title_case_headers = true", function()
  local srv
  setup(function() srv = h.start_server({ title_case_headers = true }) end)
  teardown(function() if srv then srv:stop() end end)

  it("writes header names in Title-Case", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
    local names = {}
    for _, pair in ipairs(res.headers.list) do names[pair[1]] = true end
    assert.is_true(names["Content-Type"], "Content-Type")
    assert.is_true(names["Content-Length"], "Content-Length")
    assert.is_true(names["Date"], "Date")
  end)
end)

describe("title_case_headers = false (default)", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("writes header names as the handler gave them", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    local found
    for _, pair in ipairs(res.headers.list) do
      if pair[1]:lower() == "content-type" then found = pair[1] end
    end
    assert.equal("content-type", found)
  end)
end)

describe("date_header = false", function()
  local srv
  setup(function() srv = h.start_server({ date_header = false }) end)
  teardown(function() if srv then srv:stop() end end)

  it("sends no Date header", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
    assert.is_nil(res.headers.get("date"))
  end)
end)

describe("pipeline_flush = true", function()
  local srv
  setup(function() srv = h.start_server({ pipeline_flush = true }) end)
  teardown(function() if srv then srv:stop() end end)

  it("still answers pipelined requests in order", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local batch = {}
    for i = 1, 20 do batch[i] = h.req("GET", "/info?seq=" .. i) end
    assert(sock:send(table.concat(batch)))
    for i = 1, 20 do
      assert.equal(tostring(i), assert(r:final_response()).headers.get("x-seq"))
    end
  end)

  it("sends each response at once, with no Nagle stall between them (TCP_NODELAY)", function()
    -- one write per response: without TCP_NODELAY the kernel holds each
    -- small write until the previous one is acknowledged, and the client
    -- delays that ACK (about 40 ms on Linux), for every batch after the first
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local times = {}
    for round = 1, 7 do
      local batch = {}
      for i = 1, 4 do batch[i] = h.req("GET", "/info?seq=" .. (round * 10 + i)) end
      local t0 = h.now()
      assert(sock:send(table.concat(batch)))
      for i = 1, 4 do
        assert.equal(tostring(round * 10 + i), assert(r:final_response()).headers.get("x-seq"))
      end
      times[round] = h.now() - t0
    end
    table.sort(times)
    assert.is_true(times[4] < 0.03, ("median batch of 4 took %.1f ms"):format(times[4] * 1000))
  end)
end)

-- a limit of math.huge (or 2^40, past its C type) means no limit: it was
-- cast where that is undefined, and max_buf_size = math.huge became 0, so
-- every request got 431
describe("limits of math.huge", function()
  it("mean no limit, for the server's, the client's and a WebSocket's options", function()
    local out, code = h.lua([[
local lhyper = require "lhyper"
lhyper.spawn(function()
  local srv = assert(lhyper.server { host = "127.0.0.1", port = 0, max_buf_size = math.huge,
    max_headers = math.huge, max_target = 2^40, max_connections = math.huge,
    max_in_flight = math.huge, backlog = math.huge,
    handler = function(req)
      if req.path ~= "/ws" then return 200, nil, "target " .. #req.target end
      local ws = assert(lhyper.websocket.accept(req, { max_message = math.huge, max_frame = math.huge,
        fragment_size = 2^70 }))
      for m in ws:messages() do ws:send(m) end
    end })
  local c = lhyper.client { max_buf_size = math.huge, max_headers = math.huge, pool_max_idle_per_host = math.huge }
  local res = assert(c:request { url = "http://127.0.0.1:" .. srv.port .. "/" .. ("a"):rep(20000) })
  print("status", res.status, res:read_all())
  local ws = assert(lhyper.websocket.connect("ws://127.0.0.1:" .. srv.port .. "/ws", { max_message = math.huge }))
  assert(ws:send(("x"):rep(100000)))
  print("echo", #assert(ws:receive()))
  ws:close()
  srv:close(0)
end)
lhyper.run()
]])
    assert.equal(0, code, out)
    assert.truthy(out:find("status\t200\ttarget 20001", 1, true), out)
    assert.truthy(out:find("echo\t100000", 1, true), out)
  end)
end)
