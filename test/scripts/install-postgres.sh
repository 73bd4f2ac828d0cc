#!/usr/bin/env bash
# PostgreSQL for the tests of the security path (users, ACL policies and
# the audit log live in PostgreSQL; see docs/security.md).
#
#   test/scripts/install-postgres.sh            install the server if missing
#   test/scripts/install-postgres.sh start DIR  also start a throwaway cluster
#                                               in DIR and print
#                                               "export RMQPROXY_TEST_POSTGRES=DSN"
#   test/scripts/install-postgres.sh stop DIR   stop the cluster of DIR (by PID)
#
# Installing: the server is Debian 12's PostgreSQL 15 (package
# postgresql-15, the version bookworm ships), installed with apt-get when
# no initdb is found and this runs as root; otherwise the script says so
# and fails, and the tests skip (or, under RMQPROXY_TEST_REQUIRE_SERVICES=1,
# fail). Idempotent: nothing is installed when initdb is there.
#
# Starting: initdb (trust authentication, user postgres) in DIR/data unless
# it exists, then pg_ctl start listening on 127.0.0.1 only, on a free port
# kept in DIR/port (a restart of the same DIR reuses it), with the Unix
# socket in DIR. PostgreSQL refuses to run as root: as root, the cluster runs
# as the system user postgres (which the Debian package creates) and DIR is
# handed to it. fsync is off: the data is thrown away.
#
# Stopping: SIGINT (PostgreSQL's fast shutdown) to the postmaster PID from
# DIR/data/postmaster.pid, waiting for it to exit (SIGKILL after 30 s).
set -euo pipefail

pgmajor=15

bindir() {
  local d
  if [ -n "${RMQPROXY_PG_BINDIR:-}" ]; then echo "$RMQPROXY_PG_BINDIR"; return; fi
  for d in /usr/lib/postgresql/$pgmajor/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  done
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  return 1
}

install() {
  if bindir >/dev/null; then
    echo "-- postgres: $("$(bindir)/postgres" --version) in $(bindir)" >&2
    return
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-postgres: PostgreSQL ($pgmajor) is needed and cannot be installed here (not root, or no apt-get)" >&2
    exit 1
  fi
  echo "-- postgres: installing postgresql-$pgmajor from Debian's packages" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "postgresql-$pgmajor" >/dev/null
  bindir >/dev/null || { echo "install-postgres: postgresql-$pgmajor installed but no initdb found" >&2; exit 1; }
  echo "-- postgres: $("$(bindir)/postgres" --version)" >&2
}

# as runs a command as the cluster's owner: ourselves, or postgres when root.
as() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local dir=$1 bin port i
  install
  bin=$(bindir)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown postgres: "$dir"
    # Every directory above DIR must let postgres through.
    local up=$dir
    while [ "$up" != / ]; do
      up=$(dirname "$up")
      if ! runuser -u postgres -- test -x "$up"; then chmod o+x "$up"; fi
    done
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  if [ -f "$dir/port" ] && as "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    # Already running (started before with this DIR): the same answer.
    echo "export RMQPROXY_TEST_POSTGRES='postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres?sslmode=disable'"
    return
  fi
  for i in $(seq 1 50); do
    if [ -f "$dir/port" ]; then
      port=$(cat "$dir/port")
    else
      port=$((20000 + RANDOM % 40000))
      port_free "$port" || continue
    fi
    if as "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >/dev/null; then
      echo "$port" >"$dir/port"
      echo "export RMQPROXY_TEST_POSTGRES='postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable'"
      return
    fi
    if [ -f "$dir/port" ]; then
      tail -20 "$dir/postgres.log" >&2
      echo "install-postgres: cannot start the cluster of $dir on its port $port" >&2
      exit 1
    fi
  done
  tail -20 "$dir/postgres.log" >&2
  echo "install-postgres: no free port for PostgreSQL" >&2
  exit 1
}

stop() {
  local dir=$1 pid i
  [ -f "$dir/data/postmaster.pid" ] || return 0
  pid=$(head -1 "$dir/data/postmaster.pid")
  kill -INT "$pid" 2>/dev/null || return 0
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "install-postgres: postmaster $pid did not stop in 30s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

case "${1:-install}" in
  install) install ;;
  start) [ $# = 2 ] || { echo "usage: $0 start DIR" >&2; exit 2; }; start "$2" ;;
  stop) [ $# = 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 [install | start DIR | stop DIR]" >&2; exit 2 ;;
esac
