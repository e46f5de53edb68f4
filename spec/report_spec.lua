-- Issue 18, item 4: no silent 500s, no lost errors. on_error(err, info)
-- hears every handler failure (returning nothing too) with the value that
-- was raised, and info says where it happened: the peer, the status sent,
-- the duration and the phase (handler, body, task). Without on_error, the
-- line on stderr has the traceback.
local h = require "helper"

local parse = h.parse_fields

describe("on_error reports", function()
  local srv
  setup(function() srv = h.start_server({ record_errors = true }) end)
  teardown(function() if srv then srv:stop() end end)

  -- the reports whose target is `target`, after the request was made
  local function reports_for(target, n)
    local deadline = h.now() + 3
    local found
    repeat
      local res = assert(h.raw_request(srv.port, h.req("GET", "/reports")))
      found = {}
      for line in res.body:gmatch("[^\n]+") do
        local r = parse(line)
        if r.target == target then found[#found + 1] = r end
      end
      if #found >= (n or 1) then return found end
      h.sleep(0.05)
    until h.now() > deadline
    return found
  end

  local function request(target)
    local res = assert(h.raw_request(srv.port, h.req("GET", target)))
    return res
  end

  it("reports a handler that returns nothing, with a clear message, and answers 500", function()
    assert.equal(500, request("/err/none").status)
    local r = reports_for("/err/none")[1]
    assert.truthy(r, "not reported")
    assert.equal("user_service", r.kind)
    assert.truthy(r.message:find("handler returned no status", 1, true), r.message)
    assert.equal("handler", r.phase)
    assert.equal("500", r.status)
    assert.equal(500, request("/err/nilfirst").status)
    assert.truthy(reports_for("/err/nilfirst")[1], "nil first not reported")
  end)

  it("gives on_error a raised non-string value intact, as err.cause", function()
    assert.equal(500, request("/err/table").status)
    local r = reports_for("/err/table")[1]
    assert.truthy(r, "not reported")
    assert.equal("user_service", r.kind)
    assert.equal("42", r.cause_code)
    assert.equal("true", r.is_error)
  end)

  it("gives on_error a raised lhyper error object itself", function()
    assert.equal(500, request("/err/object").status)
    local r = reports_for("/err/object")[1]
    assert.truthy(r, "not reported")
    assert.equal("timeout", r.kind)
    assert.equal("upstream slow", r.message)
    assert.equal("kept", r.marker)
  end)

  it("puts the traceback in the message of a string error", function()
    request("/err/string")
    local r = reports_for("/err/string")[1]
    assert.truthy(r.message:find("string failure", 1, true), r.message)
    assert.truthy(r.message:find("stack traceback:", 1, true), r.message)
    assert.truthy(r.message:find("deep_in_the_handler", 1, true), r.message)
  end)

  it("tells the peer, the status sent and the duration", function()
    local sock, rd = h.connect(srv)
    finally(function() sock:close() end)
    local _, port = sock:getsockname()
    assert(sock:send(h.req("GET", "/err/slow?s=0.2")))
    assert.equal(500, assert(rd:response()).status)
    local r = reports_for("/err/slow?s=0.2")[1]
    assert.equal("GET", r.method)
    assert.equal("127.0.0.1", r.remote_addr)
    assert.equal(tostring(port), r.remote_port)
    assert.equal("127.0.0.1:" .. port, r.peer)
    assert.equal("500", r.status)
    local d = tonumber(r.duration)
    assert.truthy(d and d >= 0.19 and d < 5, r.duration)
  end)

  it("reports a failing body iterator in phase body, with the status sent and a traceback", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/err/iter")))
    assert.equal(200, res.status)
    assert.is_false(res.complete)
    local r = reports_for("/err/iter")[1]
    assert.truthy(r, "not reported")
    assert.equal("body", r.phase)
    assert.equal("200", r.status)
    assert.truthy(r.message:find("iterator failure", 1, true), r.message)
    assert.truthy(r.message:find("deep_in_the_iterator", 1, true), r.message)
  end)

  it("reports a failing task of a request in phase task, with a traceback", function()
    assert.equal(200, request("/err/task").status)
    local r = reports_for("/err/task")[1]
    assert.truthy(r, "not reported")
    assert.equal("task", r.phase)
    assert.equal("user_service", r.kind)
    assert.truthy(r.message:find("task failure", 1, true), r.message)
    assert.truthy(r.message:find("deep_in_the_task", 1, true), r.message)
  end)

  it("reports errors before any request in phase connection", function()
    assert.equal(400, assert(h.raw_request(srv.port, "NOT HTTP\r\n\r\n")).status)
    local deadline, found = h.now() + 3, nil
    repeat
      local res = assert(h.raw_request(srv.port, h.req("GET", "/reports")))
      for line in res.body:gmatch("[^\n]+") do
        local r = parse(line)
        if r.kind == "parse" and r.phase == "connection" then found = r end
      end
      if not found then h.sleep(0.05) end
    until found or h.now() > deadline
    assert.truthy(found, "no parse report in phase connection")
    assert.equal("nil", found.method)
  end)
end)

describe("the default report on stderr", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  local function wait_log(text)
    local deadline = h.now() + 3
    repeat
      if srv:log():find(text, 1, true) then return true end
      h.sleep(0.05)
    until h.now() > deadline
    return false
  end

  it("says that a handler returned nothing", function()
    assert.equal(500, assert(h.raw_request(srv.port, h.req("GET", "/err/none"))).status)
    assert.is_true(wait_log("handler returned no status"), srv:log())
  end)

  it("gives iterator and task errors their traceback", function()
    h.raw_request(srv.port, h.req("GET", "/err/iter"))
    assert.is_true(wait_log("deep_in_the_iterator"), srv:log())
    h.raw_request(srv.port, h.req("GET", "/err/task"))
    assert.is_true(wait_log("deep_in_the_task"), srv:log())
  end)
end)
