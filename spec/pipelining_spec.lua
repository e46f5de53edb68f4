local h = require "helper"

describe("pipelining", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("answers 20 requests sent in one write, in order", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local batch = {}
    for i = 1, 20 do batch[i] = h.req("GET", "/info?seq=" .. i) end
    assert(sock:send(table.concat(batch)))
    for i = 1, 20 do
      local res = assert(r:final_response())
      assert.equal(200, res.status)
      assert.equal(tostring(i), res.headers.get("x-seq"))
      assert.equal(tostring(i), h.parse_info(res.body).seq)
    end
    assert.is_true(r:quiet(0.1))
  end)

  it("answers mixed methods and bodies in order", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local batch = table.concat {
      h.req("GET", "/echo?seq=1"),
      h.req("HEAD", "/hello"),
      h.req("POST", "/echo?seq=3", nil, "posted body"),
      h.req("PUT", "/echo?seq=4", { ["transfer-encoding"] = "chunked" }, h.chunked({ "chu", "nked" })),
      h.req("DELETE", "/echo?seq=5"),
      h.req("OPTIONS", "/echo?seq=6"),
      h.req("GET", "/status/204"),
      h.req("GET", "/hello"),
    }
    assert(sock:send(batch))
    local expect = {
      { 200, "GET", "" }, { 200, nil, "", "HEAD" }, { 200, "POST", "posted body" },
      { 200, "PUT", "chunked" }, { 200, "DELETE", "" }, { 200, "OPTIONS", "" },
      { 204, nil, "" }, { 200, nil, "Hello, World!" },
    }
    for i, e in ipairs(expect) do
      local res = assert(r:final_response({ method = e[4] }))
      assert.equal(e[1], res.status, "response " .. i)
      if e[2] then assert.equal(e[2], res.headers.get("x-method"), "response " .. i) end
      assert.equal(e[3], res.body, "response " .. i)
    end
    assert.is_true(r:quiet(0.1))
  end)

  it("keeps order when an early handler is slower than later ones", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/sleep?s=0.2") .. h.req("GET", "/hello") .. h.req("GET", "/sleep?s=0.01")))
    assert.equal("slept", assert(r:final_response()).body)
    assert.equal("Hello, World!", assert(r:final_response()).body)
    assert.equal("slept", assert(r:final_response()).body)
  end)

  it("runs one request per connection at a time", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert.equal(200, assert(h.raw_request(srv.port, h.req("GET", "/inflight/max"))).status) -- resets
    assert(sock:send(h.req("GET", "/inflight?s=0.05") .. h.req("GET", "/inflight?s=0.05") ..
      h.req("GET", "/inflight?s=0.05") .. h.req("GET", "/inflight/max")))
    for _ = 1, 3 do assert.equal("done", assert(r:final_response()).body) end
    assert.equal("1", assert(r:final_response()).body)
  end)

  it("answers requests split across writes at odd places", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local batch = h.req("GET", "/info?seq=1") .. h.req("POST", "/echo?seq=2", nil, "abcdef") .. h.req("GET", "/info?seq=3")
    local i = 1
    while i <= #batch do
      assert(sock:send(batch:sub(i, i + 6)))
      i = i + 7
      h.sleep(0.001)
    end
    assert.equal("1", assert(r:final_response()).headers.get("x-seq"))
    local res = assert(r:final_response())
    assert.equal("2", res.headers.get("x-seq"))
    assert.equal("abcdef", res.body)
    assert.equal("3", assert(r:final_response()).headers.get("x-seq"))
  end)

  it("gives each pipelined request its own req, whole after later ones ran", function()
    -- requests answered without a yield run one after the other in one
    -- coroutine; a handler that raises, streams or sleeps is among them
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local batch = table.concat {
      h.req("GET", "/keep?n=1", { ["x-k"] = "one" }),
      h.req("POST", "/keep?n=2", { ["x-k"] = "two" }, "body two"),
      h.req("GET", "/error"),
      h.req("GET", "/stream?n=70000"),
      h.req("GET", "/keep?n=3", { ["x-k"] = "three" }),
      h.req("GET", "/sleep?s=0.01"),
      h.req("PUT", "/keep?n=4", { ["transfer-encoding"] = "chunked" }, h.chunked({ "ab", "c" })),
      h.req("GET", "/kept"),
      h.req("GET", "/hello"),
    }
    assert(sock:send(batch))
    local function res(status, body)
      local x = assert(r:final_response())
      assert.equal(status, x.status)
      if body then assert.equal(body, x.body) end
      return x
    end
    assert.equal("1", res(200, "kept 1").headers.get("x-kept"))
    assert.equal("2", res(200, "kept 2").headers.get("x-kept"))
    res(500)
    assert.equal(70000, #res(200).body)
    res(200, "kept 3")
    res(200, "slept")
    res(200, "kept 4")
    local kept = res(200).body
    local lines = {}
    for line in kept:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(4, #lines, kept)
    assert.equal("GET /keep?n=1 one", lines[1])
    assert.equal("POST /keep?n=2 two", lines[2])
    assert.equal("GET /keep?n=3 three", lines[3])
    assert.equal("PUT /keep?n=4 nil", lines[4])
    res(200, "Hello, World!")
    assert.is_true(r:quiet(0.1))
  end)

  it("answers 200 pipelined requests on one connection", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local batch = {}
    for i = 1, 200 do batch[i] = h.req("GET", "/hello") end
    assert(sock:send(table.concat(batch)))
    for i = 1, 200 do
      local res = assert(r:final_response())
      assert.equal(200, res.status, "response " .. i)
      assert.equal("Hello, World!", res.body)
    end
  end)
end)
