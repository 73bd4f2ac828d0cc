package rocketmqenv_test

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
)

// TestJVMsListenOnLoopbackOnly checks the rule that tests bind loopback
// only for the JVMs the harness starts: every TCP socket the NameServer,
// the broker and the Apache proxy listen on is on 127.0.0.1 (or ::1).
// Some of their ports have no bind address setting (the broker's HA port,
// the proxy's gRPC and Remoting ports) and listened on every interface
// until the harness preloaded test/scripts/loopbind.c.
func TestJVMsListenOnLoopbackOnly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the JVMs' listening sockets from /proc, which only Linux has")
	}
	c := rocketmqenv.Start(t, rocketmqenv.Options{})
	c.StartApacheProxy(t, c.ClusterName)
	procs := c.Processes()
	if len(procs) != 3 {
		t.Fatalf("want the NameServer, the broker and the proxy running, have %v", procs)
	}
	for name, pid := range procs {
		ls, err := listeners(pid)
		if err != nil {
			t.Fatalf("%s (pid %d): %v", name, pid, err)
		}
		if len(ls) == 0 {
			t.Errorf("%s (pid %d) listens on no TCP socket", name, pid)
		}
		for _, ap := range ls {
			if !ap.Addr().Unmap().IsLoopback() {
				t.Errorf("%s (pid %d) listens on %v, beyond loopback", name, pid, ap)
			}
		}
		t.Logf("%s (pid %d) listens on %v", name, pid, ls)
	}
}

// listeners returns the local addresses of the listening TCP sockets
// process pid holds open, from /proc/PID/fd (socket inodes) and
// /proc/PID/net/tcp and tcp6 (the sockets of its network namespace).
func listeners(pid int) ([]netip.AddrPort, error) {
	dir := fmt.Sprintf("/proc/%d", pid)
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var out []netip.AddrPort
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(dir, "net", table))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] { // 0A: LISTEN
				continue
			}
			ap, err := procAddr(fields[1])
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %v", table, err)
			}
			out = append(out, ap)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// procAddr parses an address of /proc/net/tcp{,6}: the IP as hexadecimal
// 32-bit words in the host's byte order, a colon, the port in hexadecimal.
func procAddr(s string) (netip.AddrPort, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	raw, err := hex.DecodeString(ipHex)
	if !ok || err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	ip := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
