local h = require "helper"
local cjson = require "cjson"

-- Issue 19: examples/rest.lua, the README's quick start, driven with curl.

local function start(script)
  local port = h.free_port()
  local p = h.start_lua(script .. " " .. port, 60)
  local deadline = h.now() + h.TEST_TIMEOUT
  while h.now() < deadline and p:alive() do
    local sock = h.connect(port)
    if sock then sock:close(); return p, port end
    h.sleep(0.02)
  end
  local text = p:log()
  p:stop()
  error(script .. " did not start:\n" .. text, 2)
end

-- curl: status, headers (lower-case names), body
local function curl(port, args)
  local out = h.curl(string.format("-i %s", args:gsub("URL", "http://127.0.0.1:" .. port)))
  local head, body = out:match("^(.-)\r\n\r\n(.*)$")
  assert(head, out)
  local status = tonumber(head:match("^HTTP/1.1 (%d+)"))
  local headers = {}
  for k, v in head:gmatch("\r\n([^:]+): ([^\r]*)") do headers[k:lower()] = v end
  return status, headers, body
end

describe("examples/rest.lua", function()
  local p, port
  setup(function() p, port = start("examples/rest.lua") end)
  teardown(function() if p then p:stop() end end)

  it("creates, reads, updates, lists and deletes notes", function()
    local s, hd, b = curl(port, [[-H 'content-type: application/json' -d '{"text":"buy milk"}' URL/notes]])
    assert.equal(201, s)
    assert.same({ id = 1, text = "buy milk" }, cjson.decode(b))
    assert.equal("/notes/1", hd.location)
    assert.truthy(hd["x-request-id"])
    s, _, b = curl(port, [[-H 'content-type: application/json' -d '{"text":"call Ann"}' URL/notes]])
    assert.equal(201, s)
    s, _, b = curl(port, "URL/notes/1")
    assert.equal(200, s)
    assert.same({ id = 1, text = "buy milk" }, cjson.decode(b))
    s, _, b = curl(port, [[-X PUT -H 'content-type: application/json' -d '{"text":"buy oat milk"}' URL/notes/1]])
    assert.equal(200, s)
    assert.same({ id = 1, text = "buy oat milk" }, cjson.decode(b))
    s, _, b = curl(port, "URL/notes")
    assert.equal(200, s)
    assert.same({ { id = 1, text = "buy oat milk" }, { id = 2, text = "call Ann" } }, cjson.decode(b))
    s = curl(port, "-X DELETE URL/notes/2")
    assert.equal(204, s)
    s, _, b = curl(port, "URL/notes/2")
    assert.equal(404, s)
    assert.same({ error = "no note 2" }, cjson.decode(b))
    assert.truthy(p:wait_log('"DELETE /notes/2 HTTP/1.1" 204 0 ', 3), p:log())
  end)

  it("answers 404, 405 with Allow, 400, 415, 422 and 413, each with a JSON error", function()
    local s, hd, b = curl(port, "URL/nothing")
    assert.equal(404, s)
    assert.same({ error = "no route for /nothing" }, cjson.decode(b))
    s, hd = curl(port, "-X PATCH URL/notes/1")
    assert.equal(405, s)
    assert.equal("GET, HEAD, PUT, DELETE, OPTIONS", hd.allow)
    s = curl(port, "URL/notes/abc")
    assert.equal(404, s)
    s, hd, b = curl(port, [[-H 'content-type: application/json' -d 'not json' URL/notes]])
    assert.equal(400, s)
    assert.equal("application/json", hd["content-type"])
    assert.truthy(cjson.decode(b).error)
    s, _, b = curl(port, [[-d '{"text":"x"}' URL/notes]])
    assert.equal(415, s)
    s, _, b = curl(port, [[-H 'content-type: application/json' -d '{"title":"x"}' URL/notes]])
    assert.equal(422, s)
    assert.same({ error = 'expected a JSON object with a "text" string' }, cjson.decode(b))
    local big = h.make_file(70 * 1024)
    finally(function() os.remove(big) end)
    s, _, b = curl(port, "-H 'content-type: application/json' --data-binary @" .. big .. " URL/notes")
    assert.equal(413, s)
    assert.truthy(cjson.decode(b).error)
  end)
end)
