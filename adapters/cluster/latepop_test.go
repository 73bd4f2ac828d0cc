package cluster

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestLatePopAnswerReleasesItsMessages: a broker (a fake socket: a real
// broker drops a pop that waited too long before it read it, so it cannot
// be made to answer late on demand) answers a POP_MESSAGE after the
// receive gave up. The message it popped is made visible again at once
// (CHANGE_MESSAGE_INVISIBLETIME to 1 s) instead of staying hidden for the
// receive's invisible time.
func TestLatePopAnswerReleasesItsMessages(t *testing.T) {
	lb := startLatePopBroker(t, 0)
	b := lb.popLate(t, nil)
	defer b.Close(context.Background())
	select {
	case h := <-lb.changed:
		if h.InvisibleTime != lateReleaseInvisibleTime.Milliseconds() || h.ConsumerGroup != "g" || h.Topic != "T" || h.Offset != 5 {
			t.Fatalf("released with %+v", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the late answer's message was not released")
	}
}

// TestLatePopAnswerAfterItsTimeoutReleasesItsMessages: a receive whose
// context has no deadline is bounded by cluster.requestTimeout plus its
// polling time, a timer of the Remoting client rather than a context
// (client.InvokeLongPollWithin): an answer that comes after that timer
// ended the receive is released as one after a context's deadline, its
// group, topic and broker read back from the POP_MESSAGE request, here
// signed (ACL), as sent.
func TestLatePopAnswerAfterItsTimeoutReleasesItsMessages(t *testing.T) {
	lb := startLatePopBroker(t, 0)
	cfg := DefaultConfig()
	cfg.NameServers = []string{lb.addr}
	cfg.RequestTimeout = 300 * time.Millisecond
	cfg.ACL.AccessKey, cfg.ACL.SecretKey = "ak", "sk"
	b, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ctx := context.Background() // no deadline: the poll's timer bounds the receive
	msgs, err := b.Pop(ctx, ports.PopRequest{Group: "g", Topic: "T", QueueID: -1, MaxMessages: 1, InvisibleTime: time.Minute,
		PollTimeout: 100 * time.Millisecond, Filter: filter.All})
	if err == nil || !domain.HasReason(err, domain.ReasonTimeout) {
		t.Fatalf("the pop returned %d messages, %v; want a timeout before its answer came", len(msgs), err)
	}
	close(lb.release)
	select {
	case h := <-lb.changed:
		if h.InvisibleTime != lateReleaseInvisibleTime.Milliseconds() || h.ConsumerGroup != "g" || h.Topic != "T" || h.Offset != 5 || h.BrokerName != "b" {
			t.Fatalf("released with %+v", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the late answer's message was not released")
	}
}

// TestLatePopAnswerAfterTheInvisibleTimeReleasesNothing: a pop answer that
// comes after its messages' invisible time ended (their pop time is more
// than the invisible time ago) is not released. The broker has revived, or
// is about to revive, the checkpoint of the pop by then; a
// CHANGE_MESSAGE_INVISIBLETIME on it, which a broker answers all the same,
// writes a second checkpoint for the same message, which delivered it a
// second time, after the consumer had acked the first redelivery.
func TestLatePopAnswerAfterTheInvisibleTimeReleasesNothing(t *testing.T) {
	lateAnswerReleasesNothing(t, -2*time.Minute) // popped two minutes ago, invisible for one
}

// TestLatePopAnswerNearTheInvisibleTimeReleasesNothing: nor is one whose
// messages' invisible time ends within cluster.requestTimeout (here in 3
// s): the broker may apply the release only after that end, and after
// reviving the pop's checkpoint (see TestChangesNearTheHandlesEndAreNotSent).
func TestLatePopAnswerNearTheInvisibleTimeReleasesNothing(t *testing.T) {
	lateAnswerReleasesNothing(t, -57*time.Second) // invisible for one minute
}

// lateAnswerReleasesNothing pops from a latePopBroker answering late with
// a message popped popAge from then, and checks that it is not released
// and that this is logged.
func lateAnswerReleasesNothing(t *testing.T, popAge time.Duration) {
	lb := startLatePopBroker(t, popAge)
	var logs logbuf.Buffer
	b := lb.popLate(t, slog.New(slog.NewTextHandler(&logs, nil)))
	defer b.Close(context.Background())
	// Both outcomes log a line starting so once the answer is handled.
	waitfor.True(t, 10*time.Second, 10*time.Millisecond, "the late answer handled", func() bool {
		return strings.Contains(logs.String(), "a pop answer came after its receive gave up")
	})
	select {
	case h := <-lb.changed:
		t.Fatalf("a message whose invisible time had ended, or was about to, was released: %+v\n%s", h, logs.String())
	default:
	}
	if !strings.Contains(logs.String(), "left to the broker") || !strings.Contains(logs.String(), "messages=1") {
		t.Fatalf("the skipped release is not logged:\n%s", logs.String())
	}
}

// latePopBroker is a fake broker that answers a POP_MESSAGE only when
// release is closed, with one message (queue 0, offset 5, invisible 60 s)
// popped at that moment plus popAge, and reports the
// CHANGE_MESSAGE_INVISIBLETIME requests it gets on changed.
type latePopBroker struct {
	addr    string
	release chan struct{}
	changed chan *remoting.ChangeInvisibleTimeRequestHeader
}

func startLatePopBroker(t *testing.T, popAge time.Duration) *latePopBroker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := &latePopBroker{addr: ln.Addr().String(), release: make(chan struct{}),
		changed: make(chan *remoting.ChangeInvisibleTimeRequestHeader, 1)}
	addr := lb.addr
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { ln.Close() })
	acceptEach(t, &wg, ln, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		var mu sync.Mutex
		write := func(cmd *remoting.Command) {
			b, err := remoting.AppendCommand(nil, cmd)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			_, _ = nc.Write(b)
		}
		for {
			req, err := remoting.ReadCommand(br, 0)
			if err != nil {
				return
			}
			resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
			switch remoting.RequestCode(req.Code) {
			case remoting.RequestGetRouteinfoByTopic:
				resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicRouteData{
					QueueDatas:  []remoting.QueueData{{BrokerName: "b", ReadQueueNums: 1, WriteQueueNums: 1, Perm: remoting.PermRead | remoting.PermWrite}},
					BrokerDatas: []remoting.BrokerData{{Cluster: "c", BrokerName: "b", BrokerAddrs: map[int64]string{0: addr}}},
				})
			case remoting.RequestGetBrokerClusterInfo: // a release after the broker's failure (its routes stale) looks it up
				resp.Body, _ = remoting.EncodeJSONBody(remoting.ClusterInfo{
					BrokerAddrTable:  map[string]remoting.BrokerData{"b": {Cluster: "c", BrokerName: "b", BrokerAddrs: map[int64]string{0: addr}}},
					ClusterAddrTable: map[string][]string{"c": {"b"}}})
			case remoting.RequestGetTopicConfig:
				resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfig{TopicName: "T", ReadQueueNums: 1, WriteQueueNums: 1, Perm: remoting.PermRead | remoting.PermWrite})
			case remoting.RequestPopMessage:
				wg.Add(1)
				go func() { // answered late, while the connection serves on
					defer wg.Done()
					<-lb.release
					now := time.Now().Add(popAge).UnixMilli()
					resp.Fields = remoting.EncodeHeader(&remoting.PopMessageResponseHeader{PopTime: now, InvisibleTime: 60000,
						StartOffsetInfo: "0 0 5", MsgOffsetInfo: "0 0 5"})
					m := remoting.Message{MagicCode: remoting.MagicV1, QueueID: 0, QueueOffset: 5, CommitLogOffset: 4096,
						BornTimestamp: now, BornHost: netip.MustParseAddrPort("127.0.0.1:1"), StoreTimestamp: now,
						StoreHost: netip.MustParseAddrPort("127.0.0.1:2"), Body: []byte("late"), Topic: "T"}
					m.BodyCRC = remoting.BodyCRC(m.Body)
					m.Properties.Set(remoting.PropertyUniqKey, "01AB")
					var err error
					if resp.Body, err = remoting.AppendMessage(nil, &m); err != nil {
						t.Error(err)
					}
					write(resp)
				}()
				continue
			case remoting.RequestChangeMessageInvisibletime:
				var h remoting.ChangeInvisibleTimeRequestHeader
				if err := h.DecodeFields(req.Fields); err != nil {
					t.Error(err)
				}
				lb.changed <- &h
				resp.Fields = remoting.EncodeHeader(&remoting.ChangeInvisibleTimeResponseHeader{PopTime: time.Now().UnixMilli(), InvisibleTime: h.InvisibleTime})
			}
			write(resp)
		}
	})
	return lb
}

// popLate pops through a cluster adapter (logging to log, if not nil)
// whose receive gives up before the broker answers, then lets the broker
// answer; the caller closes the adapter.
func (lb *latePopBroker) popLate(t *testing.T, log *slog.Logger) *Broker {
	cfg := DefaultConfig()
	cfg.NameServers = []string{lb.addr}
	b, err := New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	msgs, err := b.Pop(ctx, ports.PopRequest{Group: "g", Topic: "T", QueueID: -1, MaxMessages: 1, InvisibleTime: time.Minute,
		PollTimeout: 100 * time.Millisecond, Filter: filter.All})
	if err == nil {
		b.Close(context.Background())
		t.Fatalf("the pop returned %d messages before its answer came", len(msgs))
	}
	close(lb.release)
	return b
}
