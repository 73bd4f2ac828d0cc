#!/usr/bin/env bash
# Runs rmqproxy's benchmarks: end to end through the official Go client
# (test/bench) and the storage engine's own (adapters/localbroker).
# Usage: test/scripts/bench.sh [extra go test flags, e.g. -count=10]
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench . -benchtime 5000x "$@" ./test/bench
go test -run '^$' -bench . "$@" ./adapters/localbroker/...
