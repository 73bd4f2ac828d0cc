package cluster

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestHeartbeatBeyondAFrameRegistersTheGroups: one client's settings
// with many subscriptions of long tag expressions (each within
// messaging.limits.maxFilterExpressionLength) made the one heartbeat
// carrying every client's groups longer than the 16 MiB frame a broker
// reads: it failed to encode at every round, so no group of any client of
// this rmqproxy was registered with the brokers any more (a
// transactional producer then gets no check-backs). The groups are
// registered, in heartbeats that each fit a frame (a group too large for
// a heartbeat of its own is left out, logged: a broker replaces a group's
// subscriptions with those of each heartbeat naming it, so they cannot be
// split).
func TestHeartbeatBeyondAFrameRegistersTheGroups(t *testing.T) {
	var mu sync.Mutex
	producers, consumers := map[string]bool{}, map[string]bool{}
	good := startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		if remoting.RequestCode(req.Code) == remoting.RequestHeartBeat {
			var hb remoting.HeartbeatData
			if err := remoting.DecodeJSONBody(req.Body, &hb); err != nil {
				t.Errorf("heartbeat body: %v", err)
			}
			mu.Lock()
			for _, p := range hb.ProducerDataSet {
				producers[p.GroupName] = true
			}
			for _, c := range hb.ConsumerDataSet {
				consumers[c.GroupName] = true
			}
			mu.Unlock()
		}
		return remoting.NewResponse(req, remoting.ResponseSuccess, "")
	})
	cfg := DefaultConfig()
	cfg.NameServers = []string{good}
	// Heartbeats of several MiB each: on a loaded machine, under the race
	// detector, one took longer than the default request timeout, and the
	// round sends nothing more to a broker that failed a call.
	cfg.RequestTimeout = time.Minute
	b := newBroker(t, cfg, nil)
	b.meta.cluster = &clusterView{brokers: map[string]string{"b": good}, members: []string{"b"}, fetched: time.Now()}
	// Long SQL92 expressions stand in for many subscriptions of long tag
	// expressions (which the application bounds one by one): what counts
	// is a group's bytes in the heartbeat.
	sql := func(n int) []ports.Subscription {
		return []ports.Subscription{{Topic: "T", Filter: filter.Expression{Type: filter.TypeSQL92, Text: "a = '" + strings.Repeat("x", n) + "'"}}}
	}
	// Groups that fit a heartbeat each, but not together.
	for i := range 2 {
		b.ClientActive(t.Context(), ports.ActiveClient{ClientID: fmt.Sprint("big-", i), ConsumerGroup: fmt.Sprint("G-big-", i), Subscriptions: sql(remoting.DefaultMaxFrameSize/2 + 1<<20)})
	}
	b.ClientActive(t.Context(), ports.ActiveClient{ClientID: "tx", ProducerTopics: []string{"T"}})
	b.ClientActive(t.Context(), ports.ActiveClient{ClientID: "c", ConsumerGroup: "G", Subscriptions: []ports.Subscription{{Topic: "T", Filter: filter.Expression{Type: filter.TypeTag, Text: "*"}}}})
	b.heartbeatRound(t.Context())
	waitfor.Condition(t, 10*time.Second, 5*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !producers["T"] || !consumers["G"] || !consumers["G-big-0"] || !consumers["G-big-1"] {
			return errors.New(fmt.Sprint("registered producers ", producers, ", consumers ", consumers))
		}
		return nil
	})
}
