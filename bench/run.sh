#!/usr/bin/env bash
# bench/run.sh - wrk throughput table: lhyper against nginx, OpenResty-style
# nginx+lua, Node and a canned-response epoll server (the ceiling).
#
# Env knobs: ROUNDS (3), DURATION seconds per run (10), WARMUP seconds (1),
# SERVERS ("ceiling lhyper lhyper_pf nginx openresty node"; lhyper@VARIANT is
# bench/hello.lua's handler VARIANT), REF (ceiling: the server the ratios are to),
# SCENARIOS ("keepalive pipeline16 close c1000"), SERVER_CPU (0), CLIENT_CPU (1),
# BASE_PORT (18080), RESULTS (TSV file to keep), KEEP_WORK=1 (keep wrk logs).
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
SERVERS=${SERVERS:-"ceiling lhyper lhyper_pf nginx openresty node"}
REF=${REF:-ceiling}
SCENARIOS=${SCENARIOS:-"keepalive pipeline16 close c1000"}
RESULTS=${RESULTS:-$WORK/results.tsv}

command -v wrk >/dev/null || { note "wrk not installed (apt-get install wrk)"; exit 1; }
build_tools || { note "cannot build bench/ceiling.c"; exit 1; }

# Start every available server once, each on its own port, all pinned to SERVER_CPU.
declare -A PORT PID
RUNNING=()
i=0
for s in $SERVERS; do
    why=$(unavailable "$s")
    if [ -n "$why" ]; then note "skip $s: $why"; continue; fi
    port=$((BASE_PORT + i)); i=$((i + 1))
    if start_server "$s" "$port" hello; then
        PORT[$s]=$port; PID[$s]=$SERVER_PID; RUNNING+=("$s")
    else
        note "skip $s: failed to start"
    fi
done
[ ${#RUNNING[@]} -gt 0 ] || { note "no server available"; exit 1; }

# scenario_args SCENARIO: sets ARGS to the wrk arguments.
scenario_args() {
    case $1 in
    keepalive)  ARGS=(-t1 -c50) ;;
    pipeline16) ARGS=(-t1 -c50 -s "$BENCH_DIR/pipeline.lua") ;;
    close)      ARGS=(-t1 -c50 -H "Connection: close") ;;
    c1000)      ARGS=(-t1 -c1000) ;;
    *) return 1 ;;
    esac
}

# to_ms VALUE_WITH_UNIT (wrk: 812.00us, 1.23ms, 2.01s)
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}

# Warm-up (JITs, allocators, page cache): WARMUP seconds of keep-alive load each.
WARMUP=${WARMUP:-1}
if [ "$WARMUP" != 0 ]; then
    for s in "${RUNNING[@]}"; do
        taskset -c "$CLIENT_CPU" timeout -k 2 $((WARMUP + 10)) \
            wrk -t1 -c50 -d"${WARMUP}s" "http://127.0.0.1:${PORT[$s]}/" >/dev/null 2>&1
    done
fi

printf 'scenario\tserver\tround\treqs\tp99ms\tcpu\terrors\n' >"$RESULTS"
note "servers: ${RUNNING[*]}; scenarios: $SCENARIOS; rounds: $ROUNDS x ${DURATION}s"
for sc in $SCENARIOS; do
    scenario_args "$sc" || { note "unknown scenario $sc"; continue; }
    for round in $(seq 1 "$ROUNDS"); do
        for s in "${RUNNING[@]}"; do
            # pipeline_flush only changes pipelined behaviour
            [ "$s" = lhyper_pf ] && [ "$sc" != pipeline16 ] && continue
            pid=${PID[$s]}
            if ! kill -0 "$pid" 2>/dev/null; then note "  $s died; skipping"; continue; fi
            log=$WORK/wrk-$sc-$s-$round.txt
            t0=$(now_ns); c0=$(cpu_ticks "$pid")
            taskset -c "$CLIENT_CPU" timeout -k 2 $((DURATION + 20)) \
                wrk "${ARGS[@]}" -d"${DURATION}s" --timeout 5s --latency "http://127.0.0.1:${PORT[$s]}/" >"$log" 2>&1
            c1=$(cpu_ticks "$pid"); t1=$(now_ns)
            rps=$(awk '/^Requests\/sec:/ { print $2 }' "$log")
            p99=$(awk '$1 == "99%" { print $2 }' "$log")
            errs=$(awk '/Socket errors:/ { gsub(",", ""); e += $4 + $6 + $8 + $10 }
                        /Non-2xx or 3xx/ { e += $NF } END { print e + 0 }' "$log")
            cpu=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", 100 * d / hz / (ns / 1e9) }')
            if [ -z "$rps" ]; then
                note "  $sc $s round $round: wrk failed: $(tail -n 2 "$log" | tr '\n' ' ')"
                continue
            fi
            p99=$(to_ms "$p99")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$s" "$round" "$rps" "$p99" "$cpu" "$errs" >>"$RESULTS"
            note "  $sc round $round $s: $rps req/s, p99 ${p99} ms, cpu ${cpu}%, errors $errs"
            [ "$errs" != 0 ] && note "    errors: $(grep -E 'Socket errors|Non-2xx' "$log" | tr -s ' ' | tr '\n' ';')"
        done
    done
done

# One table: medians over rounds.  per-core = req/s / (cpu% / 100) per run, then median.
echo
echo "lhyper bench: $(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS rounds x ${DURATION}s, server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU"
awk -F'\t' -v ref="$REF" "$AWK_MEDIAN"'
NR == 1 { next }
{
    k = $1 SUBSEP $2
    if (!(k in rps)) { order[++nk] = k }
    rps[k] = rps[k] " " $4; p99[k] = p99[k] " " $5; cpu[k] = cpu[k] " " $6
    pc[k] = pc[k] " " ($6 > 0 ? $4 / ($6 / 100) : 0); err[k] += $7; n[k]++
}
END {
    for (i = 1; i <= nk; i++) {
        split(order[i], f, SUBSEP)
        if (f[2] == ref) { ceil[f[1]] = median(pc[order[i]]); ceilr[f[1]] = median(rps[order[i]]) }
    }
    printf "%-11s %-15s %11s %10s %7s %14s %9s %9s %7s\n", "scenario", "server", "req/s", "p99 ms", "cpu %", "req/s per core", "x " substr(ref, 1, 7), "x rps", "errors"
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, f, SUBSEP)
        per = median(pc[k])
        ratio = (f[1] in ceil && ceil[f[1]] > 0) ? sprintf("%.2f", per / ceil[f[1]]) : "-"
        rratio = (f[1] in ceilr && ceilr[f[1]] > 0) ? sprintf("%.2f", median(rps[k]) / ceilr[f[1]]) : "-"
        p = median(p99[k]); p = p > 0 ? sprintf("%.2f", p) : "n/a"
        printf "%-11s %-15s %11.0f %10s %7.1f %14.0f %9s %9s %7d\n", f[1], f[2], median(rps[k]), p, median(cpu[k]), per, ratio, rratio, err[k]
    }
}' "$RESULTS"
echo "x $REF: per-core figure / $REF's per-core figure; x rps: req/s / $REF's req/s (same scenario)."
echo "p99 n/a: wrk reports 0 when its coordinated-omission correction overflows (fast pipelined runs)."
[ -n "${KEEP_WORK:-}" ] && note "raw results: $RESULTS (wrk logs in $WORK)"
exit 0
