#!/usr/bin/env bash
# bench/all.sh - every comparison of bench/README.md's results table in one
# run, each part bounded in time, for a quiet machine: the figures of one
# run belong together. Each part is one of the bench scripts with settings
# chosen to fit the budget; a part whose script is not there (yet) is
# skipped with a note. Every part's table goes to stdout with the command
# that made it, and to OUT/<part>.txt (its progress lines to OUT/<part>.log).
#
# Parts (PARTS, in this order by default):
#   run       bench/run.sh: keep-alive, pipelined, Connection: close and 1,000
#             connections; lhyper (README hello), lhyper@cl, nginx, OpenResty,
#             Node and the ceiling
#   variants  bench/run.sh REF=lhyper: keep-alive and pipelined for lhyper's
#             handler shapes (bench/hello.lua VARIANT) beside the README hello
#   cpu       bench/cpu.sh: server CPU us per request at RATE req/s
#   layers    bench/layers.sh: router + LAYERS against the bare handler
#   ws        bench/ws.sh: WebSocket echo against Node ws and OpenResty
#   tls       bench/tls.sh: https keep-alive and handshakes against nginx
#   workers   bench/workers.sh: 1 and 2 workers against nginx's
# Not by default (PARTS="... callgrind idle stream"): callgrind (instruction
# counts per handler shape; deterministic, so they need no quiet machine),
# idle (RSS per idle connection), stream (1 GiB through body iterators).
#
# Env knobs: PARTS, OUT (a new directory under /tmp), BUDGET seconds for the
# whole run (1200: a part that would end past it is skipped; about 1,000 s
# for the default parts on the project's 2-core VM), RATE (60000,
# for cpu), LAYERS ("request_id,access_log,timeout": issue 19's three layers), and each
# script's own knobs, which pass through (SERVER_CPU, CLIENT_CPU, ...).
# A smoke run: QUICK=1 bench/all.sh (every part at its shortest).
set -u
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PARTS=${PARTS:-"run variants cpu layers ws tls workers"}
OUT=${OUT:-$(mktemp -d /tmp/lhyper-all.XXXXXX)}
BUDGET=${BUDGET:-1200}
RATE=${RATE:-60000}
LAYERS=${LAYERS:-request_id,access_log,timeout}
QUICK=${QUICK:-0}
mkdir -p "$OUT"

note() { printf '%s\n' "$*" >&2; }

# part NAME -> sets SCRIPT, ENVS (array of VAR=value) and EST, about the
# seconds it takes (on the 2-core VM); it is cut at 2 x EST + 30
part() {
    SCRIPT= ENVS=() EST=0
    case $1 in
    run) SCRIPT=run.sh
        ENVS=(ROUNDS=3 DURATION=3 SERVERS="ceiling lhyper lhyper@cl lhyper_pf nginx openresty node")
        EST=250 ;;
    variants) SCRIPT=run.sh
        ENVS=(ROUNDS=3 DURATION=3 REF=lhyper SCENARIOS="keepalive pipeline16"
              SERVERS="lhyper lhyper@cl lhyper@cl_num lhyper@path lhyper@query lhyper@header lhyper@cookie lhyper@number lhyper@table")
        EST=180 ;;
    cpu) SCRIPT=cpu.sh
        ENVS=(ROUNDS=3 DURATION=8 RATE="$RATE")
        EST=170 ;;
    layers) SCRIPT=layers.sh
        ENVS=(ROUNDS=3 DURATION=5 LAYERS="$LAYERS")
        EST=45 ;;
    ws) SCRIPT=ws.sh
        ENVS=(ROUNDS=1 DURATION=5 IDLE_N=5000)
        EST=90 ;;
    tls) SCRIPT=tls.sh
        ENVS=(ROUNDS=3 DURATION=5 SIZE=268435456)
        EST=100 ;;
    workers) SCRIPT=workers.sh
        ENVS=(ROUNDS=3 DURATION=5)
        EST=130 ;;
    callgrind) SCRIPT=callgrind.sh
        ENVS=(SERVERS="ceiling lhyper nginx openresty" VARIANTS="hello cl cl_num path query header cookie number table")
        EST=400 ;;
    idle) SCRIPT=idle.sh; ENVS=(IDLE_N=5000); EST=60 ;;
    stream) SCRIPT=stream.sh; ENVS=(ROUNDS=3); EST=120 ;;
    *) return 1 ;;
    esac
    if [ "$QUICK" = 1 ]; then
        quick ROUNDS=1 DURATION=1 WARMUP=0 SIZE=16777216 IDLE_N=200 N=200 WARM=50
        if [ "$1" = cpu ]; then quick RATE=2000 CONNS=10; fi
    fi
    return 0
}

# quick VAR=value...: each replaces the part's setting of VAR, or is added
quick() {
    local kv i found
    for kv in "$@"; do
        found=0
        for i in "${!ENVS[@]}"; do
            if [ "${ENVS[$i]%%=*}" = "${kv%%=*}" ]; then ENVS[$i]=$kv; found=1; fi
        done
        [ $found = 1 ] || ENVS+=("$kv")
    done
}

start=$(date +%s)
{
    echo "lhyper bench/all.sh: $(date -u +%Y-%m-%dT%H:%MZ), parts: $PARTS"
    echo "machine: $(nproc) CPUs, $(uname -srm), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
    echo "commit: $(git -C "$BENCH_DIR/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"
} | tee "$OUT/summary.txt"
for p in $PARTS; do
    if ! part "$p"; then note "unknown part $p"; continue; fi
    if [ ! -x "$BENCH_DIR/$SCRIPT" ] && [ ! -f "$BENCH_DIR/$SCRIPT" ]; then
        echo | tee -a "$OUT/summary.txt"
        echo "== $p: skipped, bench/$SCRIPT is not there yet" | tee -a "$OUT/summary.txt"
        continue
    fi
    used=$(($(date +%s) - start))
    if [ $((used + EST)) -gt "$BUDGET" ] && [ "$QUICK" != 1 ]; then
        echo | tee -a "$OUT/summary.txt"
        echo "== $p: skipped, ${used}s used and it takes about ${EST}s of a ${BUDGET}s budget" | tee -a "$OUT/summary.txt"
        continue
    fi
    LIMIT=$((2 * EST + 30))
    cmd="env"
    for e in "${ENVS[@]}"; do cmd="$cmd ${e%%=*}='${e#*=}'"; done
    cmd="$cmd bench/$SCRIPT"
    note "== $p: $cmd (at most ${LIMIT}s)"
    t0=$(date +%s)
    env "${ENVS[@]}" timeout -k 10 "$LIMIT" bash "$BENCH_DIR/$SCRIPT" >"$OUT/$p.txt" 2>"$OUT/$p.log"
    rc=$?
    {
        echo
        echo "== $p: $cmd ($(($(date +%s) - t0))s$([ $rc = 0 ] || echo ", exit $rc$([ $rc = 124 ] && echo ": cut at ${LIMIT}s")"))"
        cat "$OUT/$p.txt"
    } | tee -a "$OUT/summary.txt"
done
echo | tee -a "$OUT/summary.txt"
echo "all parts done in $(($(date +%s) - start))s; tables in $OUT/summary.txt, progress lines in $OUT/*.log" | tee -a "$OUT/summary.txt"
