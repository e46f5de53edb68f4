#!/bin/sh
# The WebSocket conformance client (spec/wsconf.py) at full size against
# spec/app.lua's /ws/echo: Autobahn's categories 9, 12 and 13 with 16 MiB
# messages and 1000 messages a case. Ends with the client's summary line;
# exits non-zero unless every case is OK. `make test-ws-full`.
set -e
B=${B:-build}
log=$(mktemp)
out=$(mktemp)
trap 'rm -f "$log" "$out"' EXIT
LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;' LUA_CPATH="$B/?.so;;" \
  timeout -s KILL 3600 ${LUA:-lua5.4} spec/app.lua '{}' > "$out" 2> "$log" &
pid=$!
i=0
while ! grep -q '^PORT' "$out" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
port=$(sed -n 's/^PORT \([0-9]*\).*/\1/p' "$out")
if [ -z "$port" ]; then
  cat "$log"
  kill "$pid" 2>/dev/null
  exit 1
fi
status=0
timeout -s KILL 3500 /usr/bin/python3 spec/wsconf.py --full --port "$port" "$@" || status=1
curl -s --max-time 5 "http://127.0.0.1:$port/__quit" > /dev/null || kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null || true
exit $status
