#!/usr/bin/env bash
# bench/cpu.sh - server CPU time per request at a fixed offered load.
# h2load --h1 drives each server at the same rate (CONNS keep-alive connections,
# each sending RATE/CONNS requests a second: --rps), the server pinned to SERVER_CPU
# and h2load to CLIENT_CPU.  The server's utime + stime over the run (/proc/PID/stat,
# its whole process tree), divided by the requests answered, is its CPU time per
# request: at a load both sides can carry, it does not depend on which one would
# saturate first.  Rounds interleave the servers (each round starts one server
# further on); the table gives medians over rounds, and each server's figure over
# the ceiling's (the median of the per-round ratios, so that drift over the run
# cancels).
#
# Env knobs: RATE req/s (60000), CONNS (50), DURATION seconds per run (10), ROUNDS (5),
# WARMUP seconds per server (2), SERVERS ("ceiling lhyper lhyper@cl nginx openresty node";
# lhyper@VARIANT is bench/hello.lua's handler VARIANT, lhyper@cl sets its own
# content-length), SERVER_CPU (0), CLIENT_CPU (1), BASE_PORT (18080), RESULTS (TSV of
# every run), KEEP_WORK=1 (keep the h2load logs).
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

RATE=${RATE:-60000}
CONNS=${CONNS:-50}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-2}
SERVERS=${SERVERS:-"ceiling lhyper lhyper@cl nginx openresty node"}
RESULTS=${RESULTS:-$WORK/cpu.tsv}

command -v h2load >/dev/null || { note "h2load not installed (apt-get install nghttp2-client)"; exit 1; }
build_tools || { note "cannot build bench/ceiling.c"; exit 1; }
[ "$RATE" -ge "$CONNS" ] || { note "RATE must be at least CONNS"; exit 1; }
PER_CONN=$((RATE / CONNS))
OFFERED=$((PER_CONN * CONNS))

declare -A PORT PID
RUNNING=()
i=0
for s in $SERVERS; do
    why=$(unavailable "$s")
    if [ -n "$why" ]; then note "skip $s: $why"; continue; fi
    port=$((BASE_PORT + 40 + i)); i=$((i + 1))
    if start_server "$s" "$port" hello; then
        PORT[$s]=$port; PID[$s]=$SERVER_PID; RUNNING+=("$s")
    else
        note "skip $s: failed to start"
    fi
done
[ ${#RUNNING[@]} -gt 0 ] || { note "no server available"; exit 1; }

# drive SERVER SECONDS LOG: h2load at the offered rate for about SECONDS.
drive() {
    local n=$((OFFERED * $2))
    taskset -c "$CLIENT_CPU" timeout -k 2 $(($2 * 3 + 20)) \
        h2load --h1 -t1 -c"$CONNS" --rps="$PER_CONN" -n"$n" "http://127.0.0.1:${PORT[$1]}/" >"$3" 2>&1
}

# seconds LOG: h2load's "finished in 10.00s" (or ms, us) as seconds
seconds() {
    awk '/^finished in/ { v = $3; sub(/,$/, "", v); n = v + 0
        if (v ~ /ms$/) n /= 1000; else if (v ~ /us$/) n /= 1e6; else if (v ~ /m$/) n *= 60
        printf "%.6f", n; exit }' "$1"
}

if [ "$WARMUP" != 0 ]; then
    for s in "${RUNNING[@]}"; do drive "$s" "$WARMUP" "$WORK/h2load-warm-$s.txt"; done
fi

printf 'server\tround\tdone\tseconds\tticks\tcpu_us\terrors\tuser_ticks\tsys_ticks\n' >"$RESULTS"
note "servers: ${RUNNING[*]}; $OFFERED req/s offered ($CONNS connections x $PER_CONN), $ROUNDS rounds x ${DURATION}s"
ns=${#RUNNING[@]}
for round in $(seq 1 "$ROUNDS"); do
    for k in $(seq 0 $((ns - 1))); do
        s=${RUNNING[$(((k + round - 1) % ns))]}
        pid=${PID[$s]}
        if ! kill -0 "$pid" 2>/dev/null; then note "  $s died; skipping"; continue; fi
        log=$WORK/h2load-$s-$round.txt
        read -r u0 s0 < <(cpu_ticks_split "$pid")
        drive "$s" "$DURATION" "$log"
        read -r u1 s1 < <(cpu_ticks_split "$pid")
        c0=$((u0 + s0)); c1=$((u1 + s1))
        done_=$(awk '/^requests:/ { print $8; exit }' "$log")
        secs=$(seconds "$log")
        if [ -z "$done_" ] || [ -z "$secs" ] || [ "$done_" = 0 ]; then
            note "  round $round $s: h2load failed: $(tail -n 2 "$log" | tr '\n' ' ')"
            continue
        fi
        errs=$(awk '/^requests:/ { e += $10 + $12 + $14 } /^status codes:/ { e += $5 + $7 + $9 } END { print e + 0 }' "$log")
        us=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$done_" 'BEGIN { printf "%.3f", d / hz * 1e6 / n }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$round" "$done_" "$secs" $((c1 - c0)) "$us" "$errs" \
            $((u1 - u0)) $((s1 - s0)) >>"$RESULTS"
        note "  round $round $s: $done_ in ${secs}s ($(awk -v n="$done_" -v t="$secs" 'BEGIN { printf "%.0f", n / t }') req/s), $((c1 - c0)) ticks, $us us/request, errors $errs"
    done
done

echo
echo "lhyper cpu bench: $(date -u +%Y-%m-%dT%H:%MZ), $OFFERED req/s offered over $CONNS connections (h2load --h1 --rps $PER_CONN), $ROUNDS rounds x ${DURATION}s, server on CPU $SERVER_CPU, h2load on CPU $CLIENT_CPU"
awk -F'\t' -v offered="$OFFERED" "$AWK_MEDIAN"'
NR == 1 { next }
{
    if (!($1 in us)) order[++ns] = $1
    us[$1] = us[$1] " " $6; rate[$1] = rate[$1] " " ($4 > 0 ? $3 / $4 : 0)
    cpu[$1] = cpu[$1] " " ($4 > 0 ? 100 * $5 / hz / $4 : 0); err[$1] += $7
    if (!($1 in lo) || $6 + 0 < lo[$1]) lo[$1] = $6 + 0
    if (!($1 in hi) || $6 + 0 > hi[$1]) hi[$1] = $6 + 0
    by[$1, $2] = $6; rounds[$2] = 1
    usr[$1] = usr[$1] " " ($3 > 0 ? $8 / hz * 1e6 / $3 : 0); sys[$1] = sys[$1] " " ($3 > 0 ? $9 / hz * 1e6 / $3 : 0)
}
END {
    printf "%-16s %10s %8s %10s %17s %10s %7s %7s %7s\n", "server", "req/s", "cpu %", "us/request", "lowest - highest", "x ceiling", "errors", "user", "sys"
    for (i = 1; i <= ns; i++) {
        s = order[i]; r = ""
        for (k in rounds) if ((s, k) in by && ("ceiling", k) in by && by["ceiling", k] > 0) r = r " " by[s, k] / by["ceiling", k]
        ratio = r != "" ? sprintf("%.3f", median(r)) : "-"
        flag = median(rate[s]) < 0.97 * offered ? " (short of the offered rate)" : ""
        printf "%-16s %10.0f %8.1f %10.3f %8.3f - %6.3f %10s %7d %7.3f %7.3f%s\n", s, median(rate[s]), median(cpu[s]), median(us[s]), lo[s], hi[s], ratio, err[s], median(usr[s]), median(sys[s]), flag
    }
}' hz="$CLK_TCK" "$RESULTS"
echo "us/request: server utime+stime (/proc/PID/stat) over the run / requests answered; x ceiling: median over rounds of us/request / the ceiling's in that round; user, sys: the medians of utime and stime alone, us/request."
[ -n "${KEEP_WORK:-}" ] && note "raw results: $RESULTS (h2load logs in $WORK)"
exit 0
