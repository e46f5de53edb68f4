--- lhyper.layers: each layer constructor is loaded when first used.
local NAMES = {
  rate_limit = true, request_id = true, access_log = true, metrics = true,
  body_limit = true, cors = true, set_headers = true, normalize_path = true,
  timeout = true, concurrency_limit = true, compression = true,
}

return setmetatable({}, {
  __index = function(t, k)
    if not NAMES[k] then return nil end
    local f = require("lhyper.layers." .. k)
    rawset(t, k, f)
    return f
  end,
})
