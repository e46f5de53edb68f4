#!/usr/bin/env bash
# bench/shapes.sh - what each handler shape of bench/hello.lua costs, and how
# much of that is lhyper's. For each VARIANT:
#   server   user-space instructions per request of lhyper@VARIANT
#            (bench/callgrind.sh: keep-alive, or DEPTH pipelined per write)
#   handler  the same handler called on a plain table standing for the req,
#            with no server (bench/shapes_own.lua under callgrind, N and 2N
#            calls): the handler's own Lua, which any server running it pays
#   lhyper   server - handler: what lhyper does for the request
#   vs hello lhyper's part beside the README hello's (hello's own handler
#            subtracted the same way)
# Deterministic (instruction counts), so it runs on a busy machine; a count
# still moves by a few per cent from run to run (string hash seeds, collector
# cycles).
#
# Env knobs: VARIANTS ("hello cl cl_num path query header headers3 cookie number
# table fields3 table3 app"; hello is always measured first), DEPTH (1), N (2000),
# WARM (200).
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

ALL="hello cl cl_num path query header headers3 cookie number table fields3 table3 app"
VARIANTS=${VARIANTS:-$ALL}
DEPTH=${DEPTH:-1}
N=${N:-2000}
WARM=${WARM:-200}
list="hello"
for v in $VARIANTS; do [ "$v" = hello ] || list="$list $v"; done

command -v valgrind >/dev/null || { note "valgrind not installed (apt-get install valgrind)"; exit 1; }

# own VARIANT: OWN := the handler's own instructions per call
own() {
    local v=$1 n a b
    for n in "$N" $((2 * N)); do
        (cd "$REPO_DIR" && VARIANT=$v valgrind --tool=callgrind --callgrind-out-file="$WORK/own-$v-$n.out" \
            --dump-line=no --dump-instr=no lua5.4 bench/shapes_own.lua "$n" >/dev/null 2>&1) || return 1
    done
    a=$(awk '/^(summary|totals):/ { print $2; exit }' "$WORK/own-$v-$N.out")
    b=$(awk '/^(summary|totals):/ { print $2; exit }' "$WORK/own-$v-$((2 * N)).out")
    OWN=$(( (b - a) / N ))
}

note "server side: bench/callgrind.sh (SERVERS=lhyper VARIANTS=\"$list\" DEPTH=$DEPTH N=$N)"
SERVERS=lhyper VARIANTS="$list" DEPTH=$DEPTH N=$N WARM=$WARM bash "$BENCH_DIR/callgrind.sh" >"$WORK/server.txt" || {
    note "callgrind.sh failed"; cat "$WORK/server.txt" >&2; exit 1; }

rows=()
base=
for v in $list; do
    per=$(awk -v s="lhyper@$v" '$1 == s && $4 ~ /^[0-9]+$/ { print $4 }' "$WORK/server.txt")
    if [ -z "$per" ]; then rows+=("$(printf '%-10s failed (server)' "$v")"); continue; fi
    if ! own "$v"; then rows+=("$(printf '%-10s failed (handler alone)' "$v")"); continue; fi
    part=$((per - OWN))
    [ "$v" = hello ] && base=$part
    rows+=("$(printf '%-10s %8s %8s %8s %+9d' "$v" "$per" "$OWN" "$part" $((part - ${base:-$part})))")
done

what="keep-alive, one request at a time"
[ "$DEPTH" -gt 1 ] && what="$DEPTH pipelined per write"
echo
echo "handler shapes, user-space instructions per request ($what): $(date -u +%Y-%m-%dT%H:%MZ), N=$N"
printf '%-10s %8s %8s %8s %9s\n' variant server handler lhyper "vs hello"
printf '%s\n' "${rows[@]}"
