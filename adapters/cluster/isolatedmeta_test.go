package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
)

// TestMetadataReadFromAnIsolatedBrokerLast: broker b1 stopped answering
// (a frozen process, a host cut off: it accepts connections, and the
// NameServers still list it until their broker expiry, 120 s) and failed
// a send, which isolates it and makes the routes through it be read
// again. The topic's configuration (and a group's) was read from the
// brokers in name order, b1 first, each waiting cluster.requestTimeout:
// every send and receive of the topic waited on that read (5 s by
// default), and timed out at its own deadline, although b2 answers at
// once. The configuration is now read from a broker that did not fail
// first.
func TestMetadataReadFromAnIsolatedBrokerLast(t *testing.T) {
	silent := startSilentPeer(t) // b1: never answers
	b2 := startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetTopicConfig:
			return topicConfigAnswer(req)
		case remoting.RequestGetSubscriptiongroupConfig:
			resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
			resp.Body, _ = remoting.EncodeJSONBody(remoting.NewSubscriptionGroupConfig("G"))
			return resp
		}
		return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "not supported here")
	})
	ns := startFakeSocket(t, twoBrokerNameServer(silent, b2))
	b := newOnFakeSocket(t, ns, func(c *Config) { c.RequestTimeout = time.Minute })

	// As a send to b1 that timed out does.
	b.failed("b1", &client.Error{Kind: client.KindTimeout, Addr: silent, Err: context.DeadlineExceeded})

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := b.Route(ctx, "T"); err != nil {
		t.Errorf("route of T while b1 is isolated and b2 answers: %v", err)
	}
	if _, err := b.meta.consumerGroup(ctx, "G"); err != nil {
		t.Errorf("group G while b1 is isolated and b2 answers: %v", err)
	}
}
