package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestHungBrokerDelaysNoHeartbeatOfTheOthers: a heartbeat round went to
// the masters one after the other, each call waiting up to
// cluster.requestTimeout, and to a hung master one call per group to
// unregister too: while one master hung, the others got this proxy's
// groups that much later (a new transactional producer, which must be
// registered before the broker's first check), and with enough hung
// masters or groups gone the round outlasted the brokers' 120 s expiry,
// after which a broker closes the connection with whatever calls are in
// flight on it. The masters are now sent to at once, and a master that
// fails a call is sent nothing more in that round.
func TestHungBrokerDelaysNoHeartbeatOfTheOthers(t *testing.T) {
	hung, hungAsked := hungNameServer(t) // a hung broker answers nothing either
	var heartbeats atomic.Int32
	good := startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		if remoting.RequestCode(req.Code) == remoting.RequestHeartBeat {
			heartbeats.Add(1)
		}
		return remoting.NewResponse(req, remoting.ResponseSuccess, "")
	})
	cfg := DefaultConfig()
	cfg.NameServers = []string{good}
	cfg.ConnectionsPerBroker = 1 // see hungNameServer's marker
	b := newBroker(t, cfg, nil)
	b.meta.cluster = &clusterView{brokers: map[string]string{"a": hung, "b": good}, members: []string{"a", "b"}, fetched: time.Now()}

	// Groups registered last round and gone since: unregistered this round.
	b.clients.registeredConsumers = map[string]bool{"gone-1": true, "gone-2": true, "gone-3": true}
	b.ClientActive(t.Context(), ports.ActiveClient{ClientID: "c1", ProducerTopics: []string{"T"}})

	// The hung master holds every call until the round is stopped.
	b.cfg.RequestTimeout = time.Hour
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.heartbeatRound(ctx) }()
	defer func() { stop(); <-done }()
	waitfor.Condition(t, 10*time.Second, 5*time.Millisecond, func() error {
		if heartbeats.Load() == 0 {
			return errors.New("the answering master got no heartbeat while the other master hung")
		}
		return nil
	})
	stop()
	<-done

	// A round sends a hung master nothing after its first failed call:
	// each more waited cluster.requestTimeout, and the next round (a new
	// group's registration) waited for this one.
	b.cfg.RequestTimeout = 100 * time.Millisecond
	b.clients.registeredConsumers = map[string]bool{"gone-1": true, "gone-2": true, "gone-3": true}
	// A marker answered says the hung master has read every request
	// written before it: the first round's are counted before the second
	// round starts (on a loaded machine the first round's call could be
	// read after before was taken, and counted as the second round's).
	readAllSent := func() {
		t.Helper()
		marker := remoting.NewRequest(remoting.RequestGetRouteinfoByTopic,
			remoting.EncodeHeader(&remoting.GetRouteInfoRequestHeader{Topic: "marker", AcceptStandardJSONOnly: true}), nil)
		if _, err := b.rpc.InvokeWithin(t.Context(), hung, marker, time.Minute); err != nil {
			t.Fatalf("marker: %v", err)
		}
	}
	readAllSent()
	before := hungAsked.Load()
	b.heartbeatRound(t.Context())
	readAllSent()
	if n := hungAsked.Load() - before; n != 1 {
		t.Errorf("the hung master was sent %d requests in one round (3 unregistrations and a heartbeat), want 1", n)
	}
}
