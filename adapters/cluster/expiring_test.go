package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// fakeChangeBroker is a NameServer and a broker b1 behind one socket that
// records the CHANGE_MESSAGE_INVISIBLETIME requests it gets; onClusterInfo,
// when set, runs before it answers GET_BROKER_CLUSTER_INFO.
type fakeChangeBroker struct {
	addr          string
	onClusterInfo func()
	mu            sync.Mutex
	changed       []remoting.ChangeInvisibleTimeRequestHeader
}

func (f *fakeChangeBroker) answer(req *remoting.Command) *remoting.Command {
	resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
	switch remoting.RequestCode(req.Code) {
	case remoting.RequestGetBrokerClusterInfo:
		if f.onClusterInfo != nil {
			f.onClusterInfo()
		}
		resp.Body = oneBrokerCluster(f.addr)
	case remoting.RequestChangeMessageInvisibletime:
		var h remoting.ChangeInvisibleTimeRequestHeader
		if err := h.DecodeFields(req.Fields); err != nil {
			return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
		}
		f.mu.Lock()
		f.changed = append(f.changed, h)
		f.mu.Unlock()
		resp.Fields = remoting.EncodeHeader(&remoting.ChangeInvisibleTimeResponseHeader{PopTime: time.Now().UnixMilli(), InvisibleTime: h.InvisibleTime})
	default:
		return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "not supported here")
	}
	return resp
}

func (f *fakeChangeBroker) changes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.changed)
}

// startChangeBroker starts f and returns an adapter on it whose clock is
// clock, closed when the test ends.
func startChangeBroker(t *testing.T, f *fakeChangeBroker, clock ports.Clock) *Broker {
	t.Helper()
	f.addr = startFakeSocket(t, f.answer)
	cfg := DefaultConfig()
	cfg.NameServers = []string{f.addr}
	b, err := New(cfg, nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

// orderlyChangeOf is changeOf for a delivery of an orderly pop.
func orderlyChangeOf(clock ports.Clock, left time.Duration, release bool) ports.ChangeInvisibleRequest {
	req := changeOf(clock, left, release)
	req.Handle.ReviveQueueID = remoting.OrderlyReviveQid
	return req
}

// changeOf returns a change (a release if release) of a delivery whose
// invisible time ends left after clock's time.
func changeOf(clock ports.Clock, left time.Duration, release bool) ports.ChangeInvisibleRequest {
	popTime := clock.Now().Add(left - time.Minute).UnixMilli()
	return ports.ChangeInvisibleRequest{InvisibleTime: time.Second, Release: release,
		AckRequest: ports.AckRequest{Group: "G", Topic: "T", MessageID: "m", Handle: domain.ReceiptHandle{StartOffset: 7,
			RetrieveTime: popTime, InvisibleTime: time.Minute.Milliseconds(), ReviveQueueID: 3, BrokerName: "b1", QueueID: 1,
			QueueOffset: 7, CommitLogOffset: 4096}}}
}

// TestChangesNearTheHandlesEndAreNotSent: a RocketMQ broker applies a
// CHANGE_MESSAGE_INVISIBLETIME whatever the handle's time and delivers
// the message twice when it applies it after reviving the old checkpoint
// (see Broker.expiring). The proxy's own releases are not sent when the
// handle expires within cluster.requestTimeout (the longest the broker
// may take to apply them); renewals and client changes are sent until the
// handle has expired, and so are releases of an orderly pop's handles,
// which the broker changes safely at any time (it ignores a change of a
// queue popped again since). What is not sent fails with
// ErrHandleExpiring, an invalid receipt handle.
func TestChangesNearTheHandlesEndAreNotSent(t *testing.T) {
	timeout := DefaultConfig().RequestTimeout
	for _, c := range []struct {
		name    string
		change  func(clock ports.Clock, left time.Duration, release bool) ports.ChangeInvisibleRequest
		left    time.Duration
		release bool
		sent    bool
	}{
		{"release with more than requestTimeout left", changeOf, timeout + time.Second, true, true},
		{"release with requestTimeout left", changeOf, timeout, true, false},
		{"release with half of requestTimeout left", changeOf, timeout / 2, true, false},
		{"release of an expired handle", changeOf, -time.Second, true, false},
		{"renewal with 100 ms left", changeOf, 100 * time.Millisecond, false, true},
		{"renewal at the handle's end", changeOf, 0, false, false},
		{"renewal of an expired handle", changeOf, -time.Second, false, false},
		{"release of an orderly pop's handle with 100 ms left", orderlyChangeOf, 100 * time.Millisecond, true, true},
		{"release of an orderly pop's expired handle", orderlyChangeOf, -time.Second, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := clocktest.New(time.Now())
			f := &fakeChangeBroker{}
			b := startChangeBroker(t, f, clock)
			h, err := b.ChangeInvisible(t.Context(), c.change(clock, c.left, c.release))
			if got := f.changes(); c.sent != (got == 1) {
				t.Fatalf("%d CHANGE_MESSAGE_INVISIBLETIME sent (error %v), want sent: %v", got, err, c.sent)
			}
			if c.sent {
				if err != nil || h.InvisibleTime != time.Second.Milliseconds() {
					t.Fatalf("sent change: handle %+v, error %v", h, err)
				}
				return
			}
			if !errors.Is(err, ports.ErrHandleExpiring) || !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
				t.Fatalf("unsent change: error %v, want ErrHandleExpiring as an invalid receipt handle", err)
			}
		})
	}
}

// TestChangeIsCheckedWhenSent: the handle's time is checked when the
// change is sent, not when it was asked for: here the broker's address
// is looked up first (a NameServer round trip), during which the clock
// moves past the handle's end. A batch waiting for a free request slot,
// or a renewal scan that took its time, ages the same way.
func TestChangeIsCheckedWhenSent(t *testing.T) {
	clock := clocktest.New(time.Now())
	f := &fakeChangeBroker{onClusterInfo: func() { clock.Advance(10 * time.Second) }}
	b := startChangeBroker(t, f, clock)
	_, errs := b.ChangeInvisibleBatch(t.Context(), []ports.ChangeInvisibleRequest{changeOf(clock, 5*time.Second, false)})
	if !errors.Is(errs[0], ports.ErrHandleExpiring) || f.changes() != 0 {
		t.Fatalf("a renewal whose handle expired while its broker was looked up: %d sent, error %v", f.changes(), errs[0])
	}
}
