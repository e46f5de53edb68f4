#!/usr/bin/env bash
# bench/layers.sh - keep-alive hello through the composition layer against
# the bare handler, same run: bench/layered.lua (lhyper.router +
# request_id + access_log to a file + timeout; LAYERS picks others) and
# bench/hello.lua, each pinned to
# SERVER_CPU, wrk -t1 -c50 on CLIENT_CPU, rounds interleaved. Prints req/s
# and req/s per server core for both, and layered / bare per round.
#
# Env knobs: ROUNDS (5), DURATION seconds (10), WARMUP seconds (1),
# SERVER_CPU (0), CLIENT_CPU (1), BASE_PORT (18080), KEEP_WORK=1.
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
command -v wrk >/dev/null || { note "wrk not installed (apt-get install wrk)"; exit 1; }
why=$(unavailable lhyper)
[ -z "$why" ] || { note "lhyper: $why"; exit 1; }

export ACCESS_LOG=$WORK/access.log
declare -A PORT PID
port=$((BASE_PORT + 40))
for app in hello layered; do
    port=$((port + 1))
    start_server lhyper "$port" "$app" || exit 1
    PORT[$app]=$port; PID[$app]=$SERVER_PID
    [ "$WARMUP" = 0 ] || taskset -c "$CLIENT_CPU" timeout -k 2 $((WARMUP + 10)) \
        wrk -t1 -c50 -d"${WARMUP}s" "http://127.0.0.1:$port/" >/dev/null 2>&1
done

# run APP: one wrk run; prints "req/s cpu%"
run() {
    local app=$1 pid=${PID[$1]} log t0 c0 t1 c1 rps
    log=$WORK/wrk-$app.txt
    t0=$(now_ns); c0=$(cpu_ticks "$pid")
    taskset -c "$CLIENT_CPU" timeout -k 2 $((DURATION + 20)) \
        wrk -t1 -c50 -d"${DURATION}s" --timeout 5s "http://127.0.0.1:${PORT[$app]}/" >"$log" 2>&1
    t1=$(now_ns); c1=$(cpu_ticks "$pid")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$log")
    grep -q "Non-2xx\|Socket errors" "$log" && note "  $app: $(grep "Non-2xx\|Socket errors" "$log")"
    awk -v r="${rps:-0}" -v c=$((c1 - c0)) -v t=$((t1 - t0)) -v hz="$CLK_TCK" \
        'BEGIN { printf "%.0f %.1f\n", r, 100 * c / hz / (t / 1e9) }'
}

note "layered vs bare, keep-alive wrk -t1 -c50, $ROUNDS rounds x ${DURATION}s"
printf '%-6s %12s %8s %14s %12s %8s %14s %10s %10s\n' round "bare req/s" "cpu %" "per core" \
    "layered" "cpu %" "per core" "ratio" "per core"
ratios=()
for round in $(seq 1 "$ROUNDS"); do
    read -r b bc < <(run hello)
    read -r l lc < <(run layered)
    line=$(awk -v b="$b" -v bc="$bc" -v l="$l" -v lc="$lc" -v n="$round" 'BEGIN {
        bp = (bc > 0) ? b / (bc / 100) : 0; lp = (lc > 0) ? l / (lc / 100) : 0
        r = (b > 0) ? l / b : 0; rp = (bp > 0) ? lp / bp : 0
        printf "%-6s %12d %8.1f %14.0f %12d %8.1f %14.0f %10.3f %10.3f", n, b, bc, bp, l, lc, lp, r, rp }')
    echo "$line"
    ratios+=("$(echo "$line" | awk '{ print $8 }')")
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
echo "median layered / bare req/s: $median ($(wc -l <"$ACCESS_LOG") access log lines written)"
