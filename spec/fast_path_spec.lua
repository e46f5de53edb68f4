-- Every reasonable handler shape takes the fast path (kept heads and the
-- rest), and the fast path must write what the plain one writes. Each
-- shape of bench/hello.lua's handlers (the /fast route of spec/app.lua)
-- is asked the same requests on two servers, one with every shortcut off
-- (LHYPER_KEPT_HEADS=0 and the others), and the bytes each sends back must
-- be the same but for the date and the order of a map's fields.
local h = require "helper"

local OFF = "env LHYPER_FAST_HEAD=0 LHYPER_KEPT_HEADS=0 LHYPER_KEPT_VALUES=0 LHYPER_NEXT_MSG=0 " ..
  "LHYPER_DOZE=0 LHYPER_FAST_CLOSE=0 LHYPER_ALLOC_CACHE=0"

local VARIANTS = { "hello", "cl", "CL", "cl_num", "cl_twice", "path", "query", "header", "headers3",
  "cookie", "number", "table", "table3" }

-- the same pseudo-random sequence on every run
local function rng(seed)
  return function(n)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % n + 1
  end
end

local function pick(rand, t) return t[rand(#t)] end

-- One session: requests sent over one connection, some one at a time and
-- some pipelined; then ten GET ?<warm>, one at a time, so that the server
-- keeps that head; GET ?<last_query>; and unless the server is to close
-- after that one (an error), a GET with Connection: close. Each step is a
-- list of { raw = request bytes, method = "GET" | "HEAD" }. Returns the
-- steps and how many responses come before the last request.
local function session(seed, variants, warm, last_query, server_closes)
  local rand = rng(seed)
  local steps, count = {}, 0
  while count < 40 do
    local batch = {}
    for _ = 1, pick(rand, { 1, 1, 1, 3, 6 }) do
      local v = pick(rand, variants)
      local n = pick(rand, { 13, 13, 13, 0, 5, 100, 13, 1000 })
      local s = pick(rand, { 200, 200, 200, 200, 201, 404, 204, 304 })
      local q = ("v=%s&n=%d&s=%d"):format(v, n, s)
      if v == "number" then q = q .. "&x=" .. pick(rand, { "42", "42", "42", "-7", "9007199254740993", "1.5", "0" }) end
      if v == "cl_num" and rand(8) == 1 then q = q .. "&cl=f" end -- 13.0: refused, 500
      local method = rand(6) == 1 and "HEAD" or "GET"
      local version = rand(8) == 1 and "1.0" or "1.1"
      local headers = { host = "x" }
      if version == "1.0" then headers.connection = "keep-alive" end
      if rand(3) == 1 then headers["user-agent"] = "spec/1.0" end
      if rand(3) == 1 then headers["Accept"] = "*/*" end
      batch[#batch + 1] = { raw = h.req(method, "/fast?" .. q, headers, nil, version), method = method }
      count = count + 1
    end
    steps[#steps + 1] = batch
  end
  for _ = 1, 10 do
    steps[#steps + 1] = { { raw = h.req("GET", "/fast?" .. warm, { host = "x" }), method = "GET" } }
    count = count + 1
  end
  local last = { raw = h.req("GET", "/fast?" .. last_query, { host = "x" }), last = true }
  if not server_closes then
    last.raw = last.raw .. h.req("GET", "/fast?v=hello&n=13", { host = "x", connection = "close" })
  end
  steps[#steps + 1] = { last }
  return steps, count
end

-- Each Lua state seeds its string hashes anew, so two servers walk a map
-- of header fields in different orders: the fields of each head are put
-- in order (and, with fold, their names in lower case: which of two
-- spellings of one name comes first, and is written, varies too) before
-- the two servers' bytes are compared. Bodies hold no "HTTP/".
local function canonical(out, fold)
  return (out:gsub("(HTTP/1%.[01] [^\r]*\r\n)(.-\r\n)\r\n", function(status, fields)
    local lines = {}
    for l in fields:gmatch("([^\r]*)\r\n") do
      if fold then l = l:gsub("^[^:]*", string.lower) end
      lines[#lines + 1] = l
    end
    table.sort(lines)
    return status .. table.concat(lines, "\r\n") .. "\r\n\r\n"
  end))
end

-- sends the session's requests to srv and returns every byte it answered,
-- the dates taken out, and the number of complete responses read before
-- the last request
local function play(srv, steps)
  local sock, r = h.connect(srv)
  local answered = 0
  for _, batch in ipairs(steps) do
    local raw = {}
    for i, req in ipairs(batch) do raw[i] = req.raw end
    assert(sock:send(table.concat(raw)))
    if not batch[1].last then
      for _, req in ipairs(batch) do
        local res = assert(r:final_response({ method = req.method }))
        assert(res.complete, "incomplete response")
        answered = answered + 1
      end
    end
  end
  r:rest(h.TEST_TIMEOUT)
  sock:close()
  return (r:raw_string():gsub("\r\ndate: [^\r]*", "\r\ndate: -")), answered
end

describe("the fast path", function()
  local fast, slow
  setup(function()
    fast = h.start_server()
    slow = h.start_server(nil, OFF)
  end)
  teardown(function()
    if fast then fast:stop() end
    if slow then slow:stop() end
  end)

  local function same(steps, count, where, fold)
    local a, na = play(fast, steps)
    local b, nb = play(slow, steps)
    assert.equal(count, nb, where)
    assert.equal(count, na, where)
    assert.equal(canonical(b, fold), canonical(a, fold), where)
    return a
  end

  -- a response of out, the last (back = 0) or one before: its head and
  -- what came after it up to the next
  local function response(out, back)
    local starts = {}
    for at in out:gmatch("()HTTP/1.[01] %d%d%d ") do starts[#starts + 1] = at end
    local at = starts[#starts - (back or 0)]
    local head_end = assert(out:find("\r\n\r\n", at, true))
    local nxt = starts[#starts - (back or 0) + 1] or #out + 1
    return out:sub(at, head_end + 3), out:sub(head_end + 4, nxt - 1)
  end

  for i, v in ipairs(VARIANTS) do
    it("writes what the plain path writes for the " .. v .. " handler", function()
      local steps, count = session(i * 7919, { v }, "v=" .. v .. "&n=13", "v=" .. v .. "&n=13")
      local out = same(steps, count, v, v == "cl_twice")
      -- and it answered as the handler meant (the plain path's bytes are the reference)
      if v == "cl_twice" then
        -- one map naming a field twice (in two cases) is refused on both paths
        local _, errs = out:gsub("HTTP/1%.[01] 500 Internal Server Error\r\n", "")
        assert.is_true(errs > 10, v)
        return
      end
      local _, oks = out:gsub("HTTP/1%.[01] 200 OK\r\n", "")
      assert.is_true(oks > 10, v)
      assert.equal("hhhhhhhhhhhhh", out:sub(-13), v)
    end)
  end

  it("writes what the plain path writes when the handler shapes alternate on one connection", function()
    for seed = 1, 3 do
      local steps, count = session(seed, VARIANTS, "v=" .. VARIANTS[seed] .. "&n=7", "v=hello&n=3")
      same(steps, count, "seed " .. seed, true)
    end
  end)

  -- a content-length unlike the body is an error, as it was: the head goes
  -- out, the body does not fit it, the connection closes. The head kept
  -- just before is the same but for that length
  for _, case in ipairs({
    { "cl", "12", "" }, { "cl", "14", "hhhhhhhhhhhhh" }, { "CL", "0", "" }, { "cl_num", "12", "" },
    { "cl_num", "14", "hhhhhhhhhhhhh" },
  }) do
    local v, cl, rest = case[1], case[2], case[3]
    it(("ends the connection as the plain path does for %s with content-length %s and 13 body bytes"):format(v, cl), function()
      local steps, count = session(#v * 31 + cl, { v }, "v=" .. v .. "&n=13", ("v=%s&n=13&cl=%s"):format(v, cl), true)
      local head, after = response(same(steps, count, v .. " " .. cl))
      assert.truthy(head:find("^HTTP/1.1 200 OK\r\n"), head)
      assert.truthy(head:lower():find("\r\ncontent%-length: " .. cl .. "\r\n"), head)
      assert.equal(rest, after)
    end)
  end

  it("answers as the plain path does a content-length with leading zeros, or given twice unlike", function()
    local steps, count = session(5, { "cl" }, "v=cl&n=13", "v=cl&n=13&cl=013")
    local head, after = response(same(steps, count, "013"), 1)
    assert.truthy(head:find("\r\ncontent%-length: 013\r\n"), head)
    assert.equal("hhhhhhhhhhhhh", after)
    steps, count = session(6, { "cl_twice" }, "v=cl_twice&n=13", "v=cl_twice&n=13&cl=12")
    head = response(same(steps, count, "twice", true), 1)
    assert.truthy(head:find("^HTTP/1.1 500 "), head)
  end)

  it("answers 500 for a content-length given as a float, as the plain path does", function()
    local steps, count = session(99, { "cl_num" }, "v=cl_num&n=13", "v=cl_num&n=13&cl=f")
    local head = response(same(steps, count, "cl=f"), 1)
    assert.truthy(head:find("^HTTP/1.1 500 "), head)
  end)

  it("still refuses a req's or headers' __index called on something else", function()
    local res = assert(h.raw_request(fast, h.req("GET", "/wrongself")))
    assert.equal(200, res.status)
    assert.equal("false:lhyper.req false:lhyper.headers false:lhyper.req false:lhyper.headers false:lhyper.req", res.body)
  end)
end)
