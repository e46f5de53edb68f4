#!/usr/bin/env bash
# bench/objcost.sh - the Lua object model's own costs, which any server
# whose req is a userdata pays: user-space instructions per
#   table     x = t.path on a plain table
#   udata     x = u.path on a userdata whose __index is a C function
#   checked   the same, the __index checking its argument and making the string
#   new       u = objcost.new(): a userdata with a metatable, made and collected
#   table_req a table req made whole (method, target, path, headers = { host })
#             from bytes, and collected: what a req of plain fields costs
# Each runs N and 2N times in lua5.4 under callgrind; the difference over N is
# the figure (the loop's own few instructions included). Knobs: N (100000).
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

N=${N:-100000}
command -v valgrind >/dev/null || { note "valgrind not installed (apt-get install valgrind)"; exit 1; }
# shellcheck disable=SC2046 # pkg-config's flags are words
cc -O2 -Wall -shared -fPIC $(pkg-config --cflags lua5.4 2>/dev/null) -o "$WORK/objcost.so" \
    "$BENCH_DIR/objcost.c" || { note "cannot build bench/objcost.c (liblua5.4-dev)"; exit 1; }
cat >"$WORK/objcost_run.lua" <<'LUA'
local objcost = require "objcost"
local n, mode = tonumber(arg[1]), arg[2]
local t, u, x = { path = "/" }, mode == "checked" and objcost.new_checked() or objcost.new()
if mode == "table" then for _ = 1, n do x = t.path end
elseif mode == "new" then for _ = 1, n do x = objcost.new() end
elseif mode == "table_req" then local make = objcost.table_req; for _ = 1, n do x = make() end
else for _ = 1, n do x = u.path end end
LUA

ir() { # MODE COUNT: total instructions
    (cd "$WORK" && LUA_CPATH="./?.so" valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-$1-$2.out" \
        lua5.4 objcost_run.lua "$2" "$1" >"$WORK/cg-$1-$2.log" 2>&1) || { cat "$WORK/cg-$1-$2.log" >&2; return 1; }
    awk '/^(summary|totals):/ { print $2; exit }' "$WORK/cg-$1-$2.out"
}

echo "Lua object model costs, user-space instructions per operation: $(date -u +%Y-%m-%dT%H:%MZ), N=$N"
for mode in table udata checked new table_req; do
    if ! a=$(ir "$mode" "$N") || ! b=$(ir "$mode" $((2 * N))); then
        printf '%-8s failed\n' "$mode"
        continue
    fi
    printf '%-8s %6d\n' "$mode" $(( (b - a) / N ))
done
