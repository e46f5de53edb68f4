#!/bin/sh
# Runs every suite and ends with one line "N passed, N failed" summing them;
# exits non-zero on any failure. Suites, each as TAP:
#   C unit tests and busted specs against build/ (the normal build), the
#   specs again with every shortcut switched off,
#   the same against build-san/ (ASan + UBSan), when it was built,
#   server specs under valgrind memcheck, when VALGRIND=1,
#   every libFuzzer target for a few seconds, when FUZZ_SMOKE=1.
LUA=${LUA:-lua5.4}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
t0=$(date +%s)
since() { echo "$(( $(date +%s) - t0 )) s"; } # for the suite's 15-minute budget
busted_bin=$(command -v busted || echo /usr/bin/busted)
: > "$out/all.tap"

c_tests() { # $1: build dir
  for t in "$1"/tests/*; do
    [ -x "$t" ] || continue
    echo "== C: $t"
    "$t" > "$out/c.tap" 2> "$out/c.err"
    rc=$?
    cat "$out/c.tap"
    if [ $rc -ne 0 ]; then status=1; cat "$out/c.err"; fi
    if grep -q "ERROR: AddressSanitizer\|runtime error:" "$out/c.err"; then
      echo "not ok - sanitizer clean: $t" >> "$out/c.tap"; status=1
    fi
    cat "$out/c.tap" >> "$out/all.tap"
  done
}

specs() { # $1: build dir, $2: label, rest: busted arguments
  b=$1; label=$2; shift 2
  echo "== busted specs ($label), at $(since)"
  (
    export LUA_PATH="lua/?.lua;lua/?/init.lua;spec/?.lua;;"
    export LUA_CPATH="$b/?.so;;"
    export LHYPER_SPEC_LUA_CPATH="$b/?.so;;"
    timeout 900 $LUA "$busted_bin" -o TAP --cpath="$b/?.so" "$@"
  ) > "$out/b.tap" 2> "$out/b.err"
  rc=$?
  cat "$out/b.tap"
  if [ $rc -ne 0 ]; then status=1; tail -50 "$out/b.err"; fi
  # valgrind -q prints errors only, each headed "==pid== <What>" (no summary)
  mem_err="ERROR: \(Address\|Leak\)Sanitizer\|runtime error:\|ERROR SUMMARY: [1-9]\|definitely lost\|^==[0-9]*== [A-VX-Z]"
  if grep -q "$mem_err" "$out/b.err"; then
    echo "# memory error reports:"
    grep -B2 -A30 "$mem_err" "$out/b.err" | head -80
    echo "not ok - $label: no memory errors" >> "$out/b.tap"
    status=1
  fi
  cat "$out/b.tap" >> "$out/all.tap"
}

c_tests build
specs build normal
# every shortcut off (csrc/core/tuning.h): the plain paths pass the same
# specs, but for those about other programs more than about lhyper's paths
# (#peers: a browser, Node's and Python's https clients), those whose code
# takes no shortcut or whose switches the C tests take each way (#offpath:
# the WebSocket codec's conformance, worker processes, compression, static
# files; TLS, whose two switches test_tls runs in all four combinations)
# and the balancer runs (#nosan: minutes of restarts), which the normal
# pass runs; the budget of the whole suite is 15 minutes on 2 cores
LHYPER_FAST_HEAD=0 LHYPER_KEPT_HEADS=0 LHYPER_KEPT_VALUES=0 LHYPER_NEXT_MSG=0 LHYPER_DOZE=0 LHYPER_FAST_CLOSE=0 \
LHYPER_ALLOC_CACHE=0 LHYPER_ROUTER_C=0 LHYPER_TLS_ONE_READ=0 LHYPER_TLS_KEEP_BUFFERS=0 LHYPER_FAST_LAYERS=0 \
specs build "shortcuts off" --exclude-tags=nosan,peers,offpath

if [ -f build-san/lhyper/core.so ] && [ "${SANITIZE:-1}" = 1 ]; then
  c_tests build-san
  # the Lua interpreter is not instrumented: servers get the runtime preloaded
  cc=${CC:-cc}
  LHYPER_SPEC_PRELOAD="$($cc -print-file-name=libasan.so) $($cc -print-file-name=libubsan.so)" \
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86" \
  LSAN_OPTIONS="suppressions=$(pwd)/scripts/lsan.supp:print_suppressions=0" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    specs build-san "ASan+UBSan" --exclude-tags=nosan,peers
fi

if [ "${VALGRIND:-0}" = 1 ] && command -v valgrind >/dev/null; then
  LHYPER_SPEC_WRAP="valgrind -q --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite" \
    specs build valgrind spec/basics_spec.lua spec/pipelining_spec.lua spec/request_body_spec.lua \
      spec/malformed_spec.lua spec/smuggling_spec.lua spec/upgrade_spec.lua spec/errors_spec.lua \
      spec/expect_spec.lua spec/trailers_spec.lua spec/cancel_spec.lua spec/drain_spec.lua \
      spec/response_spec.lua spec/http10_spec.lua spec/content_length_spec.lua \
      spec/router_spec.lua spec/layers_spec.lua spec/limit_layers_spec.lua spec/server_drain_spec.lua \
      spec/websocket_spec.lua spec/websocket_client_spec.lua \
      spec/router_ws_spec.lua spec/tls_spec.lua
    # not here, for the suite's 15 minutes (the normal and ASan passes run
    # them): websocket_shutdown (grace periods, ~14 s under valgrind; the ws
    # close path runs in websocket_spec) and websocket_tls (~10 s; TLS runs
    # in tls_spec, WebSocket in websocket_spec) and websocket_cancel (~30 s
    # of grace periods and sleeps; the ws cancel paths run under ASan)
fi

if [ "${FUZZ_SMOKE:-0}" = 1 ]; then
  # each fuzzer for FUZZ_SMOKE_SECONDS (2 s; about 15 s in all), so that none rots
  echo "== fuzz smoke, at $(since)"
  make --no-print-directory fuzz-smoke > "$out/f.tap" 2>&1 || status=1
  cat "$out/f.tap"
  cat "$out/f.tap" >> "$out/all.tap"
fi

skipped=$(grep -c '^ok .*# *SKIP' "$out/all.tap")
passed=$(( $(grep -c '^ok ' "$out/all.tap") - skipped ))
failed=$(grep -c '^not ok ' "$out/all.tap")
[ "$failed" -gt 0 ] && status=1
[ "$passed" -eq 0 ] && status=1
[ "$skipped" -gt 0 ] && echo "($skipped skipped)"
echo "(suites ran $(since))"
echo "$passed passed, $failed failed"
exit $status
