#!/usr/bin/env bash
# bench/wsmem.sh - where an idle WebSocket's bytes go. bench/ws.lua runs under
# valgrind's massif with LHYPER_ALLOC_CACHE=0 (freed Lua blocks are not kept
# as live) and WS_GC=1 (a full collection every half second); a detailed
# snapshot is taken (vgdb) after a warm-up of 50 connections and again once
# N more idle WebSockets are open (`wsclient idle`: each echoes one message).
# Prints the live heap bytes per connection between the two (and malloc's
# extra bytes), then the allocation sites by their difference per connection,
# each as its call chain DEPTH frames deep. Deterministic enough to measure
# one cut at a time; RSS (bench/ws.sh) adds what is not live yet.
#
# Env knobs: N (1000), DEPTH (7), MIN (4: sites below this many bytes per
# connection are left out), KEEP_WORK (keep the snapshots in the work dir).
set -u
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

N=${N:-1000}
DEPTH=${DEPTH:-7}
MIN=${MIN:-4}
command -v valgrind >/dev/null && command -v vgdb >/dev/null || { note "valgrind not installed"; exit 1; }
cc -O2 -Wall -o "$WORK/wsclient" "$BENCH_DIR/wsclient.c" || { note "cannot build wsclient"; exit 1; }
port=$((BASE_PORT + 140))

(cd "$REPO_DIR" && exec env "LUA_PATH=$REPO_DIR/lua/?.lua;$REPO_DIR/lua/?/init.lua;;" \
    "LUA_CPATH=$REPO_DIR/build/?.so;;" LHYPER_ALLOC_CACHE=0 WS_GC=1 \
    valgrind --tool=massif --vgdb=yes --vgdb-prefix="$WORK/vgdb" --massif-out-file="$WORK/massif.out" \
    --threshold=0.1 lua5.4 bench/ws.lua "$port") >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
STARTED_PIDS+=("$SERVER_PID")
for _ in $(seq 1 300); do grep -q "ws echo on" "$WORK/server.log" && break; sleep 0.1; done
grep -q "ws echo on" "$WORK/server.log" || { note "the server did not start"; cat "$WORK/server.log" >&2; exit 1; }

snapshot() {
    vgdb --vgdb-prefix="$WORK/vgdb" --pid="$SERVER_PID" detailed_snapshot "$WORK/$1" >/dev/null 2>&1 ||
        { note "vgdb detailed_snapshot failed"; exit 1; }
}

"$WORK/wsclient" idle "$port" /ws 50 0.5 >/dev/null 2>&1 # warm-up
sleep 2
snapshot snap0
"$WORK/wsclient" idle "$port" /ws "$N" 600 >"$WORK/idle.out" 2>&1 &
cpid=$!
STARTED_PIDS+=("$cpid")
for _ in $(seq 1 1200); do grep -q '^ready' "$WORK/idle.out" 2>/dev/null && break; kill -0 "$cpid" 2>/dev/null || break; sleep 0.2; done
sleep 2
snapshot snap1
read -r _ ok failed <"$WORK/idle.out" 2>/dev/null || { ok=0; failed=$N; }
kill -TERM "$cpid" 2>/dev/null
stop_server "$SERVER_PID"
[ "${ok:-0}" -gt 0 ] || { note "no WebSocket opened"; exit 1; }

echo "idle WebSockets under massif: $ok open, ${failed:-?} failed ($(date -u +%Y-%m-%dT%H:%MZ))"
python3 - "$WORK/snap0" "$WORK/snap1" "$ok" "$DEPTH" "$MIN" <<'PY'
import collections, re, sys

def load(path, depth):
    text = open(path).read()
    heap = int(re.search(r"mem_heap_B=(\d+)", text).group(1))
    extra = int(re.search(r"mem_heap_extra_B=(\d+)", text).group(1))
    sites, chain = collections.Counter(), []
    for line in text.splitlines():
        m = re.match(r"^( *)n\d+: (\d+) (.*)$", line)
        if not m:
            continue
        level, what = len(m.group(1)), m.group(3)
        what = re.sub(r"0x[0-9A-F]+: ", "", what)
        what = re.sub(r" \(in [^)]*\)", "", what)
        what = re.sub(r"\((?:[^():]*/)?([^/():]+:\d+)\)", r"(\1)", what)
        chain = chain[:level] + [what[:60]]
        if level == depth:
            sites[" <- ".join(chain[1:])] += int(m.group(2))
    return heap, extra, sites

path0, path1, n, depth, low = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
h0, x0, s0 = load(path0, depth)
h1, x1, s1 = load(path1, depth)
print("live heap per connection: %.1f B, malloc's extra %.1f B, together %.1f B"
      % ((h1 - h0) / n, (x1 - x0) / n, (h1 + x1 - h0 - x0) / n))
rows = {k: (s1[k] - s0[k]) / n for k in set(s0) | set(s1)}
for k, v in sorted(rows.items(), key=lambda kv: -abs(kv[1])):
    if abs(v) >= low:
        print("%8.1f  %s" % (v, k))
PY
