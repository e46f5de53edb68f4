#!/usr/bin/env bash
# bench/tlscount.sh - the cost of one keep-alive https request, lhyper beside
# nginx (same certificate, ciphers and OpenSSL, as bench/tls.sh sets them up),
# counted rather than timed, so a busy machine does not change the figures:
#   Ir        user-space instructions a request, OpenSSL's included
#             (valgrind --tool=callgrind)
#   syscalls  system calls a request by name (strace -c -f)
# Each server runs twice under the tool, serving WARM + N and WARM + 2N
# requests from h2load --h1 over C kept-alive connections (the handshakes,
# startup and shutdown cost the same in both), so
#     per request = (count(2N run) - count(N run)) / N.
#
# Env knobs: N (10000), WARM (1000), C (50: connections, as tls.sh's wrk -c50;
# C=1 for one connection), SERVERS ("lhyper nginx"), TOOLS ("callgrind strace"),
# KEY_TYPE (ec), TLS_VERSION (1.3, or 1.2: h2load held to it with CIPHERS).
# lhyper's shortcut switches (LHYPER_TLS_ONE_READ=0 ...) pass through.
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

N=${N:-10000}
WARM=${WARM:-1000}
C=${C:-50}
SERVERS=${SERVERS:-"lhyper nginx"}
TOOLS=${TOOLS:-"callgrind strace"}
KEY_TYPE=${KEY_TYPE:-ec}
TLS_VERSION=${TLS_VERSION:-1.3}
CIPHERS=${CIPHERS:-$TLS12_CIPHERS}
export READY_TIMEOUT=${READY_TIMEOUT:-60}
for t in openssl curl h2load $TOOLS; do
    [ "$t" = callgrind ] && t=valgrind
    command -v $t >/dev/null || { note "$t not installed"; exit 1; }
done
tls_cert "$KEY_TYPE" || exit 1
h2_tls=(); [ "$TLS_VERSION" = 1.2 ] && h2_tls=(--ciphers="$CIPHERS")

# one_run TOOL SERVER PORT COUNT: the server under TOOL for COUNT requests; OUT := its output file
one_run() {
    local tool=$1 s=$2 port=$3 count=$4 wrap pid log
    OUT=$WORK/$tool-$s-$count.out
    rm -f "$OUT"
    case $tool in
    callgrind) wrap=(valgrind --tool=callgrind --callgrind-out-file="$OUT" --dump-line=no --dump-instr=no) ;;
    strace) wrap=(strace -f -c -o "$OUT") ;;
    esac
    start_tls "$s" "$port" "${wrap[@]}" || return 1
    pid=$SERVER_PID
    log=$WORK/h2load-$s-$count.txt
    taskset -c "$CLIENT_CPU" timeout 300 h2load --h1 -n "$count" -c "$C" "${h2_tls[@]}" \
        "https://127.0.0.1:$port/" >"$log" 2>&1
    if ! grep -q "requests: $count total, $count started, $count done, $count succeeded" "$log"; then
        note "  $s: h2load failed: $(grep -E '^requests:|rror' "$log" | head -2)"
        stop_server "$pid"; return 1
    fi
    # strace's child is the server: it ends, then strace writes its summary
    if [ "$tool" = strace ]; then
        local kid
        for kid in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do kill -TERM "$kid" 2>/dev/null; done
    else
        kill -TERM "$pid" 2>/dev/null
    fi
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    stop_server "$pid"
    [ -s "$OUT" ]
}

ir_total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }
# syscall counts "name count" from an strace -c summary
sys_counts() { awk '(NF == 5 || NF == 6) && $NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { print $NF, $4 }' "$1"; }

declare -A IR SYS
i=0
for s in $SERVERS; do
    port=$((BASE_PORT + 120 + i)); i=$((i + 1))
    for tool in $TOOLS; do
        if ! one_run "$tool" "$s" "$port" $((WARM + N)); then note "  $s $tool failed"; continue; fi
        a=$OUT
        if ! one_run "$tool" "$s" "$port" $((WARM + 2 * N)); then note "  $s $tool failed"; continue; fi
        b=$OUT
        case $tool in
        callgrind)
            IR[$s]=$(awk -v a="$(ir_total "$a")" -v b="$(ir_total "$b")" -v n="$N" 'BEGIN { printf "%.0f", (b - a) / n }')
            note "  $s: ${IR[$s]} instructions a request" ;;
        strace)
            SYS[$s]=$(join -a1 -a2 -e0 -o 0,1.2,2.2 <(sys_counts "$a" | sort) <(sys_counts "$b" | sort) |
                awk -v n="$N" '{ d = ($3 - $2) / n; if (d >= 0.005) printf "%s %.2f, ", $1, d }' | sed 's/, $//')
            note "  $s: ${SYS[$s]}" ;;
        esac
    done
done

echo
echo "TLS $TLS_VERSION, $KEY_TYPE key, $(openssl version | cut -d' ' -f1-2), h2load --h1 -c $C, N=$N WARM=$WARM: $(date -u +%Y-%m-%dT%H:%MZ)"
for s in $SERVERS; do
    ratio=-
    if [ "$s" != nginx ] && [ -n "${IR[$s]:-}" ] && [ -n "${IR[nginx]:-}" ]; then
        ratio=$(awk -v a="${IR[$s]}" -v b="${IR[nginx]}" 'BEGIN { printf "%.3f", a / b }')
    fi
    printf '%-8s %10s Ir/request (x nginx %s)   syscalls/request: %s\n' "$s" "${IR[$s]:--}" "$ratio" "${SYS[$s]:--}"
done
