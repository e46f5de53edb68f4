#!/bin/sh
# Checks the dependency rule of csrc/README.md: core <- uv <- lua, never
# upward. Fails (exit 1, one line per breach) when
#   a csrc/core file includes uv.h, lua.h, lauxlib.h, lualib.h or a header
#   of csrc/uv or csrc/lua;
#   a csrc/uv file includes lua.h, lauxlib.h, lualib.h or a header of
#   csrc/lua;
#   a csrc/uv header other than uvloop.h includes uv.h (the binding sees
#   the libuv layer through headers free of libuv).
# Run from the repository root, or give the root as $1.
cd "${1:-.}" || exit 1
bad=0

# includes FILE: the names in its #include lines, one per line
includes() {
  sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]\([^">]*\)[">].*/\1/p' "$1"
}

breach() { # file, included name, why
  echo "check-layers: $1 includes $2 ($3)"
  bad=1
}

for f in csrc/core/*.[ch]; do
  for h in $(includes "$f"); do
    case "$h" in
      uv.h|uv/*|lua.h|lauxlib.h|lualib.h) breach "$f" "$h" "the core knows neither libuv nor Lua" ;;
    esac
    if [ -e "csrc/uv/$h" ] || [ -e "csrc/lua/$h" ]; then
      breach "$f" "$h" "a header of a layer above the core"
    fi
  done
done

for f in csrc/uv/*.[ch]; do
  for h in $(includes "$f"); do
    case "$h" in
      lua.h|lauxlib.h|lualib.h) breach "$f" "$h" "the libuv layer knows no Lua" ;;
    esac
    if [ -e "csrc/lua/$h" ]; then breach "$f" "$h" "a header of the binding, above the libuv layer"; fi
    case "$f" in
      *.h) if [ "$h" = uv.h ] && [ "$f" != csrc/uv/uvloop.h ]; then
             breach "$f" "$h" "only uvloop.h, which the binding does not include, pulls in uv.h"
           fi ;;
    esac
  done
done

if [ $bad = 0 ]; then echo "check-layers: core <- uv <- lua holds"; fi
exit $bad
