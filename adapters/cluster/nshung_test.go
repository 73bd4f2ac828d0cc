package cluster

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// hungNameServer is a NameServer that reads every request and answers
// none (a hung JVM, a full GC), except route lookups of topic "marker",
// which it answers at once: an answer to a marker says that every request
// written before it on the same connection was read. It counts the other
// requests.
func hungNameServer(t *testing.T) (addr string, asked *atomic.Int32) {
	asked = new(atomic.Int32)
	addr = startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		var h remoting.GetRouteInfoRequestHeader
		if remoting.RequestCode(req.Code) == remoting.RequestGetRouteinfoByTopic && h.DecodeFields(req.Fields) == nil && h.Topic == "marker" {
			return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "marker")
		}
		asked.Add(1)
		return noAnswer
	})
	return addr, asked
}

// TestHungNameServerIsNotWaitedForByEveryLookup: with two NameServers, one
// answering and one hung (it accepts and reads, and answers nothing), a
// lookup of a topic that does not exist is answered TOPIC_NOT_EXIST by the
// first and then asked of the hung one, as a restarted NameServer may lack
// what the other knows. Every such lookup waited cluster.requestTimeout
// for the hung NameServer (5 s by default): each send to a missing topic,
// each readiness probe while the cluster had no master. A NameServer that
// just failed to answer is not asked again for that until cluster.isolation
// has passed.
func TestHungNameServerIsNotWaitedForByEveryLookup(t *testing.T) {
	good := newFakeNameServer("", 1, rw)
	good.routed.Store(false)
	good.start(t, nil)
	hung, asked := hungNameServer(t)
	cfg := DefaultConfig()
	cfg.NameServers = []string{good.addr, hung}
	cfg.ConnectionsPerBroker = 1 // one connection to the hung NameServer: a marker answered follows every request before it
	cfg.RequestTimeout = 200 * time.Millisecond
	cfg.Isolation = time.Hour
	b := newBroker(t, cfg, nil)

	for i := range 3 {
		if _, err := b.meta.topic(t.Context(), "missing"); domain.ReasonOf(err) != domain.ReasonTopicNotFound {
			t.Fatalf("lookup %d of a missing topic: %v, want TOPIC_NOT_FOUND", i, err)
		}
	}
	// Every request written to the hung NameServer before the marker has
	// been read once the marker is answered.
	marker := remoting.NewRequest(remoting.RequestGetRouteinfoByTopic,
		remoting.EncodeHeader(&remoting.GetRouteInfoRequestHeader{Topic: "marker", AcceptStandardJSONOnly: true}), nil)
	if _, err := b.rpc.InvokeWithin(t.Context(), hung, marker, time.Minute); err != nil {
		t.Fatalf("marker: %v", err)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the hung NameServer was asked %d times in 3 lookups of a missing topic, want 1 (each waited cluster.requestTimeout for it)", n)
	}
}

// TestAdminDeleteTellsEveryNameServerAtOnce: a topic delete removed the
// topic's route from the NameServers one after the other, each waited
// for up to cluster.requestTimeout: a hung NameServer held the command up
// for its whole timeout before the next one was asked, and when the
// admin request's deadline passed meanwhile, the NameServers after it
// were never told, and kept routing clients to the deleted topic. Every
// NameServer is now asked at once, as the reads of descriptions already
// were: two hung ones are both asked before either has answered.
func TestAdminDeleteTellsEveryNameServerAtOnce(t *testing.T) {
	addr := startFakeBroker(t, func(addr string, req, resp *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetAllTopicConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: map[string]remoting.TopicConfig{
				"orders": {TopicName: "orders", ReadQueueNums: 1, WriteQueueNums: 1, Perm: remoting.PermRead | remoting.PermWrite}}})
		case remoting.RequestGetKvlistByNamespace:
			return remoting.NewResponse(req, remoting.ResponseQueryNotFound, "No config item")
		}
		return resp
	})
	hung1, asked1 := hungNameServer(t)
	hung2, asked2 := hungNameServer(t)
	cfg := DefaultConfig()
	cfg.NameServers = []string{addr, hung1, hung2}
	cfg.RequestTimeout = time.Hour // the admin request's deadline ends the wait
	b := newBroker(t, cfg, nil)

	err := deleteWhileBothHang(t, b, "NameServers", asked1, asked2)
	if msg := domain.MessageOf(err); !strings.Contains(msg, "2 of 3 NameServers failed") || !strings.Contains(msg, hung1) || !strings.Contains(msg, hung2) {
		t.Errorf("delete with two hung NameServers: %v; want it to name both", err)
	}
}

// deleteWhileBothHang deletes topic "orders" through b and fails t unless
// both hung peers (NameServers or brokers, named by what) are asked while
// neither answers; then it ends the delete as the admin request's deadline
// would and returns its error.
func deleteWhileBothHang(t *testing.T, b *Broker, what string, asked1, asked2 *atomic.Int32) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.DeleteTopic(ctx, "orders") }()
	deadline := time.After(10 * time.Second)
	for asked1.Load() == 0 || asked2.Load() == 0 {
		select {
		case err := <-done:
			t.Fatalf("the delete ended before both hung %s were asked (%d, %d): %v", what, asked1.Load(), asked2.Load(), err)
		case <-deadline:
			t.Fatalf("the hung %s were asked %d and %d times; want both asked while neither answered", what, asked1.Load(), asked2.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel() // the admin request's deadline
	return <-done
}
