#!/usr/bin/env bash
# bench/ws.sh - WebSocket echo: lhyper (bench/ws.lua) against Node's ws
# (bench/node_ws.js) and lua-resty-websocket on nginx (OpenResty style:
# libnginx-mod-http-lua + lua-nginx-websocket), in the same run.
#
# For each server and message size: bench/wsclient.c keeps CONNS connections
# each echoing one message at a time for DURATION seconds (closed loop);
# reported: messages/s, the server's CPU (utime+stime from /proc), messages/s
# per server core, MB/s of payload echoed (one way), and the server's user and
# system CPU time per message. Then the idle memory:
# IDLE_N connections that each echo one message and stay open; server RSS
# after minus before, per connection.
#
# Env knobs: SERVERS ("lhyper lhyper-cb node openresty"; lhyper-cb is bench/ws.lua with
# WS_DETACH=1, its echo in ws:detach callbacks), SIZES ("64 65536"), CONNS (50),
# DURATION (10 s), ROUNDS (1; each round starts one server further on), RATE
# (unset: each connection sends its next message as soon as its echo comes; a
# number: messages/s offered in all, spread over the connections, so that the
# servers are compared by CPU per message at the same load), IDLE_N (5000; 0: skip), WS_PING (lhyper's
# keepalive pings: 0 turns them off for the idle figure), SERVER_CPU, CLIENT_CPU.
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

SERVERS=${SERVERS:-"lhyper lhyper-cb node openresty"}
SIZES=${SIZES:-"64 65536"}
CONNS=${CONNS:-50}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-1}
RATE=${RATE:-}
IDLE_N=${IDLE_N:-5000}
NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
RESTY_WS=${RESTY_WS:-/usr/share/lua/5.1/nginx/websocket/server.lua}
export NODE_PATH

cc -O2 -Wall -o "$WORK/wsclient" "$BENCH_DIR/wsclient.c" || { note "cannot build wsclient"; exit 1; }

ws_unavailable() {
    case $1 in
    lhyper|lhyper-cb) unavailable lhyper ;;
    node)
        if ! command -v node >/dev/null; then echo "node not installed"
        elif ! node -e 'require("ws")' >/dev/null 2>&1; then echo "node ws missing (apt-get install node-ws)"
        fi ;;
    openresty)
        unavailable openresty
        [ -e "$RESTY_WS" ] || echo "$RESTY_WS missing (apt-get install lua-nginx-websocket)" ;;
    *) echo "unknown server $1" ;;
    esac
}

resty_conf() {
    local dir=$1 port=$2 modules=""
    mkdir -p "$dir/tmp"
    [ -e "$NGINX_NDK_MOD" ] && modules="load_module $NGINX_NDK_MOD;"
    cat >"$dir/nginx.conf" <<CONF
$modules
load_module $NGINX_LUA_MOD;
$(nginx_main "$dir")
http {
    access_log off;
    lua_package_path '$(dirname "$(dirname "$(dirname "$RESTY_WS")")")/?.lua;;';
$(nginx_temp_paths "$dir")
    server {
        listen 127.0.0.1:$port backlog=4096;
        location = / { return 200 "ws echo"; }
        location /ws {
            content_by_lua_block {
                local server = require "nginx.websocket.server"
                local wb = server:new{ timeout = 300000, max_payload_len = 16777216 }
                if not wb then return ngx.exit(444) end
                local parts, kind = {}, nil
                while true do
                    local data, typ, err = wb:recv_frame()
                    if not data then break end
                    if typ == "close" then wb:send_close() break
                    elseif typ == "ping" then wb:send_pong(data)
                    elseif typ ~= "pong" then
                        if typ ~= "continuation" then kind, parts = typ, {} end
                        parts[#parts + 1] = data
                        if err ~= "again" then
                            local msg = #parts == 1 and parts[1] or table.concat(parts)
                            if kind == "text" then wb:send_text(msg) else wb:send_binary(msg) end
                        end
                    end
                end
            }
        }
    }
}
CONF
}

# start_ws NAME PORT: like lib.sh's start_server, for the echo servers
start_ws() {
    local name=$1 port=$2 dir
    case $name in
    lhyper|lhyper-cb)
        (cd "$REPO_DIR" && exec env "LUA_PATH=$REPO_DIR/lua/?.lua;$REPO_DIR/lua/?/init.lua;;" \
                "LUA_CPATH=$REPO_DIR/build/?.so;;" ${WS_PING:+WS_PING=$WS_PING} \
                "WS_DETACH=$([ "$name" = lhyper-cb ] && echo 1 || echo 0)" \
                taskset -c "$SERVER_CPU" lua5.4 bench/ws.lua "$port") >"$WORK/$name-$port.log" 2>&1 & ;;
    node) (exec taskset -c "$SERVER_CPU" node "$BENCH_DIR/node_ws.js" "$port") >"$WORK/$name-$port.log" 2>&1 & ;;
    openresty)
        dir=$WORK/resty-$port
        resty_conf "$dir" "$port"
        (exec taskset -c "$SERVER_CPU" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;') \
            >"$WORK/$name-$port.log" 2>&1 & ;;
    esac
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    if ! wait_ready "$port" 10; then
        note "  $name: did not answer on port $port"; tail -n 5 "$WORK/$name-$port.log" >&2
        stop_server "$SERVER_PID"; return 1
    fi
}

rows=()
port=$((BASE_PORT + 120))
read -r -a SERVER_LIST <<<"$SERVERS"
ns=${#SERVER_LIST[@]}
for round in $(seq 1 "$ROUNDS"); do
  for size in $SIZES; do
    # each round starts one server further on, so that none always runs first
    for k in $(seq 0 $((ns - 1))); do
        s=${SERVER_LIST[$(((k + round - 1) % ns))]}
        why=$(ws_unavailable "$s")
        if [ -n "$why" ]; then note "skip $s: $why"; continue; fi
        port=$((port + 1))
        start_ws "$s" "$port" || continue
        taskset -c "$CLIENT_CPU" "$WORK/wsclient" echo "$port" /ws 10 "$size" 1 binary >/dev/null 2>&1 # warm-up
        read -r u0 s0 < <(cpu_ticks_split "$SERVER_PID")
        if [ -n "$RATE" ]; then
            out=$(taskset -c "$CLIENT_CPU" "$WORK/wsclient" pace "$port" /ws "$CONNS" "$size" "$DURATION" "$RATE" 2>&1)
        else
            out=$(taskset -c "$CLIENT_CPU" "$WORK/wsclient" echo "$port" /ws "$CONNS" "$size" "$DURATION" binary 2>&1)
        fi
        read -r u1 s1 < <(cpu_ticks_split "$SERVER_PID")
        stop_server "$SERVER_PID"
        read -r _ msgs _ secs _ errs <<<"$out"
        row=$(awk -v s="$s" -v z="$size" -v m="${msgs:-0}" -v t="${secs:-1}" -v u=$((u1 - u0)) -v k=$((s1 - s0)) \
            -v hz="$CLK_TCK" -v e="${errs:-?}" -v r="$round" 'BEGIN {
            rate = m / t; cpu = (u + k) / hz / t * 100;
            printf "%-10s %6d %5d %11.0f %6.0f %14.0f %9.1f %6s %7.2f %7.2f", s, z, r, rate, cpu, (cpu > 0 ? rate / (cpu / 100) : 0),
                rate * z / 1e6, e, (m > 0 ? u / hz * 1e6 / m : 0), (m > 0 ? k / hz * 1e6 / m : 0) }')
        rows+=("$row")
        note "  $row"
    done
  done
done

echo
echo "WebSocket echo: $(date -u +%Y-%m-%dT%H:%MZ), $CONNS connections, ${DURATION}s, server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU${RATE:+, $RATE messages/s offered}"
printf '%-10s %6s %5s %11s %6s %14s %9s %6s %7s %7s\n' server bytes round "msgs/s" "cpu %" "msgs/s per core" "MB/s" errors \
    "user" "sys"
printf '%s\n' "${rows[@]}"
echo "user, sys: the server's utime and stime (its process tree, /proc/PID/stat) over the run, µs per message echoed."
[ -n "$RATE" ] && echo "At a fixed offered rate, msgs/s per core is 1e6 / (user + sys): the server's CPU per message, inverted."
if [ "${#rows[@]}" -gt 0 ]; then
    echo
    echo "medians over rounds; 'lhyper / peer': lhyper's msgs/s per core over the peer's in the same round (lhyper-cb's after it)"
    printf '%-10s %6s %7s %14s %7s %7s  %s\n' server bytes rounds "msgs/s per core" user sys "lhyper / peer, per round (median)"
    printf '%s\n' "${rows[@]}" | awk "$AWK_MEDIAN"'
    {
        k = $1 SUBSEP $2
        if (!(k in seen)) { seen[k] = 1; order[++no] = k }
        pc[k] = pc[k] " " $6; us[k] = us[k] " " $9; sy[k] = sy[k] " " $10; nr[k]++
        per[$1, $2, $3] = $6
        if ($3 > last) last = $3
    }
    # a peer'"'"'s row: each lhyper variant'"'"'s ratios over it (lhyper-cb: ws:detach)
    function ratios_of(v, s, z,   r, q, ratios, list) {
        ratios = ""; list = ""
        for (r = 1; r <= last; r++) {
            if (((s, z, r) in per) && ((v, z, r) in per) && per[s, z, r] > 0) {
                q = per[v, z, r] / per[s, z, r]
                ratios = ratios " " q; list = list sprintf("%s%.2f", list == "" ? "" : ", ", q)
            }
        }
        return ratios == "" ? "" : list " (" sprintf("%.2f", median(ratios)) ")"
    }
    END {
        for (i = 1; i <= no; i++) {
            split(order[i], kz, SUBSEP); s = kz[1]; z = kz[2]; out = ""
            if (s !~ /^lhyper/) {
                out = ratios_of("lhyper", s, z)
                cb = ratios_of("lhyper-cb", s, z)
                if (cb != "") out = (out == "" ? "" : out "; ") "lhyper-cb: " cb
            }
            printf "%-10s %6s %7d %14.0f %7.2f %7.2f  %s\n", s, z, nr[order[i]], median(pc[order[i]]),
                median(us[order[i]]), median(sy[order[i]]), out
        }
    }'
fi

[ "$IDLE_N" -gt 0 ] || exit 0
if [ "$(ulimit -n)" -lt $((IDLE_N + 100)) ]; then note "ulimit -n is $(ulimit -n): idle figure skipped"; exit 0; fi
irows=()
for s in $SERVERS; do
    why=$(ws_unavailable "$s")
    [ -n "$why" ] && continue
    port=$((port + 1))
    start_ws "$s" "$port" || continue
    wpid=$(worker_pid "$SERVER_PID")
    taskset -c "$CLIENT_CPU" "$WORK/wsclient" idle "$port" /ws 100 0.5 >/dev/null 2>&1 # warm-up
    sleep 0.5
    before=$(status_kb "$wpid" VmRSS)
    taskset -c "$CLIENT_CPU" "$WORK/wsclient" idle "$port" /ws "$IDLE_N" 60 >"$WORK/idle-$s.out" 2>&1 &
    cpid=$!
    for _ in $(seq 1 600); do grep -q '^ready' "$WORK/idle-$s.out" 2>/dev/null && break; kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
    sleep 1
    after=$(status_kb "$wpid" VmRSS)
    read -r _ ok failed <"$WORK/idle-$s.out" 2>/dev/null || { ok=0; failed=$IDLE_N; }
    kill -TERM "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
    stop_server "$SERVER_PID"
    per=$(awk -v a="${after:-0}" -v b="${before:-0}" -v n="${ok:-0}" 'BEGIN { if (n > 0) printf "%.0f", (a - b) * 1024 / n; else print "-" }')
    irows+=("$(printf '%-10s %7s %7s %7s %11s %11s %12s' "$s" "$IDLE_N" "${ok:-0}" "${failed:-?}" "$before" "$after" "$per")")
done
echo
echo "idle WebSocket connections (each echoed one message)${WS_PING:+, WS_PING=$WS_PING}"
printf '%-10s %7s %7s %7s %11s %11s %12s\n' server N ok failed "RSS0 KiB" "RSS1 KiB" "B per conn"
printf '%s\n' "${irows[@]}"
