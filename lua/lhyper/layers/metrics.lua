--- metrics{ path = "/metrics", buckets = {...}, server = nil }: counts
-- what passes through it and answers GET `path` with the Prometheus text
-- exposition format (version 0.0.4):
--   lhyper_http_requests_total{route,method,status}      counter
--   lhyper_http_request_duration_seconds{route,method}   histogram, from the
--     request reaching the layer to the end of its response
--   lhyper_http_requests_aborted_total{route,method}     responses given up
--   lhyper_http_requests_in_flight                       gauge
--   lhyper_open_connections                              gauge
--   lhyper_received_bytes_total, lhyper_sent_bytes_total counters (sockets)
-- `route` is req.route (the router's pattern), "(none)" when no route
-- matched. The connection and byte figures are the server's that answered
-- the scrape, or `server`'s. Scrapes themselves are not counted.
local core = require "lhyper.core"
local check = require("lhyper.options").check

local type, error, ipairs, pairs, tostring, format, gsub, concat, sort =
  type, error, ipairs, pairs, tostring, string.format, string.gsub, table.concat, table.sort
local hrtime = core.hrtime

local DEFAULT_BUCKETS = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
local OPTIONS = { path = "string", buckets = "table", server = "userdata" }
local CONTENT = { ["content-type"] = "text/plain; version=0.0.4; charset=utf-8" }

local function label(v)
  v = tostring(v)
  if v:find('[\\"\n]') then v = gsub(gsub(gsub(v, "\\", "\\\\"), '"', '\\"'), "\n", "\\n") end
  return v
end

local function num(x)
  if x == math.floor(x) and x < 2 ^ 53 then return format("%d", x) end
  return format("%.17g", x)
end

return function(opts)
  if opts ~= nil and type(opts) ~= "table" then error("metrics: options table expected", 2) end
  opts = opts or {}
  check(OPTIONS, opts, "metrics")
  local path = opts.path or "/metrics"
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then error("metrics: path must start with '/'", 2) end
  local buckets = opts.buckets or DEFAULT_BUCKETS
  for i, b in ipairs(buckets) do
    if type(b) ~= "number" or (i > 1 and b <= buckets[i - 1]) then
      error("metrics: buckets must be increasing numbers", 2)
    end
  end
  local nb = #buckets
  local le = {}
  for i, b in ipairs(buckets) do le[i] = format("%g", b) end
  local fixed_server = opts.server

  -- series, keyed by their label text
  local requests = {}  -- 'route="..",method="..",status=".."' -> count
  local hists = {}     -- 'route="..",method=".."' -> { counts per bucket..., sum = s, count = n }
  local aborted = {}   -- same key as hists -> count
  local in_flight = 0

  local function observe(route, method, status, seconds, complete)
    local rm = 'route="' .. label(route) .. '",method="' .. label(method) .. '"'
    local rk = rm .. ',status="' .. (status or 0) .. '"'
    requests[rk] = (requests[rk] or 0) + 1
    local h = hists[rm]
    if not h then
      h = { sum = 0, count = 0 }
      for i = 1, nb do h[i] = 0 end
      hists[rm] = h
    end
    for i = 1, nb do
      if seconds <= buckets[i] then h[i] = h[i] + 1; break end
    end
    h.sum = h.sum + seconds
    h.count = h.count + 1
    if not complete then aborted[rm] = (aborted[rm] or 0) + 1 end
  end

  local function sorted_keys(t)
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = k end
    sort(ks)
    return ks
  end

  local function render(srv)
    local out = {}
    local function add(s) out[#out + 1] = s end
    add("# HELP lhyper_http_requests_total HTTP requests answered, by route, method and status.\n")
    add("# TYPE lhyper_http_requests_total counter\n")
    for _, k in ipairs(sorted_keys(requests)) do
      add(format("lhyper_http_requests_total{%s} %d\n", k, requests[k]))
    end
    add("# HELP lhyper_http_request_duration_seconds Time from the request to the end of its response.\n")
    add("# TYPE lhyper_http_request_duration_seconds histogram\n")
    for _, k in ipairs(sorted_keys(hists)) do
      local h, acc = hists[k], 0
      for i = 1, nb do
        acc = acc + h[i]
        add(format('lhyper_http_request_duration_seconds_bucket{%s,le="%s"} %d\n', k, le[i], acc))
      end
      add(format('lhyper_http_request_duration_seconds_bucket{%s,le="+Inf"} %d\n', k, h.count))
      add(format("lhyper_http_request_duration_seconds_sum{%s} %s\n", k, num(h.sum)))
      add(format("lhyper_http_request_duration_seconds_count{%s} %d\n", k, h.count))
    end
    add("# HELP lhyper_http_requests_aborted_total Responses given up before their end (client gone, handler failed mid-body).\n")
    add("# TYPE lhyper_http_requests_aborted_total counter\n")
    for _, k in ipairs(sorted_keys(aborted)) do
      add(format("lhyper_http_requests_aborted_total{%s} %d\n", k, aborted[k]))
    end
    add("# HELP lhyper_http_requests_in_flight Requests being served.\n")
    add("# TYPE lhyper_http_requests_in_flight gauge\n")
    add(format("lhyper_http_requests_in_flight %d\n", in_flight))
    if srv then
      add("# HELP lhyper_open_connections Open client connections.\n")
      add("# TYPE lhyper_open_connections gauge\n")
      add(format("lhyper_open_connections %d\n", srv.connections))
      add("# HELP lhyper_received_bytes_total Bytes read from client connections.\n")
      add("# TYPE lhyper_received_bytes_total counter\n")
      add(format("lhyper_received_bytes_total %d\n", srv.bytes_in))
      add("# HELP lhyper_sent_bytes_total Bytes written to client connections.\n")
      add("# TYPE lhyper_sent_bytes_total counter\n")
      add(format("lhyper_sent_bytes_total %d\n", srv.bytes_out))
    end
    return concat(out)
  end

  return function(inner)
    return function(req)
      local method = req.method
      if req.path == path and (method == "GET" or method == "HEAD") then
        return 200, CONTENT, render(fixed_server or core.req_server(req))
      end
      in_flight = in_flight + 1
      local t0 = hrtime()
      req:on_end(function(r, complete, status)
        in_flight = in_flight - 1
        observe(r.route or "(none)", method, status, (hrtime() - t0) / 1e9, complete)
      end)
      return inner(req)
    end
  end
end
