#!/usr/bin/env bash
# bench/client.sh - lhyper's client (bench/client.lua, CONC tasks) against
# nginx `return 200`, beside wrk -t1 -cCONC against the same nginx. nginx is
# pinned to SERVER_CPU, the load generators to CLIENT_CPU.
# Env knobs: CONC (50), DURATION seconds (5), COUNT (1000000), ROUNDS (3).
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

CONC=${CONC:-50}
DURATION=${DURATION:-5}
COUNT=${COUNT:-1000000}
ROUNDS=${ROUNDS:-3}
for n in nginx lhyper; do
    why=$(unavailable "$n")
    [ -n "$why" ] && { note "cannot run: $why"; exit 1; }
done
command -v wrk >/dev/null || { note "wrk not installed"; exit 1; }

port=$((BASE_PORT + 90))
start_server nginx "$port" hello || exit 1
url="http://127.0.0.1:$port/"
for r in $(seq 1 "$ROUNDS"); do
    w=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONC" -d"${DURATION}s" "$url" | awk '/Requests\/sec/ { print $2 }')
    c=$(cd "$REPO_DIR" && lhyper_env taskset -c "$CLIENT_CPU" lua5.4 bench/client.lua "$url" "$CONC" "$COUNT" "$DURATION")
    printf 'round %d: wrk -t1 -c%d: %s req/s | lhyper client, %d tasks: %s\n' "$r" "$CONC" "$w" "$CONC" "$c"
done
