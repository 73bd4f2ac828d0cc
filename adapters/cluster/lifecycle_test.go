package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestFailedStartClosesItsConnections: a NameServer that answers, but
// with an error, until cluster.startTimeout: the start fails, and the
// connection it opened to the NameServer is closed (fx does not stop a
// module whose start failed, so Close is never called).
func TestFailedStartClosesItsConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		open, accepted atomic.Int32
		wg             sync.WaitGroup
	)
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			open.Add(1)
			accepted.Add(1)
			t.Cleanup(func() { nc.Close() })
			wg.Go(func() {
				defer open.Add(-1)
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					req, err := remoting.ReadCommand(br, 0)
					if err != nil {
						return
					}
					b, _ := remoting.AppendCommand(nil, remoting.NewResponse(req, remoting.ResponseSystemError, "not now"))
					if _, err := nc.Write(b); err != nil {
						return
					}
				}
			})
		}
	})
	cfg := DefaultConfig()
	cfg.NameServers = []string{ln.Addr().String()}
	cfg.StartTimeout = 500 * time.Millisecond
	b, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cluster.startTimeout") {
		t.Fatalf("start: %v", err)
	}
	if accepted.Load() == 0 {
		t.Fatal("the start never connected to the NameServer")
	}
	waitfor.Condition(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := open.Load(); n > 0 {
			return fmt.Errorf("%d connections to the NameServer still open after the failed start", n)
		}
		return nil
	})
}
