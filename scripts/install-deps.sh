#!/bin/sh
# Installs the Debian (bookworm) packages Inferneo needs to build and test. Idempotent.
#   scripts/install-deps.sh              install (apt-get update + install)
#   scripts/install-deps.sh --if-missing install only when some package is missing
set -e
PKGS="build-essential cmake pkg-config libwebsockets-dev libjansson-dev libpcre2-dev libcmocka-dev
python3 python3-pytest python3-websockets python3-httpx nodejs npm clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ "$1" = "--if-missing" ] && [ -z "$missing" ]; then
    exit 0
fi
# node/npm may come from elsewhere (e.g. a preinstalled Node): accept them when on PATH.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    missing=$(echo "$missing" | tr ' ' '\n' | grep -v -x -e nodejs -e npm | tr '\n' ' ')
fi
[ -z "$(echo $missing)" ] && exit 0
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
