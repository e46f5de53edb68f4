#!/bin/sh
# Runs every suite (C unit tests, busted specs) and ends with one line
# "N passed, N failed" summing them; exits non-zero on any failure.
# B: build directory; SANITIZE=1: the module was built with ASan/UBSan.
B=${B:-build}
LUA=${LUA:-lua5.4}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0

for t in "$B"/tests/*; do
  [ -x "$t" ] || continue
  echo "== C: $(basename "$t")"
  "$t" > "$out/c.tap" 2> "$out/c.err"
  rc=$?
  cat "$out/c.tap"
  [ $rc -ne 0 ] && { status=1; cat "$out/c.err"; }
  cat "$out/c.tap" >> "$out/all.tap"
done

echo "== busted specs"
export LUA_PATH="lua/?.lua;lua/?/init.lua;spec/?.lua;;"
export LUA_CPATH="$B/?.so;;"
export LHYPER_BUILD="$B"
export LHYPER_SPEC_LUA_CPATH="$B/?.so;;"
if [ "${SANITIZE:-}" = 1 ]; then
  # the Lua interpreter is not instrumented: preload the runtime
  export LD_PRELOAD="$(${CC:-cc} -print-file-name=libasan.so) $(${CC:-cc} -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86"
  export LSAN_OPTIONS="suppressions=$(pwd)/scripts/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
busted_bin=$(command -v busted || echo /usr/bin/busted)
timeout 900 $LUA "$busted_bin" -o TAP ${BUSTED_ARGS:-} > "$out/b.tap" 2> "$out/b.err"
rc=$?
cat "$out/b.tap"
if [ $rc -ne 0 ]; then status=1; tail -50 "$out/b.err"; fi
if [ "${SANITIZE:-}" = 1 ] && grep -q "ERROR: \(Address\|Leak\)Sanitizer\|runtime error:" "$out/b.err"; then
  echo "# sanitizer reports:"; grep -A30 "ERROR: \(Address\|Leak\)Sanitizer\|runtime error:" "$out/b.err" | head -80
  echo "not ok - sanitizer clean" >> "$out/b.tap"
  status=1
fi
cat "$out/b.tap" >> "$out/all.tap"

skipped=$(grep -c '^ok .*# *SKIP' "$out/all.tap")
passed=$(( $(grep -c '^ok ' "$out/all.tap") - skipped ))
failed=$(grep -c '^not ok ' "$out/all.tap")
[ "$failed" -gt 0 ] && status=1
[ "$passed" -eq 0 ] && status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
