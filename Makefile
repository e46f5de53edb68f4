# lhyper: `make run` serves on 127.0.0.1:8080, `make test` runs every suite.
CC ?= cc
LUA ?= lua5.4
CFLAGS ?= -O2 -g
SAN ?=

# luarocks passes LUA_INCDIR and LIBUV_*DIR; by hand pkg-config finds them
ifdef LUA_INCDIR
LUA_CFLAGS := -I$(LUA_INCDIR)
else
LUA_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null)
endif
ifdef LIBUV_INCDIR
UV_CFLAGS := -I$(LIBUV_INCDIR)
UV_LIBS := -L$(LIBUV_LIBDIR) -luv
else
UV_CFLAGS := $(shell pkg-config --cflags libuv 2>/dev/null)
UV_LIBS := $(shell pkg-config --libs libuv 2>/dev/null || echo -luv)
endif

LUA_LIBS := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)

# OpenSSL 3 (TLS): luarocks passes OPENSSL_*DIR; by hand pkg-config finds it.
# Missing, the build stops with what to install (see check-openssl).
ifdef OPENSSL_INCDIR
SSL_CFLAGS := -I$(OPENSSL_INCDIR)
SSL_LIBS := -L$(OPENSSL_LIBDIR) -lssl -lcrypto
SSL_FOUND := given
else
SSL_CFLAGS := $(shell pkg-config --cflags openssl 2>/dev/null)
SSL_LIBS := $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
SSL_FOUND := $(shell pkg-config --atleast-version=3.0 openssl 2>/dev/null && echo 3 || \
  (pkg-config --modversion openssl 2>/dev/null || echo none))
endif

# zlib for permessage-deflate (WebSocket); luarocks passes ZLIB_*DIR
ifdef ZLIB_INCDIR
Z_CFLAGS := -I$(ZLIB_INCDIR)
Z_LIBS := -L$(ZLIB_LIBDIR) -lz
else
Z_CFLAGS := $(shell pkg-config --cflags zlib 2>/dev/null)
Z_LIBS := $(shell pkg-config --libs zlib 2>/dev/null || echo -lz)
endif

B ?= build
WARN := -Wall -Wextra -Wno-unused-parameter
# `make test` builds our own sources with WERROR=-Werror; a plain `make`
# (luarocks) does not, so a new compiler's new warning never breaks an install
WERROR ?=
ALL_CFLAGS := $(CFLAGS) $(SAN) -std=gnu11 -fPIC -fvisibility=hidden $(WARN) $(WERROR)

# Three layers, each a folder, each compiled with the include paths of the
# layers below it and no others (core <- uv <- lua):
#   csrc/core  pure C: no libuv, no Lua; the state machine and its tests
#              build from these alone
#   csrc/uv    libuv glue
#   csrc/lua   the Lua binding
CORE_CFLAGS := -Icsrc/core $(Z_CFLAGS) $(SSL_CFLAGS)
UVL_CFLAGS := $(CORE_CFLAGS) -Icsrc/uv $(UV_CFLAGS)
LUAL_CFLAGS := $(UVL_CFLAGS) -Icsrc/lua $(LUA_CFLAGS)
CORE_H := $(wildcard csrc/core/*.h)
UVL_H := $(CORE_H) $(wildcard csrc/uv/*.h)
LUAL_H := $(UVL_H) $(wildcard csrc/lua/*.h)

CORE := $(basename $(notdir $(wildcard csrc/core/*.c)))
UVIO := $(basename $(notdir $(wildcard csrc/uv/*.c)))
LBIND := $(basename $(notdir $(wildcard csrc/lua/*.c)))
TESTS := test_parse test_conn test_dispatch test_timeout test_client test_lalloc test_ws test_tls

CORE_O := $(CORE:%=$(B)/obj/core/%.o)
UVIO_O := $(UVIO:%=$(B)/obj/uv/%.o)
LBIND_O := $(LBIND:%=$(B)/obj/lua/%.o)

.PHONY: all deps run test test-quick test-ws-full tests test-sanitize check-layers fuzz-smoke install clean check-openssl

all: $(B)/lhyper/core.so

deps:
	@sh scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='$(B)/?.so;;' $(LUA) serve.lua

# every suite: the layer check, normal build, ASan/UBSan build, valgrind,
# a fuzz smoke run; one total at the end
test: deps check-layers
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory -j2 WERROR=-Werror all tests
	@$(MAKE) --no-print-directory -j2 B=build-san SAN='-fsanitize=address,undefined -fno-omit-frame-pointer' CFLAGS='-O1 -g' WERROR=-Werror all tests
	@VALGRIND=1 FUZZ_SMOKE=1 sh scripts/test.sh

# core <- uv <- lua: no include runs upward (csrc/README.md)
check-layers:
	@sh scripts/check-layers.sh

# the normal build alone
test-quick: all tests
	@SANITIZE=0 sh scripts/test.sh

# the WebSocket conformance client at Autobahn's full sizes (about 15 minutes)
test-ws-full: all
	@sh scripts/ws-full.sh

tests: $(TESTS:%=$(B)/tests/%)

# OpenSSL 3's headers and libraries are required (TLS for server and client)
check-openssl:
ifeq ($(SSL_FOUND),none)
	@echo "lhyper: OpenSSL 3 development files not found (pkg-config openssl)." >&2; \
	echo "  Debian/Ubuntu: apt-get install libssl-dev   (or: make deps)" >&2; \
	echo "  elsewhere: install OpenSSL >= 3.0 with its headers, or pass OPENSSL_INCDIR= OPENSSL_LIBDIR=" >&2; \
	exit 1
else ifneq ($(filter 3 given,$(SSL_FOUND)),$(SSL_FOUND))
	@echo "lhyper: OpenSSL $(SSL_FOUND) found, lhyper needs OpenSSL 3.0 or later (Debian: libssl-dev)" >&2; exit 1
endif

$(B)/obj/core/%.o: csrc/core/%.c $(CORE_H) | $(B)/obj/core check-openssl
	$(CC) $(ALL_CFLAGS) $(CORE_CFLAGS) -c $< -o $@

$(B)/obj/uv/%.o: csrc/uv/%.c $(UVL_H) | $(B)/obj/uv
	$(CC) $(ALL_CFLAGS) $(UVL_CFLAGS) -c $< -o $@

$(B)/obj/lua/%.o: csrc/lua/%.c $(LUAL_H) | $(B)/obj/lua
	$(CC) $(ALL_CFLAGS) $(LUAL_CFLAGS) -c $< -o $@

$(B)/lhyper/core.so: $(CORE_O) $(UVIO_O) $(LBIND_O) | $(B)/lhyper
	$(CC) -shared $(SAN) -o $@ $^ $(UV_LIBS) $(Z_LIBS) $(SSL_LIBS)

# the allocator cache runs over a real lua_State
$(B)/tests/test_lalloc: csrc/tests/test_lalloc.c $(B)/obj/lua/lalloc.o csrc/tests/test.h | $(B)/tests
	$(CC) $(ALL_CFLAGS) $(LUAL_CFLAGS) -Icsrc/tests -o $@ $< $(B)/obj/lua/lalloc.o $(LUA_LIBS)

# the core's tests build with neither libuv nor Lua
$(B)/tests/%: csrc/tests/%.c csrc/tests/mock_io.c csrc/tests/*.h $(CORE_O) | $(B)/tests
	$(CC) $(ALL_CFLAGS) $(CORE_CFLAGS) -Icsrc/tests -o $@ $< csrc/tests/mock_io.c $(CORE_O) $(Z_LIBS) $(SSL_LIBS)

$(B)/obj $(B)/obj/core $(B)/obj/uv $(B)/obj/lua $(B)/lhyper $(B)/tests:
	mkdir -p $@

# libFuzzer targets (clang); `make test` runs each for FUZZ_SMOKE_SECONDS
# (fuzz-smoke, skipped with a note where clang has no libFuzzer):
#   make fuzz FUZZ_SECONDS=60          server role (Dispatcher and Conn alone)
#   make fuzz-client FUZZ_SECONDS=60   client role
#   make fuzz-head FUZZ_SECONDS=60     request heads: fast path, line parser and
#                                      the line parser fed byte by byte agree
#   make fuzz-chunked FUZZ_SECONDS=60  chunked bodies against a reference decoder
#   make fuzz-ws FUZZ_SECONDS=60       WebSocket reader, whole against chopped
#   make fuzz-tls FUZZ_SECONDS=60      the TLS filter's server side, fed a peer's bytes
# corpora, dictionary and crash artifacts live under build-fuzz/; a crash
# replays with build-fuzz/fuzz_conn build-fuzz/crash-<sha1>
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
FB := build-fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link -std=gnu11 $(CORE_CFLAGS) -Icsrc/tests
FUZZ_O := $(CORE:%=$(FB)/obj/%.o) $(FB)/obj/mock_io.o

.PHONY: fuzz fuzz-client fuzz-head fuzz-chunked fuzz-ws fuzz-tls fuzz-build
.SECONDARY: $(FUZZ_O) $(FB)/fuzz_conn $(FB)/fuzz_client $(FB)/fuzz_head $(FB)/fuzz_chunked $(FB)/fuzz_ws $(FB)/fuzz_tls

fuzz-build: $(FB)/fuzz_conn $(FB)/fuzz_client $(FB)/fuzz_head $(FB)/fuzz_chunked $(FB)/fuzz_ws $(FB)/fuzz_tls

$(FB)/obj/%.o: csrc/core/%.c $(CORE_H) | $(FB)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) -c $< -o $@

$(FB)/obj/mock_io.o: csrc/tests/mock_io.c csrc/tests/*.h $(CORE_H) | $(FB)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) -c $< -o $@

$(FB)/fuzz_%: csrc/tests/fuzz_%.c $(FUZZ_O) $(CORE_H) csrc/tests/*.h
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) -fsanitize=fuzzer -o $@ $< $(FUZZ_O) $(Z_LIBS) $(SSL_LIBS)

$(FB)/obj:
	mkdir -p $@

# seeds and dictionary come from the fuzzer itself (FUZZ_WRITE_SEEDS/DICT)
fuzz-run-%: $(FB)/fuzz_%
	@mkdir -p $(FB)/corpus_$*
	@FUZZ_WRITE_SEEDS=$(FB)/corpus_$* $(FB)/fuzz_$* 2>/dev/null
	@FUZZ_WRITE_DICT=$(FB)/$*.dict $(FB)/fuzz_$* 2>/dev/null
	$(FB)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -dict=$(FB)/$*.dict -max_len=12000 \
	  -timeout=10 -print_final_stats=1 -artifact_prefix=$(FB)/ $(FUZZ_ARGS) $(FB)/corpus_$*

fuzz: fuzz-run-conn
fuzz-client: fuzz-run-client
fuzz-head: fuzz-run-head
fuzz-chunked: fuzz-run-chunked
fuzz-ws: fuzz-run-ws
fuzz-tls: fuzz-run-tls

# every fuzzer a few seconds, so that none rots: one TAP line each
FUZZERS := $(basename $(notdir $(wildcard csrc/tests/fuzz_*.c)))
FUZZ_SMOKE_SECONDS ?= 2
fuzz-smoke:
	@if ! printf 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }\n' | \
	    $(FUZZ_CC) -fsanitize=fuzzer -x c - -o /dev/null >/dev/null 2>&1; then \
	  echo "ok - fuzz smoke # SKIP $(FUZZ_CC) with libFuzzer not found (scripts/deps.sh test installs it)"; \
	  exit 0; \
	fi; \
	mkdir -p $(FB); \
	$(MAKE) --no-print-directory -j2 fuzz-build > $(FB)/smoke-build.log 2>&1; \
	for f in $(FUZZERS); do \
	  n=$${f#fuzz_}; \
	  if $(MAKE) --no-print-directory fuzz-run-$$n FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) > $(FB)/smoke-$$n.log 2>&1; then \
	    echo "ok - $$f ran $(FUZZ_SMOKE_SECONDS) s: $$(grep -o 'stat::number_of_executed_units: *[0-9]*' $(FB)/smoke-$$n.log | grep -o '[0-9]*$$') runs"; \
	  else \
	    echo "not ok - $$f (log: $(FB)/smoke-$$n.log)"; tail -30 $(FB)/smoke-$$n.log | sed 's/^/# /'; \
	  fi; \
	done

# ASan + UBSan build of the module and the C tests, then every suite
test-sanitize: deps
	@$(MAKE) --no-print-directory all tests
	@$(MAKE) --no-print-directory B=build-san SAN='-fsanitize=address,undefined -fno-omit-frame-pointer' CFLAGS='-O1 -g' all tests
	@sh scripts/test.sh

# used by `luarocks make rockspec/lhyper-scm-1.rockspec`
install: all
	mkdir -p $(INST_LIBDIR)/lhyper $(INST_LUADIR)/lhyper/layers
	cp $(B)/lhyper/core.so $(INST_LIBDIR)/lhyper/core.so
	cp lua/lhyper/*.lua $(INST_LUADIR)/lhyper/
	cp lua/lhyper/layers/*.lua $(INST_LUADIR)/lhyper/layers/

clean:
	rm -rf build build-san
