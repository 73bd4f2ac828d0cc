package cluster

import (
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
	listings, routeLookups = new(atomic.Int32), new(atomic.Int32)
	addr = startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetBrokerClusterInfo:
			listings.Add(1)
			resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
			resp.Body, _ = remoting.EncodeJSONBody(remoting.ClusterInfo{})
			return resp
		case remoting.RequestGetRouteinfoByTopic:
			routeLookups.Add(1)
			return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "No topic route info in name server for the topic")
		}
		return remoting.NewResponse(req, remoting.ResponseSuccess, "")
	})
	return addr, listings, routeLookups
}

// TestNameServerWithoutBrokersIsPassedOver: with two NameServers, the
// first listed knowing no broker (restarted less than the brokers'
// registration interval ago) and the second knowing them, a route lookup
// and readiness used the first one's answer (it answered, so the second
// was never asked): TOPIC_NOT_FOUND and "no master". They ask the second
// and use its answer, and keep asking it first.
func TestNameServerWithoutBrokersIsPassedOver(t *testing.T) {
	empty, listings, emptyLookups := fakeEmptyNameServer(t)
	full, fullLookups := fakeTopicNameServer(t, nil)
	cfg := DefaultConfig()
	cfg.NameServers = []string{empty, full}

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
