#!/usr/bin/env bash
# bench/callgrind.sh - user-space instructions per hello request (valgrind callgrind).
# Each server runs twice under callgrind: WARM + N and WARM + 2N keep-alive requests
# over one connection (bench/hclient.c, one request at a time, or DEPTH requests
# written at once when DEPTH > 1: the pipelined path), or with CLOSE=1 as many
# connections, one after another, each with one "Connection: close" request.  Startup, warm-up
# and shutdown cost the same in both runs, so
#     Ir per request = (Ir(2N run) - Ir(N run)) / N.
# Kernel work (syscalls) is not counted: callgrind sees user space only.
#
# Env knobs: N (2000), WARM (200), DEPTH (1), CLOSE (0), SERVERS ("ceiling lhyper nginx openresty"),
# APP (hello; APP=layered SERVERS=lhyper: bench/layered.lua, router and layers),
# VARIANTS (lhyper handlers from bench/hello.lua: "hello cl path" runs lhyper@hello,
# lhyper@cl and lhyper@path in place of lhyper; "all" is every one), TARGET ("/":
# the request target, e.g. "/?q=1"; not with CLOSE=1).
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

N=${N:-2000}
WARM=${WARM:-200}
DEPTH=${DEPTH:-1}
CLOSE=${CLOSE:-0}
SERVERS=${SERVERS:-"ceiling lhyper nginx openresty"}
TARGET=${TARGET:-/}
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
    start_server "$s" "$port" "${APP:-hello}" valgrind --tool=callgrind --callgrind-out-file="$out" \
        --dump-line=no --dump-instr=no || return 1
    pid=$SERVER_PID
    local mode=(seq "$port" $((WARM + count)) "$TARGET")
    [ "$DEPTH" -gt 1 ] && mode=(pipe "$port" $((WARM + count)) "$DEPTH" "$TARGET")
    [ "$CLOSE" = 1 ] && mode=(close "$port" $((WARM + count)))
    if ! taskset -c "$CLIENT_CPU" timeout 120 "$WORK/hclient" "${mode[@]}" >/dev/null; then
        note "  $s: client failed"; stop_server "$pid"; return 1
    fi
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    stop_server "$pid"
    IR=$(awk '/^(summary|totals):/ { print $2; exit }' "$out" 2>/dev/null)
}

rows=()
port=$((BASE_PORT + 80))
for s in $SERVERS; do
    why=$(unavailable "$s")
    if [ -n "$why" ]; then note "skip $s: $why"; rows+=("$(printf '%-16s skipped: %s' "$s" "$why")"); continue; fi
    # a run cut short on a loaded machine (its server killed before callgrind
    # wrote its totals) shows as a missing or smaller count: measured again once
    for try in 1 2; do
        port=$((port + 1)); total_ir "$N" "$s" "$port"; a=$IR
        port=$((port + 1)); total_ir $((2 * N)) "$s" "$port"; b=$IR
        [ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ] && break
        note "  $s: Ir '$a' (N), '$b' (2N): run $try failed"
        a=
    done
    if [ -z "$a" ]; then rows+=("$(printf '%-16s failed (see %s)' "$s" "$WORK")"); continue; fi
    per=$(( (b - a) / N ))
    note "  $s: Ir $a (N=$N), $b (2N) -> $per per request"
    rows+=("$(printf '%-16s %16s %16s %14s' "$s" "$a" "$b" "$per")")
done

echo
what="keep-alive GET $TARGET over one connection, one at a time"
[ "$DEPTH" -gt 1 ] && what="keep-alive GET $TARGET over one connection, $DEPTH pipelined per write"
[ "$CLOSE" = 1 ] && what="GET / with Connection: close, one connection each"
echo "callgrind, $what: $(date -u +%Y-%m-%dT%H:%MZ), warm-up $WARM, N=$N"
printf '%-16s %16s %16s %14s\n' server "Ir (warm+N)" "Ir (warm+2N)" "Ir / request"
printf '%s\n' "${rows[@]}"
