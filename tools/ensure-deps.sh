#!/bin/sh
# Installs the Debian packages turbo builds against when any is missing.
# Called by the Makefile before it reads pkg-config; prints one line of what it did.
# Set TURBO_NO_APT=1 to only report what is missing.
set -u
PKGS="libzmq3-dev libmsgpack-dev libsqlite3-dev sqlite3 libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libopenblas-dev pkg-config"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Tools the tests use (sanitizer runtime for the fuzz target, valgrind, ffprobe for checks).
for p in libclang-rt-14-dev clang valgrind ffmpeg; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "deps: all packages present"
  exit 0
fi
if [ "${TURBO_NO_APT:-0}" = 1 ] || [ "$(id -u)" != 0 ]; then
  echo "deps: missing:$missing (install them with apt-get, or run make as root)" >&2
  exit 1
fi
echo "deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2 && apt-get install -y -q --no-install-recommends $missing >&2 || {
  echo "deps: apt-get failed for:$missing" >&2; exit 1; }
echo "deps: installed$missing"
