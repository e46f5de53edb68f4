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
Rust's hyper, with llhttp for tokens, backpressure both ways and limits
with sane defaults.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson", -- lhyper.json, req:json(), res:json()
}
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
}
-- The Makefile finds llhttp: the system library through pkg-config, or the
-- C sources Debian 12 ships in node-llhttp (/usr/share/llhttp).
build = {
  type = "make",
  build_target = "all",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LIBUV_INCDIR = "$(LIBUV_INCDIR)",
    LIBUV_LIBDIR = "$(LIBUV_LIBDIR)",
    OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
    OPENSSL_LIBDIR = "$(OPENSSL_LIBDIR)",
  },
  install_target = "install",
  install_variables = {
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
}
