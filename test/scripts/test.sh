#!/usr/bin/env bash
# The whole rmqproxy test suite: what README.md's test command and .ci/run
# run. It installs what the tests need (Go modules; the official Java,
# Node.js and Python clients at pinned versions, through
# install-clients.sh, which also installs the JDK, Node.js or Python from
# Debian's packages when they are missing; the pinned Apache RocketMQ
# NameServer and Broker jars, through install-rocketmq.sh; PostgreSQL from
# Debian's packages, through install-postgres.sh, which also starts a
# throwaway server on loopback for the run) and skips nothing: every test,
# with the race detector, and alongside them a short run of every fuzz
# target beyond its seed corpus (5,000 inputs each by default). On a
# 2-core machine whose package caches were warm a fresh clone took 17 to
# 18.5 minutes through 2026-12 as the suite grew, and 22.7 minutes on a
# slow day with 20,000 inputs per target, whose fuzzing then outlasted the
# tests by six minutes: it got half of that, and no longer compiles every
# test package once more to list the targets. With 10,000 inputs, fuzzing
# (at a low priority, starved while the end-to-end tests run) outlasted
# them by five minutes again on 2026-12-08 (17.5 and 19.6 minutes): it now
# gets 5,000. Deeper runs: FUZZTIME below, or go test -fuzz on one target.
#
# Usage: test/scripts/test.sh            (from anywhere)
#        FUZZTIME=200000x test/scripts/test.sh   (executions per fuzz target)
set -euo pipefail
cd "$(dirname "$0")/../.."
# A count, not a duration: with a duration, Go 1.26's fuzzing coordinator can
# fail a target with a bare "context deadline exceeded" as the time runs out
# (golang/go#75804, fixed in Go 1.27), with no crasher behind it.
FUZZTIME=${FUZZTIME:-5000x}

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

# fuzz runs every fuzz target for $FUZZTIME beyond its seed corpus (the
# seeds run with the tests). It fails at the first target that finds a
# crasher (go test prints it and saves it under testdata/fuzz). The targets
# are found in the sources: `go test -list` compiled every test package once
# more only to name them, CPU the tests beside it need.
fuzz() {
  git ls-files '*_test.go' | grep -v /testdata/ | while read -r file; do
    grep -oE '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' "$file" |
      sed -E "s|^func (Fuzz[A-Za-z0-9_]*)\\(.*|./$(dirname "$file") \\1|"
  done | sort |
  while read -r pkg target; do
    echo "-- $pkg $target"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" || return 1
  done
}

echo "== tests (race detector on) and fuzzing (every target for ${FUZZTIME})"
# Integration tests that need a service must not skip under this script.
export RMQPROXY_TEST_REQUIRE_SERVICES=1
# Three runs side by side, printed once all have ended: the packages' own
# tests (interop included) with the race detector, and the end-to-end tests
# against local mode and against cluster mode (test/e2e's scenarios in front
# of a real Apache RocketMQ, and test/cluster), each target in a process of
# its own (RMQPROXY_TEST_TARGETS; each test binary starts its own NameServer
# and broker on free ports). The end-to-end tests drive the proxy with the
# official Go client, which has data races of its own (see test/testenv
# UseChildProcess): the test process runs without the race detector, the
# proxy it starts is built with it. The end-to-end tests spend most of
# their time waiting (long polls, restarts, JVMs starting), so running the
# three at once keeps both cores busy.
logs=$(mktemp -d /tmp/rmqproxy-test-logs.XXXXXX)
# Fuzzing is CPU-bound and the end-to-end tests mostly wait: it runs
# alongside them at a lower priority, on the CPU they leave idle.
nice -n 10 bash -c "$(declare -f fuzz); FUZZTIME=$FUZZTIME fuzz" >"$logs/fuzz" 2>&1 &
fuzzing=$!
# The package tests are CPU-bound too (the few with services of their own
# are not timed), while the end-to-end tests' brokers and proxies answer within
# request timeouts (a starved test broker answered after 5 s in CI runs):
# the packages run a little below them.
nice -n 5 go test -race -count=1 -timeout 20m $(go list ./... | grep -v '/test/e2e$\|/test/cluster$') >"$logs/packages" 2>&1 &
packages=$!
RMQPROXY_TEST_CHILD_RACE=1 RMQPROXY_TEST_TARGETS=cluster go test -count=1 -timeout 30m ./test/e2e ./test/cluster >"$logs/cluster" 2>&1 &
cluster=$!
local_rc=0
RMQPROXY_TEST_CHILD_RACE=1 RMQPROXY_TEST_TARGETS=local go test -count=1 -timeout 30m ./test/e2e >"$logs/local" 2>&1 || local_rc=$?
packages_rc=0 cluster_rc=0 fuzz_rc=0
wait "$packages" || packages_rc=$?
wait "$cluster" || cluster_rc=$?
wait "$fuzzing" || fuzz_rc=$?
echo "-- packages (go test -race)"; cat "$logs/packages"
echo "-- end to end, local mode (test/e2e)"; cat "$logs/local"
echo "-- end to end, cluster mode (test/e2e, test/cluster)"; cat "$logs/cluster"
echo "-- fuzzing"; grep -v '^fuzz: elapsed' "$logs/fuzz"
rm -rf "$logs"
if [ "$packages_rc" != 0 ] || [ "$local_rc" != 0 ] || [ "$cluster_rc" != 0 ] || [ "$fuzz_rc" != 0 ]; then
  echo "== tests failed (${SECONDS}s)"; exit 1
fi
echo "== all tests passed (${SECONDS}s)"

