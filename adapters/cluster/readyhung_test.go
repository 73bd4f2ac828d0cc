package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// TestReadyWhileOneMasterHangs: master b1 stopped answering (a frozen
// process, a host cut off) and b2 serves. With no client traffic (which
// stands in for the probe when a broker answered it recently), the
// readiness probe asked the masters for their runtime info one after the
// other in name order, b1 first, for as long as the health check allowed
// (health.checkTimeout, 2 s): every probe failed, and every rmqproxy
// instance was taken for not ready although b2 serves. A master now gets
// its share of the time left (b1 half of it here, then b2 the rest), and
// one isolated after a failure is asked last.
func TestReadyWhileOneMasterHangs(t *testing.T) {
	silent := startSilentPeer(t) // b1: never answers
	b2 := startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		return remoting.NewResponse(req, remoting.ResponseSuccess, "") // GET_BROKER_RUNTIME_INFO
	})
	ns := startFakeSocket(t, twoBrokerNameServer(silent, b2))
	b := newOnFakeSocket(t, ns, func(*Config) {})
	for i := range 2 {
		// The health check's time (health.checkTimeout is 2 s; more here,
		// so that a loaded machine leaves b2's share enough).
		ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
		if err := b.Ready(ctx); err != nil {
			t.Errorf("readiness probe %d while b1 hangs and b2 answers: %v", i, err)
		}
		cancel()
		b.readyAt.Store(0) // probe again
	}
}

// TestReadinessServesCachedRoutesWhileTheNameServersHang: with every
// NameServer down (connections refused) readiness says the instance
// serves from its cache, degraded, rather than fail every instance at
// once; with NameServers that hang (packets dropped, a hung process) the
// cluster's read took the whole probe's time and readiness failed, a
// timeout not being taken for the NameServers' failure. The read now gets
// half the probe's time, and a timeout counts as their failure.
func TestReadinessServesCachedRoutesWhileTheNameServersHang(t *testing.T) {
	brokerAddr := startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		return remoting.NewResponse(req, remoting.ResponseSuccess, "")
	})
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newTestBroker(t, startNameServerOf(t, brokerAddr).addr, clock)
	if err := b.readiness(t.Context()); err != nil {
		t.Fatalf("NameServer and broker up: %v", err)
	}
	silent := startSilentPeer(t) // never answers
	b.cfg.NameServers = []string{silent}
	clock.Advance(time.Minute)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second) // health.checkTimeout (2 s; more for a loaded machine)
	defer cancel()
	err := b.readiness(ctx)
	var cached *CachedRoutesError
	if !errors.As(err, &cached) {
		t.Fatalf("NameServer hanging, broker up: %v, want serving from the cached routes", err)
	}
	t.Log(err)
}
