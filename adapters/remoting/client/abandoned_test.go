package client_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
)

// TestAbandonedPollsAreCountedUntilOver: a long poll whose caller gave up
// with a late handler counts as abandoned until its answer's handler is
// done, or until its connection fails and no answer can come; calls that
// are not long polls, and long polls without a late handler, never count.
// (The cluster adapter waits for them before it closes, see
// TestCloseWaitsForTheAnswerOfAnAbandonedPop.)
func TestAbandonedPollsAreCountedUntilOver(t *testing.T) {
	answerNow := make(chan struct{})
	fb := newFakeBroker(t, func(p *peer) {
		for {
			req, err := p.read()
			if err != nil {
				return
			}
			if req.Fields.Value("n") == "held" {
				go func() { <-answerNow; _ = p.write(answer(req, "late")) }()
				continue
			}
			if req.Fields.Value("n") != "dropped" {
				_ = p.write(answer(req, ""))
			}
		}
	})
	defer fb.close()
	c := newClient(t, client.Config{ConnsPerAddr: 1})
	invoke(t, c, fb.addr(), "warm")
	var handled atomic.Int32
	late := func(context.Context, string, *remoting.Command, *remoting.Command) { handled.Add(1) }
	giveUp := func(n string, poll bool, late client.LateHandler) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		var err error
		if poll {
			_, err = c.InvokeLongPoll(ctx, fb.addr(), request(n), late)
		} else {
			_, err = c.InvokeWithLate(ctx, fb.addr(), request(n), late)
		}
		if err == nil {
			t.Fatalf("call %s was answered", n)
		}
	}
	giveUp("dropped", false, late) // not a long poll
	giveUp("dropped", true, nil)   // no late handler
	giveUp("held", true, late)
	if n := c.AbandonedPolls(); n != 1 {
		t.Fatalf("%d abandoned polls, want 1", n)
	}
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if n := c.AwaitAbandonedPolls(ended); n != 1 {
		t.Fatalf("AwaitAbandonedPolls with an ended context: %d left, want 1", n)
	}
	close(answerNow)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if n := c.AwaitAbandonedPolls(ctx); n != 0 || handled.Load() != 1 {
		t.Fatalf("after the answer: %d left, %d handled", n, handled.Load())
	}

	// Left unanswered, then the connection fails: nothing is left.
	giveUp("dropped", true, late)
	if n := c.AbandonedPolls(); n != 1 {
		t.Fatalf("%d abandoned polls, want 1", n)
	}
	fb.closeConns()
	if n := c.AwaitAbandonedPolls(ctx); n != 0 {
		t.Fatalf("after the connection failed: %d left", n)
	}
}
