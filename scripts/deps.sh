#!/bin/sh
# Installs the Debian packages lhyper needs to build and test, when missing.
# Idempotent and quiet when everything is there.
set -e
pkgs="make gcc pkg-config lua5.4 liblua5.4-dev libuv1-dev zlib1g-dev libssl-dev lua-cjson lua-busted lua-socket curl python3"
# clang and its runtime (libFuzzer) for the fuzz smoke run of `make test`
if [ "${1:-}" = test ]; then
  pkgs="$pkgs valgrind nodejs nginx wrk python3-requests prometheus python3-prometheus-client clang libclang-rt-14-dev openssl python3-trustme"
  # WebSocket interop: Python's websockets, Node's ws, Chromium, lua-resty-websocket on nginx
  pkgs="$pkgs python3-websockets node-ws chromium libnginx-mod-http-lua lua-nginx-websocket"
fi
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "lhyper: missing packages:$missing (run as root, or install them with apt-get)" >&2
  exit 1
fi
echo "lhyper: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends $missing >/dev/null
