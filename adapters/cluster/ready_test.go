package cluster

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// TestReadinessProbeIsReused: a readiness probe that passed answers the
// checks of the next readyReuse without asking the NameServer or a broker
// again; after that, or after a broker's transport failure, the next check
// probes again.
func TestReadinessProbeIsReused(t *testing.T) {
	var listings, runtimeInfos atomic.Int32
	var addr string
	addr = startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetBrokerClusterInfo:
			listings.Add(1)
			resp.Body, _ = remoting.EncodeJSONBody(remoting.ClusterInfo{
				BrokerAddrTable:  map[string]remoting.BrokerData{"b1": {Cluster: "DefaultCluster", BrokerName: "b1", BrokerAddrs: map[int64]string{0: addr}}},
				ClusterAddrTable: map[string][]string{"DefaultCluster": {"b1"}}})
		case remoting.RequestGetBrokerRuntimeInfo:
			runtimeInfos.Add(1)
		}
		return resp
	})
	cfg := DefaultConfig()
	cfg.NameServers = []string{addr}
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b, err := New(cfg, nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(t.Context()) })
	probes := func() (int32, int32) { return listings.Load(), runtimeInfos.Load() }
	ready := func(wantListings, wantRuntimeInfos int32) {
		t.Helper()
		if err := b.Ready(t.Context()); err != nil {
			t.Fatal(err)
		}
		if l, r := probes(); l != wantListings || r != wantRuntimeInfos {
			t.Fatalf("%d cluster listings and %d runtime-info requests, want %d and %d", l, r, wantListings, wantRuntimeInfos)
		}
	}
	ready(1, 1)
	for range 4 { // checks a second apart reuse the probe
		clock.Advance(time.Second)
		ready(1, 1)
	}
	clock.Advance(time.Second) // readyReuse after the probe
	ready(2, 2)
	clock.Advance(time.Second)
	ready(2, 2)
	b.failed("b1", &client.Error{Kind: client.KindConnection, Addr: addr, Err: errors.New("peer closed the connection")})
	ready(3, 3)
}
