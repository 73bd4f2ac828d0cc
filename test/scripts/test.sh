#!/usr/bin/env bash
# The whole rmqproxy test suite: what README.md's test command and .ci/run
# run. It installs what the tests need (Go modules; the official Java,
# Node.js and Python clients at pinned versions, through
# install-clients.sh, which also installs the JDK, Node.js or Python from
# Debian's packages when they are missing; the pinned Apache RocketMQ
# NameServer and Broker jars, through install-rocketmq.sh; PostgreSQL from
# Debian's packages, through install-postgres.sh, which also starts a
# throwaway server on loopback for the run) and skips nothing: every test,
# with the race detector, then a short run of every fuzz target beyond its
# seed corpus.
#
# Usage: test/scripts/test.sh            (from anywhere)
#        FUZZTIME=200000x test/scripts/test.sh   (executions per fuzz target)
set -euo pipefail
cd "$(dirname "$0")/../.."
# A count, not a duration: with a duration, Go 1.26's fuzzing coordinator can
# fail a target with a bare "context deadline exceeded" as the time runs out
# (golang/go#75804, fixed in Go 1.27), with no crasher behind it.
FUZZTIME=${FUZZTIME:-20000x}

echo "== go $(go env GOVERSION), $(nproc) cores"
go mod download

echo "== gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...

echo "== official Java, Node.js and Python clients for test/interop"
test/scripts/install-clients.sh

echo "== Apache RocketMQ NameServer and Broker for test/rocketmqenv (cluster mode)"
test/scripts/install-rocketmq.sh

echo "== PostgreSQL for the security tests (install-postgres.sh; stopped when this script ends)"
pgdir=$(mktemp -d /tmp/rmqproxy-pg.XXXXXX)
trap 'test/scripts/install-postgres.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
eval "$(test/scripts/install-postgres.sh start "$pgdir")"

echo "== tests (race detector on)"
# Integration tests that need a service must not skip under this script.
export RMQPROXY_TEST_REQUIRE_SERVICES=1
# Two runs side by side, printed once both have ended: the packages' own tests
# (interop included) with the race detector, and the end-to-end tests. The
# end-to-end tests drive the proxy with the official Go client, which has
# data races of its own (see test/testenv UseChildProcess): the test process
# runs without the race detector, the proxy it starts is built with it.
# test/e2e runs every scenario against local mode, then against cluster mode
# in front of a real Apache RocketMQ (testenv.MainTargets). Much of their
# time is spent waiting (long polls, restarts, JVMs starting), so running
# them side by side keeps both cores busy.
logs=$(mktemp -d /tmp/rmqproxy-test-logs.XXXXXX)
go test -race -count=1 -timeout 20m $(go list ./... | grep -v '/test/e2e$\|/test/cluster$') >"$logs/packages" 2>&1 &
packages=$!
e2e_rc=0
RMQPROXY_TEST_CHILD_RACE=1 go test -count=1 -timeout 40m ./test/e2e ./test/cluster >"$logs/e2e" 2>&1 || e2e_rc=$?
packages_rc=0
wait "$packages" || packages_rc=$?
echo "-- packages (go test -race)"; cat "$logs/packages"
echo "-- end to end (test/e2e, test/cluster)"; cat "$logs/e2e"
rm -rf "$logs"
if [ "$packages_rc" != 0 ] || [ "$e2e_rc" != 0 ]; then
  echo "== tests failed (${SECONDS}s)"; exit 1
fi
echo "-- tests passed (${SECONDS}s since the start)"

echo "== fuzzing every target for ${FUZZTIME}"
go test -list '^Fuzz' ./... | awk '
  /^Fuzz/ { targets[n++] = $1; next }
  /^ok/   { for (i = 0; i < n; i++) print $2, targets[i]; n = 0 }' |
while read -r pkg target; do
  echo "-- $pkg $target"
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
done
echo "== all tests passed (${SECONDS}s)"
