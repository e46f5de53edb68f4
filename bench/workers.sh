#!/usr/bin/env bash
# bench/workers.sh - scaling with worker processes, in one run: lhyper alone,
# with 1 and 2 workers (lhyper.workers, SO_REUSEPORT listeners, and a shared
# listener), and nginx with worker_processes 1 and 2 (and 2 with reuseport):
# keep-alive hello, req/s (median of ROUNDS), how the requests (lhyper: each
# worker counts them) and the CPU time (every server: /proc) spread over the
# workers.
#
# Nothing is pinned: the workers and wrk share the machine's cores. On a
# 2-core machine wrk needs a good part of one core, so "2 workers" measures
# what a second worker gives with the client on the same cores, not a
# server's ceiling; the README says so next to the figures.
#
# Env knobs: ROUNDS (3), DURATION seconds per run (10), WARMUP seconds (1),
# CONNECTIONS (100), THREADS (wrk threads, 2), BASE_PORT (18180),
# VARIANTS ("lhyper:0 lhyper:1 lhyper:2 lhyper-shared:2 nginx:1 nginx:2
# nginx-reuseport:2"; lhyper:0 is lhyper without workers), RESULTS (TSV file
# to keep), KEEP_WORK=1 (keep logs).
# A smoke run: ROUNDS=1 DURATION=2 WARMUP=0 bench/workers.sh
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-100}
THREADS=${THREADS:-2}
BASE_PORT=${BASE_PORT:-18180}
VARIANTS=${VARIANTS:-"lhyper:0 lhyper:1 lhyper:2 lhyper-shared:2 nginx:1 nginx:2 nginx-reuseport:2"}
RESULTS=${RESULTS:-$WORK/workers.tsv}

command -v wrk >/dev/null || { note "wrk not installed (apt-get install wrk)"; exit 1; }

# start_variant NAME N PORT: the server, unpinned; sets SERVER_PID and LOG
start_variant() {
    local name=$1 n=$2 port=$3 dir
    LOG=$WORK/$name-$n-$port.log
    case $name in
    lhyper|lhyper-shared)
        [ -z "$(unavailable lhyper)" ] || { note "skip $name: $(unavailable lhyper)"; return 1; }
        local mode=reuseport
        [ "$name" = lhyper-shared ] && mode=shared
        local env=(env)
        [ "$n" -gt 0 ] && env=(env "LHYPER_WORKERS=$n" "LHYPER_WORKER_MODE=$mode")
        (cd "$REPO_DIR" && exec "${env[@]}" "LUA_PATH=$REPO_DIR/lua/?.lua;$REPO_DIR/lua/?/init.lua;;" \
            "LUA_CPATH=$REPO_DIR/build/?.so;;" lua5.4 bench/hello.lua "$port") >"$LOG" 2>&1 &
        ;;
    nginx|nginx-reuseport)
        [ -z "$(unavailable nginx)" ] || { note "skip $name: $(unavailable nginx)"; return 1; }
        dir=$WORK/$name-$n-$port
        nginx_conf "$dir" "$port" hello
        sed -i "s/^worker_processes 1;/worker_processes $n;/" "$dir/nginx.conf"
        [ "$name" = nginx-reuseport ] && sed -i "s/backlog=4096;/backlog=4096 reuseport;/" "$dir/nginx.conf"
        (exec nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;') >"$LOG" 2>&1 &
        ;;
    *) note "unknown variant $name"; return 1 ;;
    esac
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    if ! wait_ready "$port" 10; then
        note "  $name $n: did not answer on port $port"; tail -n 5 "$LOG" >&2
        stop_server "$SERVER_PID"
        return 1
    fi
}

# workers_of PID: the processes that serve (children of a master, or PID)
workers_of() {
    local kids
    kids=$(cat /proc/"$1"/task/*/children 2>/dev/null)
    if [ -n "$kids" ]; then echo $kids; else echo "$1"; fi
}

ticks_of() {
    local stat
    stat=$(cat /proc/"$1"/stat 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    set -- $stat
    echo $(( ${12} + ${13} ))
}

# share A B ...: each number as a percentage of their sum, "50/50"
share() {
    local sum=0 x out=""
    for x in "$@"; do sum=$((sum + x)); done
    [ "$sum" -gt 0 ] || { echo "-"; return; }
    for x in "$@"; do out="$out${out:+/}$(( (x * 100 + sum / 2) / sum ))"; done
    echo "$out"
}

printf 'variant\tworkers\tround\treq_s\trequests_pct\tcpu_pct\tcpu_s\n' >"$RESULTS"
printf '%-16s %7s %5s %10s %16s %16s\n' variant workers round req/s "requests %" "cpu %" >&2

i=0
for v in $VARIANTS; do
    name=${v%%:*}; n=${v##*:}
    port=$((BASE_PORT + i)); i=$((i + 1))
    for round in $(seq 1 "$ROUNDS"); do
        start_variant "$name" "$n" "$port" || continue
        sleep 0.5
        [ "$WARMUP" != 0 ] && wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "http://127.0.0.1:$port/" >/dev/null 2>&1
        pids=$(workers_of "$SERVER_PID")
        before=(); for p in $pids; do before+=("$(ticks_of "$p")"); done
        out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$port/" 2>&1)
        cpu=(); k=0; total=0
        for p in $pids; do
            t=$(( $(ticks_of "$p") - before[k] )); k=$((k + 1))
            cpu+=("$t"); total=$((total + t))
        done
        rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out")
        stop_server "$SERVER_PID"
        # lhyper workers count their requests: "worker I requests N" at exit
        counts=$(awk '/^worker [0-9]+ requests [0-9]+/ { c[$2] = $4 } END { for (k = 1; k in c; k++) printf "%s ", c[k] }' "$LOG")
        req_pct="-"
        [ -n "$counts" ] && req_pct=$(share $counts)
        cpu_pct=$(share "${cpu[@]}")
        cpu_s=$(awk -v t="$total" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$n" "$round" "${rps:-0}" "$req_pct" "$cpu_pct" "$cpu_s" >>"$RESULTS"
        printf '%-16s %7s %5s %10s %16s %16s\n' "$name" "$n" "$round" "${rps:-0}" "$req_pct" "$cpu_pct" >&2
    done
done

# medians per variant
echo
printf '%-16s %7s %12s %16s %16s\n' variant workers "median req/s" "requests %" "cpu %"
awk -F'\t' 'NR > 1 { k = $1 "\t" $2; n[k]++; v[k, n[k]] = $4; r[k, n[k]] = $5; c[k, n[k]] = $6; if (!(k in seen)) { seen[k] = 1; order[++m] = k } }
    END {
        for (j = 1; j <= m; j++) {
            k = order[j]; cnt = n[k]
            # the rounds of this variant by req/s (insertion sort)
            for (a = 1; a <= cnt; a++) idx[a] = a
            for (a = 2; a <= cnt; a++) for (b = a; b > 1 && v[k, idx[b]] + 0 < v[k, idx[b - 1]] + 0; b--) { t = idx[b]; idx[b] = idx[b - 1]; idx[b - 1] = t }
            mid = idx[int((cnt + 1) / 2)]
            split(k, f, "\t")
            printf "%-16s %7s %12s %16s %16s\n", f[1], f[2], v[k, mid], r[k, mid], c[k, mid]
        }
    }' "$RESULTS"
if [ -n "${KEEP_WORK:-}" ]; then note "results: $RESULTS"; fi
