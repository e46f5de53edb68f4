#!/usr/bin/env bash
# bench/callgrind.sh - user-space instructions per hello request (valgrind callgrind).
# Each server runs twice under callgrind: WARM + N and WARM + 2N keep-alive requests
# over one connection (bench/hclient.c, one request at a time, or DEPTH requests
# written at once when DEPTH > 1: the pipelined path), or with CLOSE=1 as many
# connections, one after another, each with one "Connection: close" request, or with
# UPLOAD=SIZE as many "POST /up" requests with a chunked body of SIZE bytes in chunks
# of CHUNK bytes (bench/stream.lua reads the body with req:body()).  Startup, warm-up
# and shutdown cost the same in both runs, so
#     Ir per request = (Ir(2N run) - Ir(N run)) / N.
# Kernel work (syscalls) is not counted: callgrind sees user space only.
#
# Env knobs: N (2000), WARM (200), DEPTH (1), CLOSE (0), SERVERS ("ceiling lhyper nginx openresty"),
# APP (hello; APP=layered SERVERS=lhyper: bench/layered.lua, router and layers),
# UPLOAD (unset), CHUNK (16384): UPLOAD sets APP=stream and SERVERS=lhyper.
# VARIANTS (lhyper handlers from bench/hello.lua: "hello cl path" runs lhyper@hello,
# lhyper@cl and lhyper@path in place of lhyper; "all" is every one), TARGET ("/":
# the request target, e.g. "/?q=1"; not with CLOSE=1), REPEAT (1: each server measured
# so many times, the median shown; a count moves by a few per cent from run to run,
# as Lua's string hashes are seeded anew and the collector's cycles fall differently).
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

N=${N:-2000}
WARM=${WARM:-200}
DEPTH=${DEPTH:-1}
CLOSE=${CLOSE:-0}
UPLOAD=${UPLOAD:-}
CHUNK=${CHUNK:-16384}
APP=${APP:-hello}
if [ -n "$UPLOAD" ]; then
    APP=stream
    SERVERS=${SERVERS:-lhyper}
fi
SERVERS=${SERVERS:-"ceiling lhyper nginx openresty"}
TARGET=${TARGET:-/}
REPEAT=${REPEAT:-1}
VARIANTS=${VARIANTS:-}
ALL_VARIANTS="hello cl cl_num path query header headers3 cookie number table fields3 table3 app"
[ "$VARIANTS" = all ] && VARIANTS=$ALL_VARIANTS
if [ -n "$VARIANTS" ]; then
    list=
    for s in $SERVERS; do
        if [ "$s" = lhyper ]; then for v in $VARIANTS; do list="$list lhyper@$v"; done
        else list="$list $s"; fi
    done
    SERVERS=$list
fi
command -v valgrind >/dev/null || { note "valgrind not installed (apt-get install valgrind)"; exit 1; }
build_tools || { note "cannot build bench tools"; exit 1; }
export NGINX_MAIN_EXTRA="master_process off;"   # one process, so callgrind sees the worker
export READY_TIMEOUT=60

# total_ir COUNT SERVER PORT: run SERVER under callgrind for WARM+COUNT requests; IR := total Ir.
total_ir() {
    local count=$1 s=$2 port=$3 out pid
    IR=
    out=$WORK/callgrind-$s-$count.out
    rm -f "$out"
    start_server "$s" "$port" "$APP" valgrind --tool=callgrind --callgrind-out-file="$out" \
        --dump-line=no --dump-instr=no || return 1
    pid=$SERVER_PID
    local mode=(seq "$port" $((WARM + count)) "$TARGET")
    [ "$DEPTH" -gt 1 ] && mode=(pipe "$port" $((WARM + count)) "$DEPTH" "$TARGET")
    [ "$CLOSE" = 1 ] && mode=(close "$port" $((WARM + count)))
    [ -n "$UPLOAD" ] && mode=(upload "$port" $((WARM + count)) "$UPLOAD" "$CHUNK")
    if ! taskset -c "$CLIENT_CPU" timeout 120 "$WORK/hclient" "${mode[@]}" >/dev/null; then
        note "  $s: client failed"; stop_server "$pid"; return 1
    fi
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    stop_server "$pid"
    IR=$(awk '/^(summary|totals):/ { print $2; exit }' "$out" 2>/dev/null)
}

# measure SERVER: sets PER (Ir per request), A and B (the two totals); 1 if it failed
measure() {
    local s=$1 try
    # a run cut short on a loaded machine (its server killed before callgrind
    # wrote its totals) shows as a missing or smaller count: measured again once
    for try in 1 2; do
        port=$((port + 1)); total_ir "$N" "$s" "$port"; A=$IR
        port=$((port + 1)); total_ir $((2 * N)) "$s" "$port"; B=$IR
        if [ -n "$A" ] && [ -n "$B" ] && [ "$B" -gt "$A" ]; then
            PER=$(( (B - A) / N ))
            note "  $s: Ir $A (N=$N), $B (2N) -> $PER per request"
            return 0
        fi
        note "  $s: Ir '$A' (N), '$B' (2N): run $try failed"
    done
    return 1
}

rows=()
port=$((BASE_PORT + 80))
for s in $SERVERS; do
    why=$(unavailable "$s")
    if [ -n "$why" ]; then note "skip $s: $why"; rows+=("$(printf '%-16s skipped: %s' "$s" "$why")"); continue; fi
    pers=()
    for _ in $(seq 1 "$REPEAT"); do measure "$s" && pers+=("$PER"); done
    if [ ${#pers[@]} = 0 ]; then rows+=("$(printf '%-16s failed (see %s)' "$s" "$WORK")"); continue; fi
    if [ "$REPEAT" = 1 ]; then
        rows+=("$(printf '%-16s %16s %16s %14s' "$s" "$A" "$B" "$PER")")
    else
        read -r med lo hi < <(printf '%s\n' "${pers[@]}" | sort -n | awk '{ a[NR] = $1 }
            END { printf "%d %d %d\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2, a[1], a[NR] }')
        rows+=("$(printf '%-16s %14s %16s %8s' "$s" "$med" "$lo - $hi" "${#pers[@]}")")
    fi
done

echo
what="keep-alive GET $TARGET over one connection, one at a time"
[ "$DEPTH" -gt 1 ] && what="keep-alive GET $TARGET over one connection, $DEPTH pipelined per write"
[ "$CLOSE" = 1 ] && what="GET / with Connection: close, one connection each"
[ -n "$UPLOAD" ] && what="POST /up with a $UPLOAD-byte chunked body in $CHUNK-byte chunks, keep-alive"
echo "callgrind, $what: $(date -u +%Y-%m-%dT%H:%MZ), warm-up $WARM, N=$N"
if [ "$REPEAT" = 1 ]; then
    printf '%-16s %16s %16s %14s\n' server "Ir (warm+N)" "Ir (warm+2N)" "Ir / request"
else
    printf '%-16s %14s %16s %8s\n' server "Ir / request" "lowest - highest" "runs"
fi
printf '%s\n' "${rows[@]}"
