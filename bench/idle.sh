#!/usr/bin/env bash
# bench/idle.sh - server memory per idle keep-alive connection.
# For each server and each N: start it fresh, warm it up, read VmRSS, open N
# connections that each send one request, read the response and then stay
# idle (bench/hclient.c), read VmRSS again: (after - before) / N bytes.
#
# Env knobs: IDLE_N ("5000 10000"), SERVERS ("lhyper nginx openresty node").
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

IDLE_N=${IDLE_N:-"5000 10000"}
SERVERS=${SERVERS:-"lhyper nginx openresty node"}
build_tools || { note "cannot build bench tools"; exit 1; }

maxn=0
for n in $IDLE_N; do [ "$n" -gt "$maxn" ] && maxn=$n; done
if [ "$(ulimit -n)" -lt $((maxn + 100)) ]; then
    note "ulimit -n is $(ulimit -n); need more than $maxn (both client and server)"; exit 1
fi

rows=()
port=$((BASE_PORT + 40))
for s in $SERVERS; do
    why=$(unavailable "$s")
    if [ -n "$why" ]; then note "skip $s: $why"; rows+=("$(printf '%-10s %7s  skipped: %s' "$s" - "$why")"); continue; fi
    for n in $IDLE_N; do
        port=$((port + 1))
        start_server "$s" "$port" hello || { rows+=("$(printf '%-10s %7s  failed to start' "$s" "$n")"); continue; }
        wpid=$(worker_pid "$SERVER_PID")
        taskset -c "$CLIENT_CPU" "$WORK/hclient" seq "$port" 200 >/dev/null || note "  $s: warm-up failed"
        sleep 0.5
        before=$(status_kb "$wpid" VmRSS)
        out=$WORK/idle-$s-$n.out
        taskset -c "$CLIENT_CPU" timeout -k 2 150 "$WORK/hclient" idle "$port" "$n" 120 </dev/null >"$out" 2>&1 &
        cpid=$!
        for _ in $(seq 1 1200); do grep -q '^ready' "$out" 2>/dev/null && break; kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
        sleep 1
        read -r _ ok failed <"$out" 2>/dev/null || { ok=0; failed=$n; }
        after=$(status_kb "$wpid" VmRSS)
        if [ -z "$after" ]; then
            note "  $s N=$n: server died (log: $(tail -n 2 "$WORK/$s-hello-$port.log" | tr '\n' ' '))"
            rows+=("$(printf '%-10s %7s %7s %7s  server died' "$s" "$n" "${ok:-0}" "${failed:-?}")")
            kill -TERM "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null; stop_server "$SERVER_PID"
            continue
        fi
        fds=$(ls /proc/"$wpid"/fd 2>/dev/null | wc -l)
        kill -TERM "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
        stop_server "$SERVER_PID"
        per=$(awk -v a="${after:-0}" -v b="${before:-0}" -v n="${ok:-0}" 'BEGIN { if (n > 0) printf "%.0f", (a - b) * 1024 / n; else print "-" }')
        rows+=("$(printf '%-10s %7s %7s %7s %11s %11s %10s %11s' "$s" "$n" "${ok:-0}" "${failed:-?}" "$before" "$after" "$fds" "$per")")
        note "  $s N=$n: ok ${ok:-0} failed ${failed:-?}, RSS ${before} -> ${after} KiB, $per B/conn"
    done
done

echo
echo "idle keep-alive connections: $(date -u +%Y-%m-%dT%H:%MZ), server on CPU $SERVER_CPU"
printf '%-10s %7s %7s %7s %11s %11s %10s %11s\n' server N ok failed "RSS0 KiB" "RSS1 KiB" "open fds" "B per conn"
printf '%s\n' "${rows[@]}"
