package listenaddr_test

import (
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/internal/listenaddr"
)

func TestCheckHost(t *testing.T) {
	for _, ok := range [][2]string{{":8081", ""}, {"127.0.0.1:8081", "127.0.0.1"}, {"[::1]:8081", "::1"}, {"[fe80::1%eth0]:8081", "fe80::1%eth0"},
		{"localhost:8081", "localhost"}, {"proxy-1.example.com:8081", "proxy-1.example.com"}} {
		if err := listenaddr.CheckHost(ok[0], ok[1], "127.0.0.1:8081"); err != nil {
			t.Errorf("CheckHost(%q): %v", ok[0], err)
		}
	}
	for _, bad := range [][2]string{{"Zq9Xk7@127.0.0.1:8081", "Zq9Xk7@127.0.0.1"}, {"[user:Zq9Xk7@::1]:8081", "user:Zq9Xk7@::1"}, {"127.0.0.1/x:8081", "127.0.0.1/x"}} {
		err := listenaddr.CheckHost(bad[0], bad[1], "127.0.0.1:8081")
		if strings.Contains(bad[0], "@") {
			if e := listenaddr.CheckUser(bad[0], "127.0.0.1:8081"); e == nil || e.Error() != err.Error() {
				t.Errorf("CheckUser(%q): %v, want %v", bad[0], e, err)
			}
		}
		if err == nil || strings.Contains(err.Error(), "Zq9Xk7") || !strings.Contains(err.Error(), "such as 127.0.0.1:8081") {
			t.Errorf("CheckHost(%q): %v; want it refused, the form named, no password", bad[0], err)
		}
	}
}
