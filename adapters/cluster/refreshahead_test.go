package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// TestCachedMetadataServedWhileTheNameServersHang: the NameServers stop
// answering (a host cut off whose packets are dropped, a hung process)
// while the brokers serve. A route, the cluster's brokers and a group's
// configuration are served from the cache for up to maxStale when they
// cannot be read again, but every lookup after their TTL first waited for
// the read to fail: cluster.requestTimeout (5 s) or the dial timeout per
// NameServer, and again after each back-off. Sends, receives and acks (a
// handle's broker is looked up in the cluster's brokers) waited on it and
// timed out at their own deadline. A cached value past its TTL, not made
// stale by a failure, is now served at once while it is read again in
// the background.
func TestCachedMetadataServedWhileTheNameServersHang(t *testing.T) {
	hang, b, clock := startHangingNameServer(t)
	ctx := t.Context()
	if _, err := b.Route(ctx, "T"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.meta.consumerGroup(ctx, "G"); err != nil {
		t.Fatal(err)
	}

	hang.Store(true)
	clock.Advance(b.cfg.RouteTTL + time.Second)
	lookups := map[string]func(context.Context) error{
		"route of T":    func(ctx context.Context) error { _, err := b.Route(ctx, "T"); return err },
		"broker b1":     func(ctx context.Context) error { _, err := b.meta.brokerAddr(ctx, "b1"); return err },
		"group G":       func(ctx context.Context) error { _, err := b.meta.consumerGroup(ctx, "G"); return err },
		"route of T, 2": func(ctx context.Context) error { _, err := b.Route(ctx, "T"); return err },
	}
	for _, name := range []string{"route of T", "broker b1", "group G", "route of T, 2"} {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second) // less than requestTimeout
		err := lookups[name](ctx)
		switch {
		case err != nil:
			t.Errorf("%s while the NameServer hangs, within maxStale of the last read: %v", name, err)
		case ctx.Err() != nil:
			// Served, but only once the caller's deadline had passed: a
			// gRPC answer then comes too late.
			t.Errorf("%s while the NameServer hangs: served from the cache only after the caller's deadline", name)
		}
		cancel()
	}
}

// startHangingNameServer starts a fake master broker b1 (topic T, group G)
// and a fake NameServer routing T to it that stops answering once hang is
// set, and returns an adapter of them on a fake clock.
func startHangingNameServer(t *testing.T) (hang *atomic.Bool, b *Broker, clock *clocktest.Clock) {
	t.Helper()
	hang = new(atomic.Bool)
	done := make(chan struct{})
	broker := startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetTopicConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfig{TopicName: "T", ReadQueueNums: 1, WriteQueueNums: 1, Perm: remoting.PermRead | remoting.PermWrite})
		case remoting.RequestGetSubscriptiongroupConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.NewSubscriptionGroupConfig("G"))
		}
		return resp
	})
	routes := newFakeNameServer(broker, 1, rw)
	ns := startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		if hang.Load() {
			<-done
		}
		return routes.answer(req, nil)
	})
	t.Cleanup(func() { close(done) }) // before the socket's cleanup, which waits for the answers
	clock = clocktest.New(time.Unix(1_700_000_000, 0))
	return hang, newTestBroker(t, ns, clock), clock
}

// settle waits for the reads started in the background (see
// refreshInBackground) to end.
func (c *metaCache) settle() { c.background.Wait() }

// TestStaleMetadataServedWhileTheNameServersHang: a broker's failure makes
// the routes through it and the cluster's brokers stale, and the next
// lookup reads them again (a restarted broker may have a new address). When
// the NameServers hang at that moment, every send, receive and ack (a
// handle's broker is looked up in the cluster's brokers) waited for that
// read to fail, cluster.requestTimeout or more, and timed out at its own
// deadline, although the cache still named the brokers. Each lookup now
// waits a bounded time for the read and is then served the cached value
// while the read goes on.
func TestStaleMetadataServedWhileTheNameServersHang(t *testing.T) {
	hang, b, _ := startHangingNameServer(t)
	ctx := t.Context()
	if _, err := b.Route(ctx, "T"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.meta.brokerAddr(ctx, "b1"); err != nil {
		t.Fatal(err)
	}

	hang.Store(true)
	b.meta.invalidateBroker("b1") // what a transport failure of b1 does (Broker.failed)
	lookups := map[string]func(context.Context) error{
		"route of T":    func(ctx context.Context) error { _, err := b.Route(ctx, "T"); return err },
		"broker b1":     func(ctx context.Context) error { _, err := b.meta.brokerAddr(ctx, "b1"); return err },
		"route of T, 2": func(ctx context.Context) error { _, err := b.Route(ctx, "T"); return err },
		"broker b1, 2":  func(ctx context.Context) error { _, err := b.meta.brokerAddr(ctx, "b1"); return err },
	}
	for _, name := range []string{"route of T", "broker b1", "route of T, 2", "broker b1, 2"} {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second) // less than requestTimeout, as a client's send
		err := lookups[name](ctx)
		switch {
		case err != nil:
			t.Errorf("%s, made stale by a broker's failure, while the NameServer hangs: %v", name, err)
		case ctx.Err() != nil:
			t.Errorf("%s, made stale by a broker's failure, while the NameServer hangs: served only after the caller's deadline", name)
		}
		cancel()
	}
}
