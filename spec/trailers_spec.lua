local h = require "helper"

-- Issue 3. If the server lacks trailers, mark the file pending with:
--   local it = function(name) pending(name .. " (not implemented yet)") end

describe("trailers", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  local TE = { te = "trailers" }

  it("sends the iterator's final trailers after the last chunk", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/trailers", TE) .. h.req("GET", "/hello")))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("chunked", res.framing)
    assert.equal("part one, part two", res.body)
    assert.equal("abc123", res.trailers.get("x-checksum"))
    assert.equal("Hello, World!", assert(r:final_response()).body)
  end)

  it("sends them only when the request said TE: trailers (RFC 9110 6.5.1, as hyper)", function()
    for _, te in ipairs({ false, "gzip", "trailers;q=0" }) do
      local res, r = assert(h.raw_request(srv.port, h.req("GET", "/trailers", { te = te })))
      assert.equal("chunked", res.framing)
      assert.equal("part one, part two", res.body)
      assert.is_nil(res.trailers.get("x-checksum"))
      assert.truthy(r:raw_string():find("\r\n0\r\n\r\n$"), r:raw_string())
    end
    local res = assert(h.raw_request(srv.port, h.req("GET", "/trailers", { te = "deflate, Trailers" })))
    assert.equal("abc123", res.trailers.get("x-checksum"))
  end)

  it("drops fields that are not allowed in trailers", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/trailers?bad=1", TE)))
    assert.equal("abc123", res.trailers.get("x-checksum"))
    assert.is_nil(res.trailers.get("content-length"))
  end)

  it("sends no trailers on a close-delimited HTTP/1.0 response", function()
    local res, r = assert(h.raw_request(srv.port, "GET /trailers HTTP/1.0\r\n\r\n"))
    assert.equal("close", res.framing)
    assert.equal("part one, part two", res.body)
    assert.falsy(r:raw_string():find("abc123", 1, true))
  end)

  it("delivers response trailers to node's http client", function()
    local out, code = h.node([[
const http = require("http");
http.get({ host: "127.0.0.1", port: +process.argv[2], path: "/trailers", headers: { TE: "trailers" } }, (res) => {
  let body = "";
  res.on("data", (d) => (body += d));
  res.on("end", () => console.log(res.statusCode, body, res.trailers["x-checksum"]));
}).on("error", (e) => { console.log("error", e.message); process.exit(1); });
]], tostring(srv.port))
    assert.equal(0, code, out)
    assert.equal("200 part one, part two abc123\n", out)
  end)

  it("gives request trailers to the handler through req:trailers()", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/reqtrailers",
      { ["transfer-encoding"] = "chunked" }, h.chunked({ "body" }, "X-Trailer: yes\r\n"))))
    assert.equal(200, res.status)
    assert.equal("body", res.body)
    assert.equal("yes", res.headers.get("x-trailer-seen"))
  end)

  it("gives nil from req:trailers() when there were none", function()
    local res = assert(h.raw_request(srv.port, h.req("POST", "/reqtrailers", nil, "plain")))
    assert.equal("plain", res.body)
    assert.equal("nil", res.headers.get("x-trailer-seen"))
  end)
end)
