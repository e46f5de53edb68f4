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

# llhttp: the system library when there is one, else Debian 12's sources
ifeq ($(shell pkg-config --exists llhttp 2>/dev/null && echo y),y)
LLHTTP_CFLAGS := $(shell pkg-config --cflags llhttp)
LLHTTP_LIBS := $(shell pkg-config --libs llhttp)
LLHTTP_SRC :=
else
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_CFLAGS := -I/usr/share/include/llhttp
LLHTTP_LIBS :=
LLHTTP_SRC := $(LLHTTP_DIR)/llhttp.c $(LLHTTP_DIR)/api.c $(LLHTTP_DIR)/http.c
endif

B ?= build
WARN := -Wall -Wextra -Wno-unused-parameter
ALL_CFLAGS := $(CFLAGS) $(SAN) -std=gnu11 -fPIC -fvisibility=hidden $(WARN) -Icsrc $(LLHTTP_CFLAGS)

# no libuv, no Lua: the state machine and its tests build from these alone
CORE := buf parse conn encode errors dispatch deadline
UVIO := io server timer client
LBIND := lhyper lsvc lreq lclient
TESTS := test_conn test_dispatch test_timeout test_client

CORE_O := $(CORE:%=$(B)/obj/%.o)
UVIO_O := $(UVIO:%=$(B)/obj/%.o)
LBIND_O := $(LBIND:%=$(B)/obj/%.o)
LLHTTP_O := $(if $(LLHTTP_SRC),$(B)/obj/llhttp_llhttp.o $(B)/obj/llhttp_api.o $(B)/obj/llhttp_http.o)

.PHONY: all deps run test test-quick tests test-sanitize install clean

all: $(B)/lhyper/core.so

deps:
	@sh scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='$(B)/?.so;;' $(LUA) serve.lua

# every suite: normal build, ASan/UBSan build, valgrind; one total at the end
test: deps
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory all tests
	@$(MAKE) --no-print-directory B=build-san SAN='-fsanitize=address,undefined -fno-omit-frame-pointer' CFLAGS='-O1 -g' all tests
	@VALGRIND=1 sh scripts/test.sh

# the normal build alone
test-quick: all tests
	@SANITIZE=0 sh scripts/test.sh

tests: $(TESTS:%=$(B)/tests/%)

$(B)/obj/%.o: csrc/%.c csrc/*.h | $(B)/obj
	$(CC) $(ALL_CFLAGS) $(UV_CFLAGS) $(LUA_CFLAGS) -c $< -o $@

$(B)/obj/llhttp_%.o: $(LLHTTP_DIR)/%.c | $(B)/obj
	$(CC) $(CFLAGS) $(SAN) -std=gnu11 -fPIC -fvisibility=hidden -w $(LLHTTP_CFLAGS) -c $< -o $@

$(B)/lhyper/core.so: $(CORE_O) $(UVIO_O) $(LBIND_O) $(LLHTTP_O) | $(B)/lhyper
	$(CC) -shared $(SAN) -o $@ $^ $(LLHTTP_LIBS) $(UV_LIBS)

$(B)/tests/%: csrc/tests/%.c csrc/tests/mock_io.c csrc/tests/*.h $(CORE_O) $(LLHTTP_O) | $(B)/tests
	$(CC) $(ALL_CFLAGS) -Icsrc/tests -o $@ $< csrc/tests/mock_io.c $(CORE_O) $(LLHTTP_O) $(LLHTTP_LIBS)

$(B)/obj $(B)/lhyper $(B)/tests:
	mkdir -p $@

# ASan + UBSan build of the module and the C tests, then every suite
test-sanitize: deps
	@$(MAKE) --no-print-directory all tests
	@$(MAKE) --no-print-directory B=build-san SAN='-fsanitize=address,undefined -fno-omit-frame-pointer' CFLAGS='-O1 -g' all tests
	@sh scripts/test.sh

# used by `luarocks make rockspec/lhyper-scm-1.rockspec`
install: all
	mkdir -p $(INST_LIBDIR)/lhyper $(INST_LUADIR)/lhyper
	cp $(B)/lhyper/core.so $(INST_LIBDIR)/lhyper/core.so
	cp lua/lhyper/*.lua $(INST_LUADIR)/lhyper/

clean:
	rm -rf build build-san
