package cluster

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestCloseWaitsForTheAnswerOfAnAbandonedPop: a receive gives up while
// the broker still holds its POP_MESSAGE (rmqproxy stopping ends the
// clients' long polls at once), and the adapter is closed. A broker keeps
// such a pop until its polling time ends and pops the next message that
// arrives meanwhile; its answer reached a proxy that had closed the
// connection already, and the message stayed invisible for the whole
// invisible time (60 s for a push consumer), once in a rolling restart of
// two instances under traffic. Close now waits, within its context, for
// the answers of the abandoned pops, whose messages are released as any
// late answer's.
func TestCloseWaitsForTheAnswerOfAnAbandonedPop(t *testing.T) {
	lb := startLatePopBroker(t, 0)
	var logs logbuf.Buffer
	cfg := DefaultConfig()
	cfg.NameServers = []string{lb.addr}
	b, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	msgs, err := b.Pop(ctx, ports.PopRequest{Group: "g", Topic: "T", QueueID: -1, MaxMessages: 1, InvisibleTime: time.Minute,
		PollTimeout: 100 * time.Millisecond, Filter: filter.All})
	cancel()
	if err == nil {
		b.Close(context.Background())
		t.Fatalf("the pop returned %d messages before its answer came", len(msgs))
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	}()
	// Close either closed the connection the broker's pop is on, or waits
	// for the pop's answer: the broker answers now.
	waitfor.True(t, 10*time.Second, 10*time.Millisecond, "Close returned or waits for the pop", func() bool {
		select {
		case <-closed:
			return true
		default:
			return strings.Contains(logs.String(), "waiting for the brokers to answer")
		}
	})
	close(lb.release)
	select {
	case h := <-lb.changed:
		if h.InvisibleTime != lateReleaseInvisibleTime.Milliseconds() || h.Offset != 5 {
			t.Fatalf("released with %+v", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the message the abandoned pop took was not released; logs:\n%s", logs.String())
	}
	<-closed
}
