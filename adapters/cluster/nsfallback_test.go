package cluster

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// fakeEmptyNameServer is a NameServer that knows no broker (restarted, the
// brokers not registered with it again yet): no master in its cluster
// listing, TOPIC_NOT_EXIST for every route. It counts the requests of each
// kind.
func fakeEmptyNameServer(t *testing.T) (addr string, listings, routeLookups *atomic.Int32) {
	f := newFakeNameServer("", 1, rw)
	f.listed.Store(false)
	f.routed.Store(false)
	f.start(t, nil)
	return f.addr, &f.listings, &f.routeLookups
}

// TestNameServerWithoutBrokersIsPassedOver: with two NameServers, the
// first listed knowing no broker (restarted less than the brokers'
// registration interval ago) and the second knowing them, a route lookup
// and readiness used the first one's answer (it answered, so the second
// was never asked): TOPIC_NOT_FOUND and "no master". They ask the second
// and use its answer, and keep asking it first.
func TestNameServerWithoutBrokersIsPassedOver(t *testing.T) {
	empty, listings, emptyLookups := fakeEmptyNameServer(t)
	full := startB1(t, 1, rw, nil)
	fullLookups := &full.routeLookups
	cfg := DefaultConfig()
	cfg.NameServers = []string{empty, full.addr}

	b := newBroker(t, cfg, nil)
	if err := b.Ready(t.Context()); err != nil {
		t.Errorf("readiness: %v", err)
	}
	if n := listings.Load(); n != 1 {
		t.Errorf("the empty NameServer was asked for the cluster %d times, want 1", n)
	}

	b = newBroker(t, cfg, nil)
	e, err := b.meta.topic(t.Context(), "T")
	if err != nil {
		t.Fatalf("route of T: %v", err)
	}
	if len(e.route.Queues) == 0 {
		t.Errorf("route of T has no queues: %+v", e.route)
	}
	if n := emptyLookups.Load(); n != 1 {
		t.Errorf("the empty NameServer was asked for the route %d times, want 1", n)
	}
	// The NameServer that had the route is asked first from now on.
	b.meta.forgetTopic("T")
	if _, err := b.meta.topic(t.Context(), "T"); err != nil {
		t.Fatalf("route of T again: %v", err)
	}
	if n, m := emptyLookups.Load(), fullLookups.Load(); n != 1 || m != 2 {
		t.Errorf("route lookups: %d at the empty NameServer, %d at the other; want 1 and 2", n, m)
	}
}

// TestNoNameServerRoutesTheTopic: when no NameServer routes a topic, each
// is asked once and the answer is TOPIC_NOT_FOUND, as with one NameServer.
func TestNoNameServerRoutesTheTopic(t *testing.T) {
	ns1, _, lookups1 := fakeEmptyNameServer(t)
	ns2, _, lookups2 := fakeEmptyNameServer(t)
	cfg := DefaultConfig()
	cfg.NameServers = []string{ns1, ns2}
	b := newBroker(t, cfg, nil)
	_, err := b.meta.topic(t.Context(), "missing")
	if domain.ReasonOf(err) != domain.ReasonTopicNotFound || !strings.Contains(domain.MessageOf(err), "missing") {
		t.Errorf("route of a topic no NameServer routes: %v (reason %v)", err, domain.ReasonOf(err))
	}
	if n, m := lookups1.Load(), lookups2.Load(); n != 1 || m != 1 {
		t.Errorf("route lookups: %d and %d, want one per NameServer", n, m)
	}
}

// TestNameServerAnsweringGarbageIsPassedOver: a NameServer listed first
// whose answers cannot be used (a body that does not decode; an error
// code, as a broker's or another Remoting server's port listed by mistake
// answers REQUEST_CODE_NOT_SUPPORTED) was taken at its word, because it
// answered: readiness and every route lookup failed with the broker error
// although the second NameServer answered properly, and the first, having
// answered, stayed the one asked first. Such an answer is passed over for
// the next NameServer's, as one lacking the topic or the cluster's masters
// is.
func TestNameServerAnsweringGarbageIsPassedOver(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer func(req *remoting.Command) *remoting.Command
	}{
		{"undecodable body", func(req *remoting.Command) *remoting.Command {
			resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
			resp.Body = []byte(`{"brokerAddrTable":`)
			return resp
		}},
		{"error code", func(req *remoting.Command) *remoting.Command {
			return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "request type "+strconv.Itoa(int(req.Code))+" not supported")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var asked atomic.Int32
			bad := startFakeSocket(t, func(req *remoting.Command) *remoting.Command { asked.Add(1); return c.answer(req) })
			good := startB1(t, 1, rw, nil).addr
			cfg := DefaultConfig()
			cfg.NameServers = []string{bad, good}
			b := newBroker(t, cfg, nil)
			if err := b.Ready(t.Context()); err != nil {
				t.Errorf("readiness: %v", err)
			}
			if _, err := b.meta.topic(t.Context(), "T"); err != nil {
				t.Errorf("route of T: %v", err)
			}
			// The NameServer that answered properly is asked first from now on.
			before := asked.Load()
			b.meta.forgetTopic("T")
			if _, err := b.meta.topic(t.Context(), "T"); err != nil {
				t.Errorf("route of T again: %v", err)
			}
			if n := asked.Load() - before; n != 0 {
				t.Errorf("the NameServer answering garbage was asked %d more times, want 0", n)
			}
		})
	}
}
