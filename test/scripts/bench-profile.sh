#!/usr/bin/env bash
# Profiles rmqproxy's send path: starts the binary (flush: sync, fresh data
# directory, health.pprof on loopback), drives it with the load generator
# (official Go client, separate process, 1 KiB bodies) at 64 sends in flight,
# and saves a CPU profile and allocation profiles taken during the run.
# Prints the load generator's figures (server CPU seconds and allocations
# per message) and the top of both profiles.
#
# Usage: test/scripts/bench-profile.sh [seconds, default 20]
# Environment: BENCH_OUT=DIR (default: a new temporary directory, kept),
#              BENCH_INFLIGHT=64, BENCH_RMQPROXY_FLAGS (extra flags).
# Then e.g.: go tool pprof -http=127.0.0.1:0 DIR/rmqproxy DIR/cpu.pprof
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
out=${BENCH_OUT:-$(mktemp -d /tmp/bench-profile.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
go build -o "$out/rmqproxy" ./cmd/rmqproxy
go build -o "$out/loadgen" ./test/bench/loadgen
grpc=$(port) admin=$(port) health=$(port)
rm -rf "$out/data"
# shellcheck disable=SC2086 # BENCH_RMQPROXY_FLAGS is a list of flags
"$out/rmqproxy" --grpc.address=127.0.0.1:"$grpc" --admin.address=127.0.0.1:"$admin" \
	--health.address=127.0.0.1:"$health" --health.pprof=true --local.dataDir="$out/data" \
	--local.flush=sync --log.level=warn ${BENCH_RMQPROXY_FLAGS:-} 2> "$out/rmqproxy.log" &
pid=$!
stop() {
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$admin") 2>/dev/null && break; sleep 0.2; done
RMQPROXY_ADMIN_ADDRESS=127.0.0.1:$admin "$out/rmqproxy" topic create bench --type NORMAL --queues 8 > /dev/null
pp=http://127.0.0.1:$health/debug/pprof
env "rocketmq.client.logRoot=$out/client-logs" "$out/loadgen" run -label rmqproxy -endpoint 127.0.0.1:"$grpc" \
	-pid "$pid" -pprof "$pp" -inflight "${BENCH_INFLIGHT:-64}" -duration "${secs}s" -warmup 2s \
	-first-warmup 5s -rounds 1 -drain 0 -drain-topic bench > "$out/result.json" &
lg=$!
# The measured window starts after 7 s of warm-up; profile its middle.
sleep 9
curl -sf -o "$out/allocs0.pprof" "$pp/allocs"
curl -sf -o "$out/cpu.pprof" "$pp/profile?seconds=$((secs - 4))"
curl -sf -o "$out/allocs1.pprof" "$pp/allocs"
wait "$lg"
cat "$out/result.json"
go tool pprof -top -nodecount=25 "$out/rmqproxy" "$out/cpu.pprof" 2>/dev/null | sed -n '5,32p'
go tool pprof -sample_index=alloc_objects -base "$out/allocs0.pprof" -top -nodecount=25 \
	"$out/rmqproxy" "$out/allocs1.pprof" 2>/dev/null | sed -n '5,32p'
echo "profiles in $out" >&2
