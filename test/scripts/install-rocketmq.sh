#!/usr/bin/env bash
# Installs the Apache RocketMQ NameServer and Broker that test/rocketmqenv
# starts for cluster-mode tests (and the Apache proxy the differential test
# compares rmqproxy with): the jars of the release pinned in
# test/rocketmq/pom.xml, from Maven Central, copied to
# test/rocketmq/target/lib (mvn dependency:copy-dependencies; nothing is
# built from source). The Maven cache (~/.m2) stays outside the repo.
# On Linux it also builds test/scripts/loopbind.c into
# target/lib/libloopbind.so (test/scripts/build-loopbind.sh, with the C
# compiler -race needs), which test/rocketmqenv preloads into every JVM so
# that ports without a bind address setting listen on loopback only.
#
# Idempotent: a stamp of the pom and the Java version is kept in
# target/.install-stamp; the copy is skipped while it matches and the jars
# are there. Java and Maven come from Debian's packages when missing and
# this runs as root with apt-get; otherwise the script says so and fails,
# and the tests skip (or, under RMQPROXY_TEST_REQUIRE_SERVICES=1, fail).
#
# Usage: test/scripts/install-rocketmq.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=test/rocketmq

if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "-- rocketmq: installing a JDK and Maven from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null
  else
    echo "install-rocketmq: java and mvn are needed and cannot be installed here" >&2
    exit 1
  fi
fi

want=$({ java -version 2>&1 | head -1; cat "$dir/pom.xml"; } | sha256sum | cut -d' ' -f1)
have=
[ -f "$dir/target/.install-stamp" ] && have=$(cat "$dir/target/.install-stamp")
if [ "$want" = "$have" ] && compgen -G "$dir/target/lib/rocketmq-broker-*.jar" >/dev/null \
  && compgen -G "$dir/target/lib/rocketmq-namesrv-*.jar" >/dev/null; then
  echo "-- rocketmq: up to date ($dir/target/lib)"
  test/scripts/build-loopbind.sh "$dir/target/lib"
  exit 0
fi
echo "-- rocketmq: mvn dependency:copy-dependencies ($dir/pom.xml)"
rm -rf "$dir/target"
mvn -q -B -Dstyle.color=never -f "$dir/pom.xml" dependency:copy-dependencies
test/scripts/build-loopbind.sh "$dir/target/lib"
echo "$want" >"$dir/target/.install-stamp"
echo "-- rocketmq: $(ls "$dir/target/lib" | wc -l) jars in $dir/target/lib"
