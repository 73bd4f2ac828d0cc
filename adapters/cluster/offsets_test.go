package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestOffsetCallsRefuseAQueueTheRouteLacks: pull and offset calls naming a
// queue id the topic's route does not have are BAD_REQUEST, as in local
// mode, and reach no broker: a broker answers the offset queries of such a
// queue with 0, commits an offset for it, and refuses its pull with
// SYSTEM_ERROR (INTERNAL_SERVER_ERROR for the client). A queue the cached
// route lacks makes the route be read again: once the topic has two
// queues, queue 1 is served.
func TestOffsetCallsRefuseAQueueTheRouteLacks(t *testing.T) {
	var mu sync.Mutex
	var reached []remoting.RequestCode
	f := startB1(t, 1, rw, func(_ string, req, resp *remoting.Command) *remoting.Command {
		mu.Lock()
		reached = append(reached, remoting.RequestCode(req.Code))
		mu.Unlock()
		resp.Fields = (&remoting.OffsetResponseHeader{Offset: 0}).AppendFields(nil)
		return resp
	})
	b := newTestBroker(t, f.addr, nil)
	calls := map[string]func(q domain.QueueRef) error{
		"PullMessage": func(q domain.QueueRef) error {
			_, err := b.Pull(t.Context(), ports.PullRequest{Group: "G", Queue: q, BatchSize: 1, Filter: filter.All})
			return err
		},
		"UpdateOffset": func(q domain.QueueRef) error { return b.UpdateOffset(t.Context(), "G", q, 0) },
		"GetOffset":    func(q domain.QueueRef) error { _, err := b.GetOffset(t.Context(), "G", q); return err },
		"QueryOffset(BEGINNING)": func(q domain.QueueRef) error {
			_, err := b.QueryOffset(t.Context(), q, ports.OffsetBeginning, time.Time{})
			return err
		},
		"QueryOffset(END)": func(q domain.QueueRef) error {
			_, err := b.QueryOffset(t.Context(), q, ports.OffsetEnd, time.Time{})
			return err
		},
		"QueryOffset(TIMESTAMP)": func(q domain.QueueRef) error {
			_, err := b.QueryOffset(t.Context(), q, ports.OffsetTimestamp, time.Now())
			return err
		},
	}
	for name, call := range calls {
		for _, q := range []domain.QueueRef{{Topic: "T", BrokerName: "b1", QueueID: 1}, {Topic: "T", BrokerName: "b1", QueueID: 99}} {
			if err := call(q); domain.ReasonOf(err) != domain.ReasonBadRequest {
				t.Errorf("%s of queue %d of a topic with one queue: %v; want BAD_REQUEST", name, q.QueueID, err)
			}
		}
	}
	mu.Lock()
	if len(reached) != 0 {
		t.Errorf("requests for queues the topic does not have reached the broker: %v", reached)
	}
	mu.Unlock()

	f.queues.Store(2) // the topic grew; the cached route does not know yet
	if err := calls["UpdateOffset"](domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: 1}); err != nil {
		t.Fatalf("UpdateOffset of queue 1 once the topic has two queues: %v", err)
	}
}

// TestPullOfAnUnreadableTopicIsForbidden: a pull of a topic whose route
// says it is not readable (a write-only topic) is FORBIDDEN, as in local
// mode, without asking the broker, whose NO_PERMISSION would read as
// rmqproxy's own broker credentials failing (INTERNAL_SERVER_ERROR with a
// hint about cluster.acl).
func TestPullOfAnUnreadableTopicIsForbidden(t *testing.T) {
	var pulls atomic.Int32
	f := startB1(t, 1, remoting.PermWrite, func(_ string, req, resp *remoting.Command) *remoting.Command {
		if remoting.RequestCode(req.Code) == remoting.RequestPullMessage {
			pulls.Add(1)
			return remoting.NewResponse(req, remoting.ResponseNoPermission, "the topic[T] pulling message is forbidden")
		}
		return resp
	})
	b := newTestBroker(t, f.addr, nil)
	_, err := b.Pull(t.Context(), ports.PullRequest{Group: "G", Queue: domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: 0}, BatchSize: 1, Filter: filter.All})
	if domain.ReasonOf(err) != domain.ReasonForbidden {
		t.Fatalf("pull of a write-only topic: %v; want FORBIDDEN", err)
	}
	if n := pulls.Load(); n != 0 {
		t.Errorf("%d pulls reached the broker", n)
	}
}

// TestPullWaitsForItsPollTimeOnly: a broker answers a suspended pull at
// its first look after the suspend time, and it looks every 5 s
// (PullRequestHoldService with longPollingEnable). A pull whose deadline
// left no room for those 5 s on top of its poll asked for no suspend at
// all, so that a pull at the end of a queue with a poll of 10 s and a
// deadline of 2 s came back at once (a client pulling in a loop pulled
// without pause); and a pull without a deadline waited for the broker's
// look (a poll of 2 s took up to 7 s). The fake holds every suspended pull
// without answering it, as a broker whose look comes after the poll: the
// pull asks for the poll the deadline allows and, at its end, answers
// that nothing was found from the offset asked, counting no failure of the
// broker.
func TestPullWaitsForItsPollTimeOnly(t *testing.T) {
	suspends := make(chan remoting.PullMessageRequestHeader, 4)
	f := startB1(t, 1, rw, func(_ string, req, resp *remoting.Command) *remoting.Command {
		if remoting.RequestCode(req.Code) == remoting.RequestPullMessage {
			var h remoting.PullMessageRequestHeader
			if err := h.DecodeFields(req.Fields); err != nil {
				t.Error(err)
			}
			suspends <- h
			if h.SysFlag&remoting.PullSuspend != 0 {
				return noAnswer // held: the broker's look comes after the poll
			}
			resp = remoting.NewResponse(req, remoting.ResponsePullNotFound, "")
			resp.Fields = (&remoting.PullMessageResponseHeader{NextBeginOffset: 1, MaxOffset: 1}).AppendFields(nil)
		}
		return resp
	})
	cfg := DefaultConfig()
	cfg.NameServers = []string{f.addr}
	cfg.RequestTimeout = 500 * time.Millisecond
	b := newBroker(t, cfg, nil)
	q := domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: 0}
	for _, c := range []struct {
		poll, deadline  time.Duration // deadline 0: none
		atLeast, atMost time.Duration // the suspend asked for
	}{
		{poll: 10 * time.Second, deadline: 2 * time.Second, atLeast: time.Second, atMost: 2 * time.Second},
		{poll: 300 * time.Millisecond, atLeast: 300 * time.Millisecond, atMost: 300 * time.Millisecond},
		{poll: 0, deadline: 2 * time.Second},
	} {
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if c.deadline > 0 {
			ctx, cancel = context.WithTimeout(t.Context(), c.deadline)
		}
		res, err := b.Pull(ctx, ports.PullRequest{Group: "G", Queue: q, Offset: 1, BatchSize: 1, Filter: filter.All, PollTimeout: c.poll})
		cancel()
		if err != nil || res.NextOffset != 1 || len(res.Messages) != 0 {
			t.Errorf("poll %v, deadline %v: %+v %v; want nothing found, next offset 1", c.poll, c.deadline, res, err)
		}
		h := <-suspends
		got := time.Duration(h.SuspendTimeoutMillis) * time.Millisecond
		if got > c.atMost || got < c.atLeast || (got > 0) != (h.SysFlag&remoting.PullSuspend != 0) {
			t.Errorf("poll %v, deadline %v: suspend %v (flag %v), want between %v and %v", c.poll, c.deadline, got,
				h.SysFlag&remoting.PullSuspend != 0, c.atLeast, c.atMost)
		}
	}
	if b.faults.isolated("b1", time.Now()) {
		t.Errorf("b1 isolated after pulls it held")
	}
}

// TestPullWithoutDeadlineWaitsForTheHoldCheck: a pull whose caller set no
// deadline (a gRPC client that sends none) was bounded by
// cluster.requestTimeout on top of its suspend, and a broker answers a
// suspended pull at its first look after the suspend, up to 5 s later
// (pullHoldCheck): with requestTimeout below that, most pulls at the end
// of a queue timed out (PROXY_TIMEOUT instead of no message), and each
// timeout isolated the broker, so that sends and receives avoided a
// healthy broker. The call now waits for the hold check on top. The fake
// answers a second after the suspend, as a broker whose look came then.
func TestPullWithoutDeadlineWaitsForTheHoldCheck(t *testing.T) {
	const suspend = 300 * time.Millisecond
	f := startB1(t, 1, rw, func(_ string, req, resp *remoting.Command) *remoting.Command {
		if remoting.RequestCode(req.Code) == remoting.RequestPullMessage {
			var h remoting.PullMessageRequestHeader
			if err := h.DecodeFields(req.Fields); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Duration(h.SuspendTimeoutMillis)*time.Millisecond + time.Second) // the broker's hold
			resp = remoting.NewResponse(req, remoting.ResponsePullNotFound, "")
			resp.Fields = (&remoting.PullMessageResponseHeader{NextBeginOffset: 1, MaxOffset: 1}).AppendFields(nil)
		}
		return resp
	})
	cfg := DefaultConfig()
	cfg.NameServers = []string{f.addr}
	cfg.RequestTimeout = 500 * time.Millisecond
	b := newBroker(t, cfg, nil)
	q := domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: 0}
	res, err := b.Pull(context.Background(), ports.PullRequest{Group: "G", Queue: q, Offset: 1, BatchSize: 1, Filter: filter.All, PollTimeout: suspend})
	if err != nil || res.NextOffset != 1 {
		t.Fatalf("pull at the end of the queue without a deadline: %+v, %v; want no message", res, err)
	}
	if b.faults.isolated("b1", time.Now()) {
		t.Errorf("b1 isolated after a pull it answered")
	}
}
