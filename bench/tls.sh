#!/usr/bin/env bash
# bench/tls.sh - lhyper over TLS beside nginx, same certificate, same TLS 1.2
# ciphers, same OpenSSL (both link the system's libssl), in the same run:
#   handshakes  new TLS connections per second (openssl s_time -new, one
#               GET / each), and per server core
#   keepalive   https req/s with wrk -t1 -c50 over kept-alive connections,
#               and per server core
#   down        SIZE bytes over one https connection (curl), MB/s; lhyper
#               streams from a body iterator, nginx sends a file
#   up          SIZE bytes uploaded to lhyper (nginx has no body sink
#               without modules), MB/s
# Servers pinned to SERVER_CPU, clients to CLIENT_CPU. "per core" = rate /
# (server CPU share), the server's utime+stime from /proc over the run.
#
# Env knobs: ROUNDS (3), DURATION seconds (10), SIZE (1073741824), SERVERS
# ("lhyper nginx"), TESTS ("handshakes keepalive down up"), KEY_TYPE (ec:
# P-256, or rsa: 2048 bits), TLS_VERSION (1.3 or 1.2: s_time and wrk are held
# to it through their OpenSSL options where they have them).
# Smoke: ROUNDS=1 DURATION=2 SIZE=104857600 bench/tls.sh
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
SIZE=${SIZE:-1073741824}
SERVERS=${SERVERS:-"lhyper nginx"}
TESTS=${TESTS:-"handshakes keepalive down up"}
KEY_TYPE=${KEY_TYPE:-ec}
TLS_VERSION=${TLS_VERSION:-1.3}
TMO=${STREAM_TIMEOUT:-180}
# lhyper's default TLS 1.2 list, given to nginx too (TLS 1.3 suites: OpenSSL's default for both)
CIPHERS=${CIPHERS:-$TLS12_CIPHERS}
for t in openssl curl wrk; do command -v $t >/dev/null || { note "$t not installed"; exit 1; }; done

# --- the certificate, made for this run (lib.sh) ---
tls_cert "$KEY_TYPE" || exit 1
# a sparse file for nginx to send: no disk I/O
truncate -s "$SIZE" "$WORK/down.bin"
cat "$WORK/down.bin" >/dev/null

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# per_core RATE TICKS NS: rate / (cpu share)
per_core() { awk -v r="$1" -v t="$2" -v ns="$3" -v hz="$CLK_TCK" 'BEGIN { s = t / hz / (ns / 1e9); if (s <= 0) print "-"; else printf "%.0f", r / s }'; }
cpu_pct() { awk -v t="$1" -v ns="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", 100 * t / hz / (ns / 1e9) }'; }

s_time_ver=(-tls1_3); [ "$TLS_VERSION" = 1.2 ] && s_time_ver=(-tls1_2 -cipher "$CIPHERS")

declare -A PORT PID R
RUNNING=()
i=0
for s in $SERVERS; do
    why=$(unavailable "$s")
    if [ -n "$why" ]; then note "skip $s: $why"; continue; fi
    port=$((BASE_PORT + 90 + i)); i=$((i + 1))
    if start_tls "$s" "$port"; then PORT[$s]=$port; PID[$s]=$SERVER_PID; RUNNING+=("$s")
    else note "skip $s: failed to start"; fi
done
[ ${#RUNNING[@]} -gt 0 ] || { note "no server available"; exit 1; }

# measure TEST SERVER: appends "rate per_core cpu%" to R[TEST,SERVER]
measure() {
    local t=$1 s=$2 port=${PORT[$2]} pid=${PID[$2]} t0 c0 ns ticks rate out
    t0=$(now_ns); c0=$(cpu_ticks "$pid")
    case $t in
    handshakes)
        out=$(taskset -c "$CLIENT_CPU" timeout -k 2 $((DURATION + 20)) openssl s_time -connect "127.0.0.1:$port" \
            -new -time "$DURATION" -www / "${s_time_ver[@]}" 2>&1)
        # "N connections in T real seconds": N over our own wall clock (T is whole seconds)
        rate=$(echo "$out" | awk -v ns="$(( $(now_ns) - t0 ))" '/connections in [0-9]+ real seconds/ { printf "%.0f", $1 / (ns / 1e9); exit }') ;;
    keepalive)
        out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c50 -d"${DURATION}s" --timeout 5s "https://127.0.0.1:$port/" 2>&1)
        rate=$(echo "$out" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
        echo "$out" | grep -q "Non-2xx\|Socket errors" && note "  $s keepalive: $(echo "$out" | grep "Non-2xx\|Socket errors")" ;;
    down)
        out=$(taskset -c "$CLIENT_CPU" timeout -k 2 "$TMO" curl -sk -o /dev/null \
            -w '%{http_code} %{size_download} %{speed_download}' "https://127.0.0.1:$port/down?n=$SIZE")
        set -- $out
        [ "${1:-}" = 200 ] && [ "${2:-}" = "$SIZE" ] && rate=$(awk -v b="$3" 'BEGIN { printf "%.0f", b / 1e6 }') ;;
    up)
        [ "$s" = nginx ] && return
        out=$(taskset -c "$CLIENT_CPU" timeout -k 2 "$TMO" curl -sk -T "$WORK/down.bin" -H 'Expect:' \
            -w ' %{http_code} %{size_upload} %{speed_upload}' "https://127.0.0.1:$port/up")
        set -- $out
        [ "${2:-}" = 200 ] && [ "${1:-}" = "$SIZE" ] && rate=$(awk -v b="$4" 'BEGIN { printf "%.0f", b / 1e6 }') ;;
    esac
    ns=$(( $(now_ns) - t0 )); ticks=$(( $(cpu_ticks "$pid") - c0 ))
    if [ -z "${rate:-}" ]; then note "  $s $t failed: $(echo "$out" | tail -n 3)"; return; fi
    R[$t,$s]="${R[$t,$s]:-}|$rate $(per_core "$rate" "$ticks" "$ns") $(cpu_pct "$ticks" "$ns")"
    note "  $t $s: $rate (per core $(per_core "$rate" "$ticks" "$ns"), cpu $(cpu_pct "$ticks" "$ns")%)"
}

for round in $(seq 1 "$ROUNDS"); do
    for t in $TESTS; do
        for s in "${RUNNING[@]}"; do measure "$t" "$s"; done
    done
done

col() { echo "${R[$1,$2]:-}" | tr '|' '\n' | awk -v c="$3" 'NF { print $c }' | tr '\n' ' ' | median; }
echo
echo "TLS $TLS_VERSION, $KEY_TYPE key, $(openssl version | cut -d' ' -f1-2): $(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS rounds x ${DURATION}s, SIZE $SIZE"
printf '%-11s %-8s %12s %14s %7s %12s\n' test server rate "per core" "cpu %" "x nginx"
for t in $TESTS; do
    for s in "${RUNNING[@]}"; do
        [ -n "${R[$t,$s]:-}" ] || continue
        rate=$(col "$t" "$s" 1); pc=$(col "$t" "$s" 2); cpu=$(col "$t" "$s" 3)
        ratio=-
        if [ "$s" != nginx ] && [ -n "${R[$t,nginx]:-}" ]; then
            if [ "$t" = down ] || [ "$t" = up ]; then
                ratio=$(awk -v a="$rate" -v b="$(col "$t" nginx 1)" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }')
            else
                ratio=$(awk -v a="$pc" -v b="$(col "$t" nginx 2)" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }')
            fi
        fi
        unit="/s"; { [ "$t" = down ] || [ "$t" = up ]; } && unit=" MB/s"
        printf '%-11s %-8s %12s %14s %7s %12s\n' "$t" "$s" "$rate$unit" "$pc" "$cpu" "$ratio"
    done
done
