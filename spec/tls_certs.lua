-- Certificates for the TLS specs, made when a spec starts by Debian's
-- python3-trustme (/usr/bin/python3: the pyenv python3 on PATH lacks it)
-- into a temp directory: a CA and another one nobody trusts, a server
-- certificate for localhost, 127.0.0.1 and ::1, an expired one, one for
-- another name, one from the untrusted CA, one for b.test (SNI), a second
-- server certificate (reloads), and a client certificate. Each entry is a
-- pair of paths { cert = ..., key = ... }; M.ca and M.other_ca are paths.
local h = require "helper"

local M = {}

local SCRIPT = [[
import sys, datetime, trustme
d = sys.argv[1]
ca = trustme.CA(organization_name="lhyper test CA")
other = trustme.CA(organization_name="untrusted CA")
ca.cert_pem.write_to_path(d + "/ca.pem")
other.cert_pem.write_to_path(d + "/other_ca.pem")
def leaf(issuer, name, *ids, **kw):
    c = issuer.issue_cert(*ids, **kw)
    c.private_key_pem.write_to_path(d + "/" + name + ".key")
    with open(d + "/" + name + ".pem", "wb") as f:
        for blob in c.cert_chain_pems:
            f.write(blob.bytes())
yesterday = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
leaf(ca, "server", "localhost", "127.0.0.1", "::1", organization_unit_name="first")
leaf(ca, "reloaded", "localhost", "127.0.0.1", "::1", organization_unit_name="reloaded")
leaf(ca, "expired", "localhost", "127.0.0.1", not_after=yesterday)
leaf(ca, "wrong", "other.example")
leaf(other, "stranger", "localhost", "127.0.0.1")
leaf(ca, "b", "b.test", organization_unit_name="sni-b")
leaf(ca, "client", "client.example", organization_unit_name="client")
print("ok")
]]

local NAMES = { "server", "reloaded", "expired", "wrong", "stranger", "b", "client" }

-- makes the set; returns it, or nil and why (trustme missing, ...)
function M.make()
  local dir = h.tmpname("-certs")
  assert(os.execute("mkdir -p " .. h.shell_quote(dir)))
  local file = dir .. "/make.py"
  h.write_file(file, SCRIPT)
  local out = h.run(string.format("%s/usr/bin/python3 %s %s 2>&1", h.CLIENT_ENV,
    h.shell_quote(file), h.shell_quote(dir)))
  if not out:find("^ok") then
    os.execute("rm -rf " .. h.shell_quote(dir))
    return nil, "cannot make certificates (python3-trustme): " .. out
  end
  local set = { dir = dir, ca = dir .. "/ca.pem", other_ca = dir .. "/other_ca.pem" }
  for _, n in ipairs(NAMES) do set[n] = { cert = dir .. "/" .. n .. ".pem", key = dir .. "/" .. n .. ".key" } end
  function set.remove() os.execute("rm -rf " .. h.shell_quote(dir)) end
  -- a server's tls option with the "server" certificate, and `extra` fields
  function set.server_tls(extra)
    local t = { cert = set.server.cert, key = set.server.key }
    for k, v in pairs(extra or {}) do t[k] = v end
    return t
  end
  return set
end

-- For a describe block's setup: makes the set and starts a spec/app.lua
-- server over TLS with the "server" certificate (`opts`: more of
-- h.start_server's options). Returns the set and the server.
function M.start_server(opts)
  local set = assert(M.make())
  local o = { tls = set.server_tls() }
  for k, v in pairs(opts or {}) do o[k] = v end
  local ok, srv = pcall(h.start_server, o)
  if not ok then
    set.remove()
    error(srv, 0)
  end
  return set, srv
end

-- For its teardown: stops the server and removes the set (either may be nil:
-- a failed setup)
function M.stop(set, srv)
  if srv then srv:stop() end
  if set then set.remove() end
end

-- why the TLS specs are pending when trustme is missing
M.MISSING = "python3-trustme is not installed (apt-get install python3-trustme)"

-- true when /usr/bin/python3 has trustme
function M.available()
  return os.execute(h.CLIENT_ENV .. "/usr/bin/python3 -c 'import trustme' >/dev/null 2>&1") == true
end

return M
