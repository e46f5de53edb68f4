package = "lhyper"
version = "scm-1"
source = {
  url = "git+https://example.invalid/lhyper.git",
}
description = {
  summary = "A hyper-style HTTP/1.1 server for Lua 5.4, C on libuv",
  detailed = [[
lhyper runs each request's handler in its own coroutine over a C core on
libuv: a connection state machine kept apart from its dispatcher, as in
Rust's hyper, its own HTTP/1.1 parser (RFC 9112), backpressure both ways
and limits with sane defaults.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson", -- lhyper.json, req:json(), res:json()
}
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  ZLIB = { header = "zlib.h", library = "z" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
}
-- Besides Lua 5.4: libuv (libuv1-dev), zlib for WebSocket compression
-- (zlib1g-dev) and OpenSSL 3 for TLS (libssl-dev). The HTTP/1 parser is
-- lhyper's own; lua-cjson may come from the system (Debian's lua-cjson;
-- luarocks make --deps-mode=none then).
build = {
  type = "make",
  build_target = "all",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LIBUV_INCDIR = "$(LIBUV_INCDIR)",
    LIBUV_LIBDIR = "$(LIBUV_LIBDIR)",
    ZLIB_INCDIR = "$(ZLIB_INCDIR)",
    ZLIB_LIBDIR = "$(ZLIB_LIBDIR)",
    OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
    OPENSSL_LIBDIR = "$(OPENSSL_LIBDIR)",
  },
  install_target = "install",
  install_variables = {
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
}
