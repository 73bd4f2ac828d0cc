// Package freeport finds loopback ports for test processes that must be
// started again on the same port (a broker or rmqproxy restarted in a
// test). Listening on port 0 gives a port from the kernel's ephemeral
// range, from which the kernel also takes the local port of every outgoing
// connection: while the first process is down, any connection on the
// machine (or a client reconnecting to that very port, which can connect
// to itself) may take it, and the restart fails with "address already in
// use". The ports here come from below that range, where only an explicit
// bind can take them.
package freeport

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Addr returns "127.0.0.1:P" for a free port P from below the ephemeral
// range, for a process that a test starts again on the same address.
func Addr(t testing.TB) string {
	t.Helper()
	p, err := Range(0)
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// Range returns a free port P such that P-below .. P+1 are free too.
// The ports are taken from below the kernel's ephemeral range (see the
// package comment; CI once saw a restarted broker's HA port taken).
func Range(below int) (int, error) {
	lo, hi := 10000, ephemeralLow()-2
	if hi-lo < 1000 {
		lo, hi = 1025+below, 65534 // an unusual port range: any port will do
	}
	for range 200 {
		p := lo + below + rand.IntN(hi-lo-below)
		if portsFree(p-below, p+1) {
			return p, nil
		}
	}
	return 0, errors.New("no free port range")
}

// portsFree reports whether every port from..to can be listened on at
// 127.0.0.1 now.
func portsFree(from, to int) bool {
	for q := from; q <= to; q++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// ephemeralLow is the first port of the kernel's range for local ports of
// outgoing connections (32768 when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 1024 {
		return 32768
	}
	return n
}
