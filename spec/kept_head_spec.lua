-- The server keeps its last response head and writes it again when the next
-- response has the same status, fields and connection state (lhead.c memo,
-- conn.c lh_conn_head_keep/replay). Whatever changes must show in the head.
local h = require "helper"

describe("kept response heads", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  -- the names of a response's fields, sorted, lower-case
  local function names(res)
    local t = {}
    for _, f in ipairs(res.headers.list) do t[#t + 1] = f[1]:lower() end
    table.sort(t)
    return table.concat(t, ",")
  end

  it("gives every response its own status, fields, length and date on one connection", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local seed = 12345
    local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
    local statuses, values, lengths = { 200, 200, 200, 201, 404, 204 }, { "a", "a", "b", "c7" }, { 0, 3, 13, 13, 1000 }
    for i = 1, 300 do
      local s, v, n = statuses[rand(#statuses)], values[rand(#values)], lengths[rand(#lengths)]
      if s == 204 then n = 0 end
      local extra, long = rand(4) == 1, rand(6) == 1
      local ct = rand(3) == 1 and "text/html" or nil
      local head = rand(5) == 1 and "HEAD" or "GET"
      local target = ("/vary?s=%d&v=%s&n=%d%s%s%s"):format(s, v, n, extra and "&extra=1" or "",
        long and "&long=1" or "", ct and "&ct=" .. ct or "")
      assert(sock:send(h.req(head, target)))
      local res = assert(r:final_response({ method = head }))
      local where = ("request %d: %s %s"):format(i, head, target)
      assert.equal(s, res.status, where)
      assert.equal(v, res.headers.get("x-v"), where)
      assert.equal(extra and "e" or nil, res.headers.get("x-extra"), where)
      assert.equal(long and string.rep("L", 50) .. v or nil, res.headers.get("x-long"), where)
      assert.equal(ct, res.headers.get("content-type"), where)
      local want = { "date", "x-v" }
      if s ~= 204 then want[#want + 1] = "content-length" end
      if extra then want[#want + 1] = "x-extra" end
      if long then want[#want + 1] = "x-long" end
      if ct then want[#want + 1] = "content-type" end
      table.sort(want)
      assert.equal(table.concat(want, ","), names(res), where)
      if s ~= 204 then assert.equal(tostring(n), res.headers.get("content-length"), where) end
      assert.equal(head == "GET" and s ~= 204 and string.rep("b", n) or "", res.body, where)
    end
  end)

  it("gives every response its own request id (the request_id layer's field) on one connection", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local seed = 777
    local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
    local statuses, values, lengths = { 200, 200, 200, 201, 404 }, { "a", "a", "b" }, { 0, 3, 13, 1000 }
    local seen = {}
    for i = 1, 300 do
      local s, v, n = statuses[rand(#statuses)], values[rand(#values)], lengths[rand(#lengths)]
      local extra, cl, own = rand(4) == 1, rand(4) == 1, rand(8) == 1
      local head = rand(5) == 1 and "HEAD" or "GET"
      local incoming = ({ false, false, "id-" .. i, "bad id " .. i })[rand(4)]
      local target = ("/vary_id?s=%d&v=%s&n=%d%s%s%s"):format(s, v, n, extra and "&extra=1" or "",
        cl and "&cl=1" or "", own and "&own=1" or "")
      assert(sock:send(h.req(head, target, incoming and { ["x-request-id"] = incoming } or nil)))
      local res = assert(r:final_response({ method = head }))
      local where = ("request %d: %s %s id %s"):format(i, head, target, tostring(incoming))
      assert.equal(s, res.status, where)
      assert.equal(v, res.headers.get("x-v"), where)
      assert.equal(extra and "e" or nil, res.headers.get("x-extra"), where)
      assert.equal(1, res.headers.count("x-request-id"), where)
      local id = res.headers.get("x-request-id")
      if own then
        assert.equal("own", id, where)
      elseif incoming == "id-" .. i then
        assert.equal(incoming, id, where)
      else
        assert.truthy(#id == 32 and id:find("^%x+$"), where .. ": " .. id)
        assert.is_nil(seen[id], where)
        seen[id] = true
      end
      local want = { "content-length", "date", "x-request-id", "x-v" }
      if extra then want[#want + 1] = "x-extra" end
      table.sort(want)
      assert.equal(table.concat(want, ","), names(res), where)
      assert.equal(tostring(n), res.headers.get("content-length"), where)
      assert.equal(head == "GET" and string.rep("b", n) or "", res.body, where)
    end
  end)

  it("answers HTTP/1.0, keep-alive or not, and Connection: close with the right head after HTTP/1.1", function()
    for _ = 1, 3 do
      local res = assert(h.raw_request(srv, h.req("GET", "/hello")))
      assert.equal("1.1", res.version)
      assert.is_nil(res.headers.get("connection"))
      res = assert(h.raw_request(srv, h.req("GET", "/hello", nil, nil, "1.0")))
      assert.equal("1.0", res.version)
      assert.equal("close", res.headers.get("connection"))
      assert.equal("Hello, World!", res.body)
      res = assert(h.raw_request(srv, h.req("GET", "/hello", { connection = "keep-alive" }, nil, "1.0")))
      assert.equal("1.0", res.version)
      assert.equal("keep-alive", res.headers.get("connection"))
      res = assert(h.raw_request(srv, h.req("GET", "/hello", { connection = "close" })))
      assert.equal("close", res.headers.get("connection"))
      assert.equal("13", res.headers.get("content-length"))
    end
  end)

  it("writes every head right around maps with a number value (kept by value) or nine fields (not kept)", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    -- runs of ten, so that each kind is met once the kept head has missed
    -- long enough for another to be kept
    local kinds = { "num", "plain", "many", "num", "many", "plain", "plain" }
    for run, kind in ipairs(kinds) do
      for i = 1, 10 do
        local v = ("r%di%d"):format(run, i % 2)
        local num = i % 3 + 1
        local extra = kind == "num" and "&num=" .. num or kind == "many" and "&many=1" or ""
        local target = ("/vary?v=%s&n=3%s"):format(v, extra)
        assert(sock:send(h.req("GET", target)))
        local res = assert(r:final_response())
        local where = ("run %d (%s), request %d"):format(run, kind, i)
        assert.equal(200, res.status, where)
        assert.equal(v, res.headers.get("x-v"), where)
        assert.equal(kind == "num" and tostring(num) or nil, res.headers.get("x-num"), where)
        local want = { "content-length", "date", "x-v" }
        if kind == "num" then want[#want + 1] = "x-num" end
        if kind == "many" then
          for k = 1, 8 do
            want[#want + 1] = "x-m" .. k
            assert.equal("m" .. k, res.headers.get("x-m" .. k), where)
          end
        end
        table.sort(want)
        assert.equal(table.concat(want, ","), names(res), where)
        assert.equal("3", res.headers.get("content-length"), where)
        assert.equal("bbb", res.body, where)
      end
    end
  end)

  it("refreshes the date of a kept head", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/hello")))
    local d1 = assert(r:final_response()).headers.get("date")
    assert(sock:send(h.req("GET", "/hello")))
    assert.equal(d1, assert(r:final_response()).headers.get("date"))
    h.sleep(1.2)
    assert(sock:send(h.req("GET", "/hello")))
    local d2 = assert(r:final_response()).headers.get("date")
    assert.are_not.equal(d1, d2)
    assert.truthy(d2:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
  end)

  it("does not call metamethods of header tables, and answers instead of hanging", function()
    -- a pair whose name and value would only come from __index: no field, a 500
    -- a value list whose length would only come from __len: no values, no field
    for k, want in pairs({ index = 500, len = 200 }) do
      local sock, r = h.connect(srv)
      assert(sock:send(h.req("GET", "/metaheaders?k=" .. k)))
      local res = assert(r:final_response())
      assert.equal(want, res.status)
      assert.is_nil(res.headers.get("x-a"))
      -- the connection goes on
      assert(sock:send(h.req("GET", "/hello")))
      assert.equal("Hello, World!", assert(r:final_response()).body)
      sock:close()
    end
    local res = assert(h.raw_request(srv, h.req("GET", "/metaheaders?k=map")))
    assert.equal(200, res.status)
    assert.equal("1", res.headers.get("x-a"))
    assert.equal("map", res.body)
  end)
end)
