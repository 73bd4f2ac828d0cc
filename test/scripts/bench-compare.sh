#!/usr/bin/env bash
# Side-by-side benchmark: rmqproxy (local mode, flush: sync) and the Apache
# RocketMQ proxy 5.5.0 (local mode, SYNC_FLUSH) on this machine, driven by
# the same load generator (test/bench/loadgen: the official Go client v5.1.4
# in a process of its own, 1 KiB bodies). Both servers run for the whole
# benchmark and are measured in turns, round by round, so that load from
# elsewhere on the machine falls on both alike. Prints the Markdown table of
# docs/benchmarks.md and keeps the raw JSON lines.
#
# Usage: test/scripts/bench-compare.sh [apache] [rmqproxy] [baseline=BINARY]
#        (default: apache rmqproxy; baseline= adds an earlier rmqproxy build)
# Environment:
#   BENCH_ROUNDS=3          rounds; each measures every point of every server
#   BENCH_DURATION=10s      measured time of one produce point
#   BENCH_DRAIN=20000       messages drained by two simple consumers per round
#   BENCH_FIRST_WARMUP=20s  sending (64 in flight) to each server first, before
#                           a warm-up round 0 of every workload (left out of
#                           the table), so that the JVM's JIT has compiled
#                           every path
#   BENCH_OUT=DIR           where results.jsonl and the servers' logs go
#                           (default: a new temporary directory, kept)
#   BENCH_APACHE_CACHE=DIR  where the Apache jars are installed (default
#                           ~/.cache/rmqproxy-bench/apache-5.5.0)
#   BENCH_RMQPROXY_FLAGS    extra flags for rmqproxy
#   BENCH_FREEZE=1          stop (SIGSTOP) the servers not being measured and
#                           continue them (SIGCONT) for their turn, so that an
#                           idle server's background threads (the Apache
#                           broker's timer and flush services spin while idle)
#                           take no CPU from the one measured; 0: all run
#   BENCH_NICE=N            run the benchmark in a session of its own at nice N
#                           (e.g. -5, as root): on a machine others use, it
#                           then gets most of the CPU, alike for every server
#                           measured, closer to a machine of its own
#
# rmqproxy runs with health.pprof on (health.address on loopback), so that
# the load generator can read its allocation counters; while it runs, e.g.
#   go tool pprof http://127.0.0.1:HEALTHPORT/debug/pprof/profile?seconds=10
#
# Everything binds 127.0.0.1 on free ports; every server is stopped by PID.
# The Apache JVMs run with LD_PRELOAD of test/scripts/loopbind.c (built
# into the jar cache with the system C compiler): the broker's HA port and
# the proxy's gRPC and Remoting ports have no bind address setting and
# would listen on every interface.
set -euo pipefail
# With BENCH_NICE, run in a session of our own and give its scheduling
# group that nice value: with autogroup scheduling (Linux's default for
# desktop and many server kernels) the CPU is shared between sessions, and a
# process's own nice value only counts inside its session.
if [ -n "${BENCH_NICE:-}" ] && [ -z "${BENCH_OWN_SESSION:-}" ]; then
	BENCH_OWN_SESSION=1 exec setsid --wait "$0" "$@"
fi
if [ -n "${BENCH_NICE:-}" ] && [ -w /proc/self/autogroup ]; then
	echo "$BENCH_NICE" > /proc/$$/autogroup 2>/dev/null || echo "bench-compare: cannot set the session's nice value" >&2
fi
cd "$(dirname "$0")/../.."
repo=$PWD

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(apache rmqproxy)
for t in "${targets[@]}"; do
	case $t in
	apache | rmqproxy | baseline=?*) ;;
	*) echo "bench-compare: unknown target $t (want apache, rmqproxy or baseline=BINARY)" >&2; exit 2 ;;
	esac
done
rounds=${BENCH_ROUNDS:-3}
duration=${BENCH_DURATION:-10s}
drain=${BENCH_DRAIN:-20000}
out=${BENCH_OUT:-$(mktemp -d /tmp/bench-compare.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
apache_version=5.5.0
cache=${BENCH_APACHE_CACHE:-$HOME/.cache/rmqproxy-bench/apache-$apache_version}

log() { echo "bench-compare: $*" >&2; }
nice=(nice -n "${BENCH_NICE:-0}") # execs the command: $! stays the server's PID

# free_port prints a TCP port that nothing listens on, whose neighbours
# (port-2 and port+1, which the RocketMQ broker also binds) are free too.
free_port() {
	python3 - <<'EOF'
import socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p > 1026 and p < 65534 and all(free(q) for q in (p - 2, p - 1, p, p + 1)):
        print(p); break
EOF
}

pids=()
# stop PID [SECONDS]: SIGTERM, wait, then SIGKILL.
stop() {
	local pid=$1 wait=${2:-30}
	kill -TERM "$pid" 2>/dev/null || return 0
	kill -CONT "$pid" 2>/dev/null || true # frozen for another server's turn
	for _ in $(seq $((wait * 10))); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	log "pid $pid did not stop in ${wait}s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "${pids[i]}" 5; done
}
trap cleanup EXIT

# wait_port PORT SECONDS WHAT
wait_port() {
	for _ in $(seq $(($2 * 5))); do
		if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	log "$3 does not listen on 127.0.0.1:$1 after $2s"
	return 1
}

log "building rmqproxy and the load generator"
go build -o "$out/rmqproxy" ./cmd/rmqproxy
go build -o "$out/loadgen" ./test/bench/loadgen
results=$out/results.jsonl
: > "$results" # a reused BENCH_OUT starts a new table

{
	echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel: $(uname -sr)"
	dev=$(df --output=source "$out" | tail -1)
	echo "disk: $dev ($(df -h --output=size,pcent "$out" | tail -1 | xargs) used, rotational=$(lsblk -dno ROTA "$dev" 2>/dev/null | xargs), $(lsblk -dno MODEL "$dev" 2>/dev/null | xargs))"
	# 1 KiB O_DSYNC writes: what one fdatasync costs on this disk.
	echo "sync writes: $(dd if=/dev/zero of="$out/sync-probe" bs=1k count=2000 oflag=dsync 2>&1 | tail -1)"
	rm -f "$out/sync-probe"
	echo "go: $(go version | cut -d' ' -f3), java: $(java -version 2>&1 | head -1)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); benchmark session at nice ${BENCH_NICE:-0} ($(cat /proc/$$/autogroup 2>/dev/null))"
} > "$out/machine.txt"

# Started servers: label -> "endpoint pid [loadgen flags]"; label -> the
# PIDs frozen while another server is measured.
declare -A servers processes
labels=()

# start_rmqproxy LABEL BINARY
start_rmqproxy() {
	local label=$1 bin=$2 grpc admin health data=$out/$1-data
	grpc=$(free_port) admin=$(free_port) health=$(free_port)
	rm -rf "$data"
	log "$label: starting $bin on 127.0.0.1:$grpc (flush: sync, data in $data)"
	# shellcheck disable=SC2086 # BENCH_RMQPROXY_FLAGS is a list of flags
	"${nice[@]}" "$bin" --grpc.address=127.0.0.1:"$grpc" --admin.address=127.0.0.1:"$admin" \
		--health.address=127.0.0.1:"$health" --local.dataDir="$data" --local.flush=sync \
		--health.pprof=true --log.level=warn ${BENCH_RMQPROXY_FLAGS:-} 2> "$out/$label.log" &
	local pid=$!
	pids+=("$pid")
	wait_port "$admin" 60 "$label admin API"
	for t in bench drain; do
		RMQPROXY_ADMIN_ADDRESS=127.0.0.1:$admin "$out/rmqproxy" topic create "$t" --type NORMAL --queues 8 > /dev/null
	done
	RMQPROXY_ADMIN_ADDRESS=127.0.0.1:$admin "$out/rmqproxy" group create g-drain > /dev/null
	env "rocketmq.client.logRoot=$out/client-logs" "$out/loadgen" wait -endpoint 127.0.0.1:"$grpc" -topic bench -timeout 60s
	servers[$label]="127.0.0.1:$grpc $pid -pprof http://127.0.0.1:$health/debug/pprof"
	processes[$label]=$pid
	labels+=("$label")
}

install_apache() {
	if [ -f "$cache/installed" ]; then return 0; fi
	log "installing Apache RocketMQ $apache_version into $cache (Maven Central)"
	rm -rf "$cache"
	mkdir -p "$cache/conf"
	mvn -q -f test/apache/pom.xml dependency:copy-dependencies -DoutputDirectory="$cache/lib" -DincludeScope=runtime
	for m in namesrv broker proxy tools; do
		unzip -p "$cache/lib/rocketmq-$m-$apache_version.jar" "rmq.$m.logback.xml" > "$cache/conf/rmq.$m.logback.xml"
	done
	touch "$cache/installed"
}

start_apache() {
	install_apache
	local home=$out/apache ns proxy_grpc proxy_remoting broker
	rm -rf "$home"
	mkdir -p "$home/conf" "$home/store" "$home/tmp" # tmp: the JVMs' temporary files (Netty's keyutil_* certificates)
	cp "$cache"/conf/*.xml "$home/conf/"
	ns=$(free_port) proxy_grpc=$(free_port) proxy_remoting=$(free_port) broker=$(free_port)
	cat > "$home/conf/namesrv.conf" <<-EOF
		listenPort=$ns
		bindAddress=127.0.0.1
	EOF
	cat > "$home/conf/broker.conf" <<-EOF
		brokerClusterName=DefaultCluster
		brokerName=broker-a
		brokerId=0
		listenPort=$broker
		bindAddress=127.0.0.1
		brokerIP1=127.0.0.1
		brokerIP2=127.0.0.1
		namesrvAddr=127.0.0.1:$ns
		storePathRootDir=$home/store
		storePathCommitLog=$home/store/commitlog
		mappedFileSizeCommitLog=134217728
		diskMaxUsedSpaceRatio=95
		flushDiskType=SYNC_FLUSH
	EOF
	cat > "$home/conf/proxy.json" <<-EOF
		{
		  "rocketMQClusterName": "DefaultCluster",
		  "proxyMode": "local",
		  "grpcServerPort": $proxy_grpc,
		  "remotingListenPort": $proxy_remoting,
		  "namesrvAddr": "127.0.0.1:$ns",
		  "localServeAddr": "127.0.0.1",
		  "brokerConfigPath": "$home/conf/broker.conf"
		}
	EOF
	local cp="$cache/lib/*"
	export ROCKETMQ_HOME=$home
	# The JVMs only (not rmqproxy, loadgen or the shell tools): binds to 0.0.0.0 or :: go
	# to loopback instead (see test/scripts/loopbind.c). env execs java, so
	# $! stays the JVM's PID.
	test/scripts/build-loopbind.sh "$cache/lib"
	local jenv=(env)
	[ -f "$cache/lib/libloopbind.so" ] && jenv=(env "LD_PRELOAD=$cache/lib/libloopbind.so")
	log "apache: starting the NameServer on 127.0.0.1:$ns"
	"${nice[@]}" "${jenv[@]}" java -Xms512m -Xmx512m -Duser.home="$home" -Djava.io.tmpdir="$home/tmp" -Drmq.logback.configurationFile="$home/conf/rmq.namesrv.logback.xml" \
		-Dtls.server.mode=disabled -cp "$cp" org.apache.rocketmq.namesrv.NamesrvStartup -c "$home/conf/namesrv.conf" \
		> "$home/namesrv.out" 2>&1 &
	local ns_pid=$!
	pids+=("$ns_pid")
	wait_port "$ns" 60 "NameServer"
	log "apache: starting the proxy (local mode, broker on $broker) with gRPC on 127.0.0.1:$proxy_grpc"
	"${nice[@]}" "${jenv[@]}" java -Xms1g -Xmx1g -Duser.home="$home" -Djava.io.tmpdir="$home/tmp" -Drmq.logback.configurationFile="$home/conf/rmq.proxy.logback.xml" \
		-cp "$cp" org.apache.rocketmq.proxy.ProxyStartup -pc "$home/conf/proxy.json" -pm local \
		> "$home/proxy.out" 2>&1 &
	local proxy_pid=$!
	pids+=("$proxy_pid")
	wait_port "$broker" 120 "the proxy's broker"
	local admin=("${jenv[@]}" java -Xms128m -Xmx256m -Duser.home="$home" -Djava.io.tmpdir="$home/tmp" -Drmq.logback.configurationFile="$home/conf/rmq.tools.logback.xml"
		-cp "$cp" org.apache.rocketmq.tools.command.MQAdminStartup)
	for t in bench drain; do
		"${admin[@]}" updateTopic -n 127.0.0.1:"$ns" -b 127.0.0.1:"$broker" -t "$t" -r 8 -w 8 -a +message.type=NORMAL > "$home/admin.out" 2>&1 ||
			{ cat "$home/admin.out" >&2; return 1; }
	done
	"${admin[@]}" updateSubGroup -n 127.0.0.1:"$ns" -b 127.0.0.1:"$broker" -g g-drain > "$home/admin.out" 2>&1 ||
		{ cat "$home/admin.out" >&2; return 1; }
	wait_port "$proxy_grpc" 120 "the proxy's gRPC port"
	env "rocketmq.client.logRoot=$out/client-logs" "$out/loadgen" wait -endpoint 127.0.0.1:"$proxy_grpc" -topic bench -timeout 120s
	servers[apache-proxy-$apache_version]="127.0.0.1:$proxy_grpc $proxy_pid"
	processes[apache-proxy-$apache_version]="$proxy_pid $ns_pid"
	labels+=("apache-proxy-$apache_version")
}

for t in "${targets[@]}"; do
	case $t in
	apache) start_apache ;;
	rmqproxy) start_rmqproxy rmqproxy "$out/rmqproxy" ;;
	baseline=*) start_rmqproxy rmqproxy-baseline "${t#baseline=}" ;;
	esac
done

# turn LABEL: with BENCH_FREEZE (the default), continue LABEL's processes
# and stop every other server's, then wait until LABEL serves again.
turn() {
	local label=$1 other endpoint
	[ "${BENCH_FREEZE:-1}" = 1 ] || return 0
	for other in "${labels[@]}"; do
		# shellcheck disable=SC2086 # a list of PIDs
		[ "$other" = "$label" ] || kill -STOP ${processes[$other]}
	done
	# shellcheck disable=SC2086
	kill -CONT ${processes[$label]}
	read -r endpoint _ <<< "${servers[$label]}"
	env "rocketmq.client.logRoot=$out/client-logs" "$out/loadgen" wait -endpoint "$endpoint" -topic bench -timeout 120s
}

# measure LABEL [loadgen flags]: one loadgen run against a started server.
measure() {
	local label=$1 endpoint pid extra
	shift
	turn "$label"
	read -r endpoint pid extra <<< "${servers[$label]}"
	log "$label: $* (load $(cut -d' ' -f1-3 /proc/loadavg))"
	# shellcheck disable=SC2086 # extra is a list of flags
	"${nice[@]}" env "rocketmq.client.logRoot=$out/client-logs" "$out/loadgen" run -label "$label" -endpoint "$endpoint" -pid "$pid" \
		-duration "$duration" -topic bench -drain-topic drain -group g-drain $extra "$@" | tee -a "$results"
}

# Round 0 warms every server up (JIT compilation, caches, connections): the
# first warm-up, then every workload once; the table leaves it out.
for label in "${labels[@]}"; do
	measure "$label" -first-warmup "${BENCH_FIRST_WARMUP:-20s}" -rounds 1 -first-round 0 -drain "$drain"
done
for round in $(seq "$rounds"); do
	for label in "${labels[@]}"; do
		measure "$label" -first-warmup 0 -rounds 1 -first-round "$round" -drain 0
	done
done
if [ "$drain" -gt 0 ]; then
	for round in $(seq "$rounds"); do
		for label in "${labels[@]}"; do
			measure "$label" -first-warmup 0 -inflight "" -rounds 1 -first-round "$round" -drain "$drain"
		done
	done
fi
for label in "${labels[@]}"; do
	# shellcheck disable=SC2086
	kill -CONT ${processes[$label]} 2>/dev/null || true
done
for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "${pids[i]}" 30; done # the proxy before its NameServer
pids=()
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"
cat "$out/machine.txt"
echo
"$out/loadgen" table "$results"
log "raw results and logs in $out"
