#!/usr/bin/env bash
# Installs the official RocketMQ 5 clients that test/interop drives, pinned:
#
#   Java     org.apache.rocketmq:rocketmq-client-java (version in test/java/pom.xml)
#            -> test/java/target/classes and test/java/target/lib
#   Node.js  rocketmq-client-nodejs (test/node/package.json + package-lock.json)
#            -> test/node/node_modules (npm ci)
#   Python   rocketmq-python-client and its dependencies (test/python/requirements.txt)
#            -> test/python/.venv
#
# Idempotent: each part keeps a stamp of the files it was built from and is
# skipped while they are unchanged and the result is still there. A missing
# toolchain (java+mvn, node+npm, python3 with venv) is installed from
# Debian's packages when this runs as root with apt-get; otherwise that part
# is reported and skipped, and the interop tests skip or (under
# RMQPROXY_TEST_REQUIRE_SERVICES=1) fail naming it.
#
# Usage: test/scripts/install-clients.sh [java] [node] [python]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(java node python)

apt_updated=
# apt_install installs Debian packages when possible; returns non-zero if not.
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    return 1
  fi
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# stamp prints a digest of the named files and of extra text.
stamp() {
  local extra=$1
  shift
  { printf '%s\n' "$extra"; cat "$@"; } | sha256sum | cut -d' ' -f1
}

failed=()

install_java() {
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    echo "-- java: installing a JDK and Maven from Debian's packages"
    apt_install openjdk-17-jdk-headless maven || {
      echo "-- java: no java/mvn and cannot install them; skipped"; failed+=(java); return; }
  fi
  local dir=test/java want have=
  want=$(stamp "$(java -version 2>&1 | head -1)" "$dir/pom.xml" $(find "$dir/src" -type f | sort))
  [ -f "$dir/target/.install-stamp" ] && have=$(cat "$dir/target/.install-stamp")
  if [ "$want" = "$have" ] && compgen -G "$dir/target/lib/rocketmq-client-java-*.jar" >/dev/null; then
    echo "-- java: up to date"
  else
    echo "-- java: mvn package ($dir/pom.xml)"
    rm -rf "$dir/target"
    mvn -q -B -Dstyle.color=never -f "$dir/pom.xml" package
    echo "$want" >"$dir/target/.install-stamp"
  fi
  # What test/interop compares with the sources it sees (by content, as
  # git checkouts change modification times, not contents).
  cat $(find "$dir/src" -type f | LC_ALL=C sort) | sha256sum | cut -d' ' -f1 >"$dir/target/.sources.sha256"
}

install_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "-- node: installing Node.js and npm from Debian's packages"
    apt_install nodejs npm || {
      echo "-- node: no node/npm and cannot install them; skipped"; failed+=(node); return; }
  fi
  local dir=test/node want have=
  want=$(stamp "$(node --version)" "$dir/package.json" "$dir/package-lock.json")
  [ -f "$dir/node_modules/.install-stamp" ] && have=$(cat "$dir/node_modules/.install-stamp")
  if [ "$want" = "$have" ] && [ -f "$dir/node_modules/rocketmq-client-nodejs/package.json" ]; then
    echo "-- node: up to date"
    return
  fi
  echo "-- node: npm ci ($dir)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$dir/node_modules/.install-stamp"
}

install_python() {
  if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "-- python: installing python3 and venv from Debian's packages"
    apt_install python3 python3-venv || {
      echo "-- python: no python3 with venv and cannot install it; skipped"; failed+=(python); return; }
  fi
  local dir=test/python want have=
  want=$(stamp "$(python3 --version) $(command -v python3)" "$dir/requirements.txt")
  [ -f "$dir/.venv/.install-stamp" ] && have=$(cat "$dir/.venv/.install-stamp")
  if [ "$want" = "$have" ] && "$dir/.venv/bin/python" -c 'import rocketmq' 2>/dev/null; then
    echo "-- python: up to date"
    return
  fi
  echo "-- python: venv $dir/.venv, pip install -r $dir/requirements.txt"
  rm -rf "$dir/.venv"
  python3 -m venv "$dir/.venv"
  "$dir/.venv/bin/pip" install -q --disable-pip-version-check -r "$dir/requirements.txt"
  echo "$want" >"$dir/.venv/.install-stamp"
}

for part in "${parts[@]}"; do
  case "$part" in
    java) install_java ;;
    node) install_node ;;
    python) install_python ;;
    *) echo "unknown part $part (java, node or python)" >&2; exit 2 ;;
  esac
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "install-clients: not installed: ${failed[*]}" >&2
  exit 1
fi
echo "-- clients installed under $root/test/{java,node,python}"
