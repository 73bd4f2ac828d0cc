#!/usr/bin/env bash
# Builds test/scripts/loopbind.c, the LD_PRELOAD library that makes the
# Apache RocketMQ JVMs the tests and benchmarks start listen on loopback
# only (some of their ports have no bind address setting; see the comment
# in loopbind.c), into DIR/libloopbind.so with the system C compiler (the
# one -race needs). Idempotent: nothing is done while the library is newer
# than its source. Linux only (LD_PRELOAD of a glibc program); elsewhere it
# says so and does nothing.
#
# Usage: test/scripts/build-loopbind.sh DIR   (install-rocketmq.sh: test/rocketmq/target/lib)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
src=$(cd "$(dirname "$0")" && pwd)/loopbind.c
out=$1/libloopbind.so
if [ "$(uname -s)" != Linux ]; then
  echo "-- loopbind: not Linux; the JVMs run without it"
  exit 0
fi
if [ -f "$out" ] && [ "$out" -nt "$src" ]; then
  exit 0
fi
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "build-loopbind: no C compiler ($cc); install gcc" >&2; exit 1; }
mkdir -p "$1"
tmp=$(mktemp "$1/.libloopbind.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"$cc" -O2 -Wall -Werror -shared -fPIC -o "$tmp" "$src" -ldl
chmod 0755 "$tmp"
mv -f "$tmp" "$out" # atomic: a JVM starting meanwhile loads the old or the new one
echo "-- loopbind: built $out"
