#!/usr/bin/env bash
# bench/stream.sh - 1 GiB down and up over one connection through Lua body
# iterators (lhyper bench/stream.lua), against Node (bench/node_stream.js) and
# OpenResty-style nginx+lua (content_by_lua with ngx.print/ngx.flush and
# ngx.req.socket).  curl is the client, pinned to CLIENT_CPU; servers to SERVER_CPU.
# Reports median MB/s (10^6 bytes/s) each way and the server's peak RSS (VmHWM).
#
# Env knobs: SIZE bytes (1073741824), ROUNDS (3), SERVERS ("lhyper openresty node"),
# UPLOAD=length|chunked (length: curl -T of a sparse file with Content-Length).
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

SIZE=${SIZE:-1073741824}
ROUNDS=${ROUNDS:-3}
SERVERS=${SERVERS:-"lhyper openresty node"}
UPLOAD=${UPLOAD:-length}
TMO=${STREAM_TIMEOUT:-120}
command -v curl >/dev/null || { note "curl not installed"; exit 1; }

# A sparse file: reading it costs the client no disk I/O.  Read it once first:
# the first read of a hole fills the page cache and would slow the first upload.
SRC=$WORK/upload.bin
truncate -s "$SIZE" "$SRC"
taskset -c "$CLIENT_CPU" cat "$SRC" >/dev/null

declare -A PORT PID HWM0 DOWN UP ERR
RUNNING=()
i=0
for s in $SERVERS; do
    why=$(unavailable "$s")
    if [ -n "$why" ]; then note "skip $s: $why"; continue; fi
    port=$((BASE_PORT + 60 + i)); i=$((i + 1))
    if start_server "$s" "$port" stream; then
        PORT[$s]=$port; PID[$s]=$SERVER_PID; RUNNING+=("$s"); ERR[$s]=0
        HWM0[$s]=$(status_kb "$(worker_pid "$SERVER_PID")" VmHWM)
    else
        note "skip $s: failed to start"
    fi
done
[ ${#RUNNING[@]} -gt 0 ] || { note "no server available"; exit 1; }

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

for round in $(seq 1 "$ROUNDS"); do
    for s in "${RUNNING[@]}"; do
        url=http://127.0.0.1:${PORT[$s]}
        # down
        r=$(taskset -c "$CLIENT_CPU" timeout -k 2 "$TMO" curl -s -o /dev/null \
            -w '%{http_code} %{size_download} %{speed_download}' "$url/down?n=$SIZE")
        set -- $r
        if [ "${1:-}" = 200 ] && [ "${2:-}" = "$SIZE" ]; then
            DOWN[$s]="${DOWN[$s]:-} $(awk -v b="$3" 'BEGIN { printf "%.0f", b / 1e6 }')"
        else
            ERR[$s]=$((ERR[$s] + 1)); note "  $s down round $round failed: $r"
        fi
        # up
        if [ "$UPLOAD" = chunked ]; then
            r=$(taskset -c "$CLIENT_CPU" timeout -k 2 "$TMO" curl -s -T - -H 'Expect:' \
                -H 'Transfer-Encoding: chunked' -w ' %{http_code} %{size_upload} %{speed_upload}' "$url/up" <"$SRC")
        else
            r=$(taskset -c "$CLIENT_CPU" timeout -k 2 "$TMO" curl -s -T "$SRC" -H 'Expect:' \
                -w ' %{http_code} %{size_upload} %{speed_upload}' "$url/up")
        fi
        set -- $r
        if [ "${2:-}" = 200 ] && [ "${1:-}" = "$SIZE" ]; then
            UP[$s]="${UP[$s]:-} $(awk -v b="$4" 'BEGIN { printf "%.0f", b / 1e6 }')"
        else
            ERR[$s]=$((ERR[$s] + 1)); note "  $s up round $round failed: $r"
        fi
        note "  round $round $s: down $(echo "${DOWN[$s]:-}" | awk '{print $NF}') MB/s, up $(echo "${UP[$s]:-}" | awk '{print $NF}') MB/s"
    done
done

echo
echo "streaming $SIZE bytes over one connection: $(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS rounds, upload $UPLOAD"
printf '%-10s %12s %12s %14s %14s %7s\n' server "down MB/s" "up MB/s" "RSS start KiB" "peak RSS KiB" errors
for s in "${RUNNING[@]}"; do
    hwm=$(status_kb "$(worker_pid "${PID[$s]}")" VmHWM)
    printf '%-10s %12s %12s %14s %14s %7s\n' "$s" "$(echo "${DOWN[$s]:-}" | median)" "$(echo "${UP[$s]:-}" | median)" \
        "${HWM0[$s]}" "${hwm:-?}" "${ERR[$s]}"
done
