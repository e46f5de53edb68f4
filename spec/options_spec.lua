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
