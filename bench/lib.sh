# shellcheck shell=bash disable=SC2034
# bench/lib.sh - shared helpers for bench/*.sh (sourced, not run).
# Servers: ceiling lhyper lhyper_pf nginx openresty node.  Apps: hello, stream.
# lhyper@VARIANT is lhyper with the hello app's handler VARIANT (bench/hello.lua
# lists them); plain lhyper takes VARIANT from the environment (default hello).
# ceiling@VARIANT is the ceiling calling that handler (bench/ceiling.c, CEILING_LUA):
# the floor of any server running it.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BASE_PORT=${BASE_PORT:-18080}
NGINX_LUA_MOD=${NGINX_LUA_MOD:-/usr/lib/nginx/modules/ngx_http_lua_module.so}
NGINX_NDK_MOD=${NGINX_NDK_MOD:-/usr/lib/nginx/modules/ndk_http_module.so}
CLK_TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d /tmp/lhyper-bench.XXXXXX)
STARTED_PIDS=()

# As many file descriptors as we may have (1,000 and 10,000 connections).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

note() { printf '%s\n' "$*" >&2; }

# an awk function for the tables: median(s), s numbers separated by spaces
AWK_MEDIAN='
function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}'

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${STARTED_PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    STARTED_PIDS=()
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}

# build_tools: compile the ceiling server and the small client into $WORK,
# and the ceiling that runs a Lua handler (ceiling@VARIANT) when Lua's
# headers and static library are there (liblua5.4-dev).
build_tools() {
    cc -O2 -Wall -o "$WORK/ceiling" "$BENCH_DIR/ceiling.c" || return 1
    cc -O2 -Wall -o "$WORK/hclient" "$BENCH_DIR/hclient.c" || return 1
    # shellcheck disable=SC2046 # pkg-config's flags are words
    cc -O2 -Wall -DCEILING_LUA $(pkg-config --cflags lua5.4 2>/dev/null) -o "$WORK/ceiling_lua" \
        "$BENCH_DIR/ceiling.c" -l:liblua5.4.a -lm -ldl 2>"$WORK/ceiling_lua.err" || rm -f "$WORK/ceiling_lua"
    return 0
}

lhyper_env() {
    LUA_PATH="$REPO_DIR/lua/?.lua;$REPO_DIR/lua/?/init.lua;;" LUA_CPATH="$REPO_DIR/build/?.so;;" "$@"
}

# unavailable NAME: prints why NAME cannot run here (empty output: it can).
unavailable() {
    case $1 in
    ceiling) [ -x "$WORK/ceiling" ] || echo "ceiling not built" ;;
    ceiling@*) [ -x "$WORK/ceiling_lua" ] || echo "ceiling_lua not built: $(head -n 1 "$WORK/ceiling_lua.err" 2>/dev/null)" ;;
    lhyper|lhyper_pf|lhyper@*)
        if ! command -v lua5.4 >/dev/null; then echo "lua5.4 not installed"
        elif [ ! -e "$REPO_DIR/build/lhyper/core.so" ]; then echo "build/lhyper/core.so missing (run make)"
        elif ! (cd "$REPO_DIR" && lhyper_env lua5.4 -e 'require "lhyper"' >/dev/null 2>&1); then
            echo "require 'lhyper' fails"
        fi ;;
    nginx) command -v nginx >/dev/null || echo "nginx not installed" ;;
    openresty)
        if ! command -v nginx >/dev/null; then echo "nginx not installed"
        elif [ ! -e "$NGINX_LUA_MOD" ]; then echo "$NGINX_LUA_MOD missing (apt-get install libnginx-mod-http-lua)"
        fi ;;
    node) command -v node >/dev/null || echo "node not installed" ;;
    *) echo "unknown server $1" ;;
    esac
}

# nginx_conf DIR PORT KIND [MAIN_EXTRA]: KIND hello (return 200), lua (content_by_lua),
# stream (lua /down and /up).  MAIN_EXTRA goes at the top level (e.g. master_process off).
# nginx_main DIR: the top every benchmark nginx config shares (one worker,
# its pid and error log in DIR); workers.sh edits its worker_processes line
nginx_main() {
    cat <<EOF
worker_processes 1;
worker_rlimit_nofile 20000;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 20000; }
EOF
}

# nginx_temp_paths DIR: an http block's temporary paths, under DIR/tmp
nginx_temp_paths() {
    cat <<EOF
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
EOF
}

nginx_conf() {
    local dir=$1 port=$2 kind=$3 extra=${4:-} modules="" location
    mkdir -p "$dir/tmp"
    case $kind in
    hello) location='location / { default_type text/plain; return 200 "Hello, World!"; }' ;;
    lua)
        location='location / { default_type text/plain; content_by_lua_block { ngx.print("Hello, World!") } }' ;;
    stream)
        location='
        location /down {
            default_type application/octet-stream;
            content_by_lua_block {
                local n = tonumber(ngx.var.arg_n) or 0
                local chunk = string.rep("x", 65536)
                ngx.header["Content-Length"] = n
                while n > 0 do
                    local c = n >= 65536 and chunk or chunk:sub(1, n)
                    ngx.print(c)
                    local ok, err = ngx.flush(true)
                    if not ok then return ngx.exit(499) end
                    n = n - #c
                end
            }
        }
        location /up {
            default_type text/plain;
            lua_socket_buffer_size 256k;   # the 4k/8k default caps uploads near 400 MB/s
            content_by_lua_block {
                local sock = assert(ngx.req.socket())
                local total = 0
                while true do
                    local data, err = sock:receiveany(262144)
                    if not data then break end
                    total = total + #data
                end
                ngx.print(tostring(total))
            }
        }
        location / { default_type text/plain; return 200 "Hello, World!"; }' ;;
    esac
    if [ "$kind" != hello ]; then
        [ -e "$NGINX_NDK_MOD" ] && modules="load_module $NGINX_NDK_MOD;"
        modules="$modules
load_module $NGINX_LUA_MOD;"
    fi
    cat >"$dir/nginx.conf" <<EOF
$modules
$extra
$(nginx_main "$dir")
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_max_body_size 0;
    client_body_buffer_size 256k;
$(nginx_temp_paths "$dir")
    server {
        listen 127.0.0.1:$port backlog=4096;
        $location
    }
}
EOF
}

# server_cmd NAME PORT APP: sets CMD (array), CMD_ENV (array of VAR=value) and CMD_DIR.
server_cmd() {
    local name=$1 port=$2 app=$3 dir
    CMD_DIR=$REPO_DIR
    CMD_ENV=()
    case $name in
    ceiling) CMD=("$WORK/ceiling" "$port") ;;
    ceiling@*) CMD_ENV=("VARIANT=${name#ceiling@}")
            CMD=("$WORK/ceiling_lua" "$port") ;;
    lhyper) CMD_ENV=("LUA_PATH=$REPO_DIR/lua/?.lua;$REPO_DIR/lua/?/init.lua;;" "LUA_CPATH=$REPO_DIR/build/?.so;;")
            CMD=(lua5.4 "bench/$app.lua" "$port") ;;
    lhyper_pf) CMD_ENV=("LUA_PATH=$REPO_DIR/lua/?.lua;$REPO_DIR/lua/?/init.lua;;" "LUA_CPATH=$REPO_DIR/build/?.so;;")
            CMD=(lua5.4 "bench/$app.lua" "$port" pipeline_flush) ;;
    lhyper@*) CMD_ENV=("LUA_PATH=$REPO_DIR/lua/?.lua;$REPO_DIR/lua/?/init.lua;;" "LUA_CPATH=$REPO_DIR/build/?.so;;"
                       "VARIANT=${name#lhyper@}")
            CMD=(lua5.4 "bench/$app.lua" "$port") ;;
    nginx|openresty)
        dir=$WORK/$name-$app-$port
        local kind=hello
        [ "$name" = openresty ] && kind=lua
        [ "$app" = stream ] && kind=stream
        nginx_conf "$dir" "$port" "$kind" "${NGINX_MAIN_EXTRA:-}"
        CMD=(nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;') ;;
    node) CMD=(node "$BENCH_DIR/node_$app.js" "$port") ;;
    esac
}

# wait_ready PORT SECONDS: until a GET / answers.
wait_ready() {
    local port=$1 t=$(( $2 * 10 ))
    while [ "$t" -gt 0 ]; do
        curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/" && return 0
        sleep 0.1; t=$((t - 1))
    done
    return 1
}

# start_server NAME PORT [APP] [WRAPPER...]: start pinned to SERVER_CPU, set SERVER_PID.
# Returns 1 (with a note) when the server does not answer within READY_TIMEOUT seconds.
start_server() {
    local name=$1 port=$2 app=${3:-hello}
    shift 3 2>/dev/null || shift $#
    server_cmd "$name" "$port" "$app"
    # env -> taskset -> wrapper (valgrind) -> server: each execs the next, so
    # SERVER_PID is the server (or the valgrind running it) itself.
    (cd "$CMD_DIR" && exec env "${CMD_ENV[@]}" taskset -c "$SERVER_CPU" "$@" "${CMD[@]}") >"$WORK/$name-$app-$port.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    if ! wait_ready "$port" "${READY_TIMEOUT:-10}"; then
        note "  $name: did not answer on port $port; log:"
        tail -n 5 "$WORK/$name-$app-$port.log" >&2
        stop_server "$SERVER_PID"
        return 1
    fi
}

stop_server() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    local keep=() p
    for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    STARTED_PIDS=("${keep[@]}")
}

# proc_tree PID: PID and all its live descendants.
proc_tree() {
    local p
    echo "$1"
    for p in $(cat /proc/"$1"/task/*/children 2>/dev/null); do proc_tree "$p"; done
}

# worker_pid PID: the process doing the work (nginx: the worker, else PID itself).
worker_pid() {
    local kids
    kids=$(cat /proc/"$1"/task/*/children 2>/dev/null)
    if [ -n "$kids" ] && [ "$(cat /proc/"$1"/comm 2>/dev/null)" = nginx ]; then
        set -- $kids
        echo "$1"
    else
        echo "$1"
    fi
}

# cpu_ticks PID: utime+stime summed over the process tree (nginx master + worker).
cpu_ticks() {
    local u s
    read -r u s < <(cpu_ticks_split "$1")
    echo $((u + s))
}

# cpu_ticks_split PID: "utime stime" of the process tree, in clock ticks.
cpu_ticks_split() {
    local p u=0 s=0 stat
    for p in $(proc_tree "$1"); do
        stat=$(cat /proc/"$p"/stat 2>/dev/null) || continue
        stat=${stat##*) }                      # fields from 3 (state) on
        set -- $stat
        u=$((u + ${12})); s=$((s + ${13}))     # fields 14 utime, 15 stime
    done
    echo "$u $s"
}

# status_kb PID FIELD: VmRSS / VmHWM of one process in KiB.
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' /proc/"$1"/status 2>/dev/null; }

now_ns() { date +%s%N; }

# --- TLS (tls.sh, tlscount.sh): lhyper's bench/tls.lua beside nginx, same
# certificate, same TLS 1.2 ciphers, same OpenSSL ---

# lhyper's default TLS 1.2 list, given to nginx too (TLS 1.3 suites: OpenSSL's default for both)
TLS12_CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305

# tls_cert KEY_TYPE (ec: P-256, or rsa: 2048 bits): sets CERT and KEY, made in $WORK
tls_cert() {
    local newkey
    CERT=$WORK/cert.pem KEY=$WORK/key.pem
    case $1 in
    ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    rsa) newkey=(-newkey rsa:2048) ;;
    *) note "KEY_TYPE must be ec or rsa"; return 1 ;;
    esac
    openssl req -x509 "${newkey[@]}" -nodes -keyout "$KEY" -out "$CERT" -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null || { note "openssl req failed"; return 1; }
}

# tls_nginx_conf DIR PORT [MAIN_EXTRA]: nginx over TLS with $CERT, $KEY, $CIPHERS;
# / answers the hello, /down sends $WORK/down.bin
tls_nginx_conf() {
    local dir=$1 port=$2 extra=${3:-}
    mkdir -p "$dir/tmp"
    # as root, workers would run as nobody and could not read $WORK
    cat >"$dir/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root;")
$extra
$(nginx_main "$dir")
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
$(nginx_temp_paths "$dir")
    server {
        listen 127.0.0.1:$port ssl backlog=4096;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers $CIPHERS;
        ssl_prefer_server_ciphers on;
        ssl_session_tickets on;
        location = / { default_type text/plain; return 200 "Hello, World!"; }
        location = /down { alias $WORK/down.bin; default_type application/octet-stream; }
    }
}
EOF
}

# start_tls NAME PORT [WRAPPER...]: lhyper (bench/tls.lua) or nginx over TLS, pinned
# to SERVER_CPU, run by WRAPPER (valgrind, strace) when given; sets SERVER_PID once
# it answers over https (within READY_TIMEOUT seconds, 10 by default). nginx runs
# as one process (master_process off) under a wrapper, so that it sees the worker.
start_tls() {
    local name=$1 port=$2 dir log=$WORK/$1-tls-$2.log t
    shift 2
    case $name in
    lhyper)
        (cd "$REPO_DIR" && exec env TLS_CERT="$CERT" TLS_KEY="$KEY" TLS_CIPHERS="$CIPHERS" \
            "LUA_PATH=$REPO_DIR/lua/?.lua;$REPO_DIR/lua/?/init.lua;;" "LUA_CPATH=$REPO_DIR/build/?.so;;" \
            taskset -c "$SERVER_CPU" "$@" lua5.4 bench/tls.lua "$port") >"$log" 2>&1 & ;;
    nginx)
        dir=$WORK/nginx-tls-$port
        tls_nginx_conf "$dir" "$port" "$([ $# -gt 0 ] && echo "master_process off;")"
        (exec taskset -c "$SERVER_CPU" "$@" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;') >"$log" 2>&1 & ;;
    esac
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    t=$(( ${READY_TIMEOUT:-10} * 10 ))
    while [ "$t" -gt 0 ]; do
        curl -sk -m 1 -o /dev/null "https://127.0.0.1:$port/" && return 0
        sleep 0.1; t=$((t - 1))
    done
    note "  $name: did not answer on port $port"; tail -n 5 "$log" >&2
    stop_server "$SERVER_PID"
    return 1
}
