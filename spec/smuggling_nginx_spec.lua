-- Request smuggling through a reverse proxy: Debian's nginx (HTTP/1.1 to
-- the backend, kept-alive upstream connections, request bodies streamed
-- unbuffered) in front of lhyper, on a loopback port with its own temp prefix
-- and config, stopped at teardown. The classic CL.TE, TE.CL, TE.TE and
-- chunk-CRLF payloads go to nginx, each with a marked request hidden where
-- one parser might see a body and the other a request. No desync means:
--   * the hidden request runs on lhyper only as often as the client got its
--     answer from nginx (the two agreed it was a request of its own), and
--   * requests sent afterwards over the proxy's kept connections get their
--     own answers, not a smuggled one's.
local h = require "helper"
local up = require "upstreams"

local HIDDEN = "GET /keep?n=hidden HTTP/1.1\r\nHost: x\r\nX-K: hidden\r\n\r\n"

local function post(fields, body)
  return "POST /echo HTTP/1.1\r\nHost: x\r\n" .. fields .. "\r\n" .. body
end

-- a Content-Length that covers the last chunk and the hidden request
local CL = "Content-Length: " .. #("0\r\n\r\n" .. HIDDEN) .. "\r\n"

local PAYLOADS = {
  { "CL.TE", post(CL .. "Transfer-Encoding: chunked\r\n", "0\r\n\r\n" .. HIDDEN) },
  { "TE.CL", post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
      string.format("%x\r\n%s\r\n0\r\n\r\n", #HIDDEN, HIDDEN)) },
  { "TE.TE xchunked", post(CL .. "Transfer-Encoding: xchunked\r\n", "0\r\n\r\n" .. HIDDEN) },
  { "TE.TE space before colon", post(CL .. "Transfer-Encoding : chunked\r\n", "0\r\n\r\n" .. HIDDEN) },
  { "TE.TE two fields", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "0\r\n\r\n" .. HIDDEN) },
  { "TE.TE chunked, identity", post("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n" .. HIDDEN) },
  { "TE.TE HTAB", post("Transfer-Encoding:\tchunked\r\n", "0\r\n\r\n" .. HIDDEN) },
  { "TE.TE obs-fold", post("Transfer-Encoding: x\r\n chunked\r\n", "0\r\n\r\n" .. HIDDEN) },
  { "TE.TE bare LF", post("X: y\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n" .. HIDDEN) },
  { "chunk data without CRLF", post("Transfer-Encoding: chunked\r\n", "5\r\nhelloXX0\r\n\r\n" .. HIDDEN) },
  { "chunk size with bare CR", post("Transfer-Encoding: chunked\r\n", "5;a\rXhello\r\n0\r\n\r\n" .. HIDDEN) },
  { "last chunk with bare CR", post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\rX\r\n" .. HIDDEN) },
  { "chunk lines with bare LF", post("Transfer-Encoding: chunked\r\n", "5\nhello\n0\n\n" .. HIDDEN) },
  { "chunk size overflow", post("Transfer-Encoding: chunked\r\n",
      "10000000000000005\r\nhello\r\n0\r\n\r\n" .. HIDDEN) },
  { "chunk extension with CRLF in quotes", post("Transfer-Encoding: chunked\r\n",
      "5;a=\"\r\n\"\r\nhello\r\n0\r\n\r\n" .. HIDDEN) },
}

describe("request smuggling through nginx", function()
  if not up.have("nginx") then
    pending("nginx is not installed (apt-get install nginx)")
    return
  end
  local srv, nginx
  setup(function()
    srv = h.start_server()
    nginx = up.nginx([[
    location / {
      proxy_pass http://lhyper_backend;
      proxy_http_version 1.1;
      proxy_request_buffering off;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
]], nil, { http = (([[
  upstream lhyper_backend {
    server 127.0.0.1:BACKEND;
    keepalive 4;
  }
]]):gsub("BACKEND", tostring(srv.port))) })
  end)
  teardown(function()
    if nginx then nginx:stop() end
    if srv then srv:stop() end
  end)

  -- the hidden requests lhyper ran, read straight from lhyper
  local function hidden_runs()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/kept")))
    local n = 0
    for _ in res.body:gmatch("hidden") do n = n + 1 end
    return n / 2 -- "/keep?n=hidden" and the X-K value
  end

  -- the payload to nginx; every response it sends back, until it closes
  local function through_nginx(raw)
    local sock, r = h.connect(nginx.port)
    finally(function() sock:close() end)
    sock:send(raw)
    local answered, statuses = 0, {}
    while true do
      local res = r:final_response({ timeout = 2 })
      if not res then break end
      statuses[#statuses + 1] = res.status
      if res.body == "kept hidden" then answered = answered + 1 end
      if res.headers.get("connection") == "close" then break end
      if #statuses >= 3 then break end
    end
    sock:close()
    return answered, statuses
  end

  -- requests over the proxy's kept connections each get their own answer
  local function in_step()
    for i = 1, 6 do
      local res = assert(h.raw_request(nginx.port, h.req("GET", "/echo?seq=" .. i, nil, "step " .. i)))
      assert.equal(200, res.status)
      assert.equal("step " .. i, res.body)
      assert.equal(tostring(i), res.headers.get("x-seq"))
    end
  end

  for _, p in ipairs(PAYLOADS) do
    local name, raw = p[1], p[2]
    it("keeps nginx and lhyper in step: " .. name, function()
      hidden_runs() -- clears /kept
      local answered, statuses = through_nginx(raw)
      local ran = hidden_runs()
      assert.equal(answered, ran, name .. ": nginx answered " .. table.concat(statuses, ","))
      in_step()
    end)
  end

  it("still proxies a plain chunked upload", function()
    local res = assert(h.raw_request(nginx.port, post("Transfer-Encoding: chunked\r\n",
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")))
    assert.equal(200, res.status)
    assert.equal("hello world", res.body)
  end)
end)
