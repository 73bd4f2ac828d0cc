package cluster

import (
	"context"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// fakeAckBroker is a NameServer and two brokers behind one socket that
// records the acks it gets; refuseBatch makes it answer BATCH_ACK_MESSAGE
// as a broker without it does.
type fakeAckBroker struct {
	addr        string
	refuseBatch bool
	// batchCode, when set, answers every BATCH_ACK_MESSAGE (with a remark).
	batchCode remoting.ResponseCode
	hold      chan struct{} // when set, ACK_MESSAGE is answered once it is closed
	mu        sync.Mutex
	batches   []remoting.BatchAckMessageRequestBody
	singles   []remoting.AckMessageRequestHeader
}

func (f *fakeAckBroker) answer(req *remoting.Command) *remoting.Command {
	if f.hold != nil && remoting.RequestCode(req.Code) == remoting.RequestAckMessage {
		<-f.hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
	switch remoting.RequestCode(req.Code) {
	case remoting.RequestGetBrokerClusterInfo:
		resp.Body = twoBrokerCluster(f.addr, f.addr)
	case remoting.RequestBatchAckMessage:
		if f.refuseBatch {
			return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "request type 200151 not supported")
		}
		if f.batchCode != 0 {
			return remoting.NewResponse(req, f.batchCode, "answered "+f.batchCode.String())
		}
		var body remoting.BatchAckMessageRequestBody
		if err := remoting.DecodeJSONBody(req.Body, &body); err != nil {
			return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
		}
		f.batches = append(f.batches, body)
	case remoting.RequestAckMessage:
		var h remoting.AckMessageRequestHeader
		if err := h.DecodeFields(req.Fields); err != nil {
			return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
		}
		f.singles = append(f.singles, h)
	default:
		return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "not supported here")
	}
	return resp
}

func newAckBroker(t *testing.T, refuseBatch, batchAck bool) (*fakeAckBroker, *Broker) {
	t.Helper()
	return startAckBroker(t, &fakeAckBroker{refuseBatch: refuseBatch}, batchAck)
}

func startAckBroker(t *testing.T, f *fakeAckBroker, batchAck bool) (*fakeAckBroker, *Broker) {
	t.Helper()
	f.addr = startFakeSocket(t, f.answer)
	return f, newOnFakeSocket(t, f.addr, func(c *Config) { c.BatchAck = batchAck })
}

// newOnFakeSocket returns an adapter whose one NameServer is addr (a fake
// socket), its configuration changed by configure, closed when the test
// ends.
func newOnFakeSocket(t testing.TB, addr string, configure func(*Config)) *Broker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NameServers = []string{addr}
	configure(&cfg)
	return newBroker(t, cfg, nil)
}

// recentPop is the pop time of the test's handles (plus a few seconds for
// some), recent enough that they have not expired: an ack of an expired
// handle is refused before it is sent (see expiredAck).
var recentPop = time.Now().UnixMilli()

// ackDeliveries are six deliveries: three of one pop of b1's queue 1
// (offsets 100, 102 and 109 of a checkpoint at 100), one of another pop of
// that queue, one from b1's retry topic, one of an orderly pop of b1 and
// one of b2.
func ackDeliveries() []ports.AckRequest {
	h := func(broker string, start, popTime, off int64, topic domain.ReceiptTopicType, revive int32) domain.ReceiptHandle {
		return domain.ReceiptHandle{StartOffset: start, RetrieveTime: recentPop + popTime, InvisibleTime: 30000, ReviveQueueID: revive,
			TopicType: topic, BrokerName: broker, QueueID: 1, QueueOffset: off, CommitLogOffset: 4096}
	}
	n := domain.ReceiptTopicNormal
	hs := []domain.ReceiptHandle{
		h("b1", 100, 1000, 100, n, 3), h("b1", 100, 1000, 109, n, 3), h("b1", 100, 1000, 102, n, 3),
		h("b1", 110, 2000, 111, n, 3),
		h("b1", 7, 3000, 7, domain.ReceiptTopicRetryV2, 5),
		h("b1", 200, 4000, 200, n, remoting.OrderlyReviveQid),
		h("b2", 50, 5000, 51, n, 0),
	}
	reqs := make([]ports.AckRequest, len(hs))
	for i, x := range hs {
		reqs[i] = ports.AckRequest{Group: "G", Topic: "T", MessageID: "m", Handle: x}
	}
	return reqs
}

// TestAckBatchOneRequestPerBroker: the deliveries of b1 go in one
// BATCH_ACK_MESSAGE, one BatchAck per pop checkpoint with its offsets in
// the bit set; the orderly one and b2's only one get ACK_MESSAGE each.
func TestAckBatchOneRequestPerBroker(t *testing.T) {
	f, b := newAckBroker(t, false, true)
	ackAll(t, b)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.batches) != 1 || f.batches[0].BrokerName != "b1" || len(f.batches[0].Acks) != 3 {
		t.Fatalf("batches %+v, want one of b1 with three checkpoints", f.batches)
	}
	want := []struct {
		retry   string
		start   int64
		revive  int32
		offsets []int64
	}{{"0", 100, 3, []int64{100, 102, 109}}, {"0", 110, 3, []int64{111}}, {"2", 7, 5, []int64{7}}}
	for i, a := range f.batches[0].Acks {
		w := want[i]
		if a.ConsumerGroup != "G" || a.Topic != "T" || a.Retry != w.retry || a.StartOffset != w.start || a.ReviveQueueID != w.revive ||
			a.QueueID != 1 || a.InvisibleTime != 30000 || !reflect.DeepEqual(a.AckedOffsets(), w.offsets) {
			t.Fatalf("checkpoint %d: %+v (offsets %v), want %+v", i, a, a.AckedOffsets(), w)
		}
	}
	var offs []int64
	for _, s := range f.singles {
		offs = append(offs, s.Offset)
	}
	slices.Sort(offs)
	if !reflect.DeepEqual(offs, []int64{51, 200}) {
		t.Fatalf("single acks at offsets %v, want the orderly delivery's and b2's (51, 200)", offs)
	}
}

// TestAckBatchOneByOne: every delivery gets its own ACK_MESSAGE, and
// every entry succeeds, when the broker refuses BATCH_ACK_MESSAGE and when
// cluster.batchAck is off.
func TestAckBatchOneByOne(t *testing.T) {
	for _, c := range []struct {
		name                  string
		refuseBatch, batchAck bool
	}{{"refused by the broker", true, true}, {"batchAck off", false, false}} {
		t.Run(c.name, func(t *testing.T) {
			f, b := newAckBroker(t, c.refuseBatch, c.batchAck)
			ackAll(t, b)
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.batches) != 0 || len(f.singles) != len(ackDeliveries()) {
				t.Fatalf("%d batches and %d single acks, want one ACK_MESSAGE per delivery", len(f.batches), len(f.singles))
			}
		})
	}
}

// ackAll acks ackDeliveries through b and fails the test on any error.
func ackAll(t *testing.T, b *Broker) {
	t.Helper()
	for i, err := range b.AckBatch(t.Context(), ackDeliveries()) {
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
}

// TestConcurrentAcksShareARequest: while ackFlightsPerBroker acks are in
// flight to a broker (its answers held back), ten more wait; once the
// broker answers, the ten go in one BATCH_ACK_MESSAGE, as one BatchAck
// (they are of one pop checkpoint). An ack whose caller gives up while it
// waits is not sent.
func TestConcurrentAcksShareARequest(t *testing.T) {
	f, b := startAckBroker(t, &fakeAckBroker{hold: make(chan struct{})}, true)
	ctx := t.Context()
	if _, err := b.meta.brokerAddr(ctx, "b1"); err != nil { // before answers are held
		t.Fatal(err)
	}
	ack := func(ctx context.Context, off int64) error {
		return b.Ack(ctx, ports.AckRequest{Group: "G", Topic: "T", MessageID: "m", Handle: domain.ReceiptHandle{StartOffset: 0,
			RetrieveTime: recentPop, InvisibleTime: 30000, ReviveQueueID: 3, BrokerName: "b1", QueueID: 1, QueueOffset: off, CommitLogOffset: 1}})
	}
	line := b.ackLines.Line("b1")
	errs := make(chan error, 20)
	for i := range ackFlightsPerBroker {
		go func() { errs <- ack(ctx, int64(i)) }()
	}
	waitLine(t, line.State, ackFlightsPerBroker, 0)
	for i := range 10 {
		go func() { errs <- ack(ctx, int64(10+i)) }()
	}
	waitLine(t, line.State, ackFlightsPerBroker, 10)
	giveUpWhileWaiting(t, line.State, ackFlightsPerBroker, 10, func(ctx context.Context) error { return ack(ctx, 99) })
	close(f.hold)
	for range ackFlightsPerBroker + 10 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitLine(t, line.State, 0, 0)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.singles) != ackFlightsPerBroker || len(f.batches) != 1 || len(f.batches[0].Acks) != 1 {
		t.Fatalf("%d single acks and batches %+v, want %d single acks and one batch of one checkpoint", len(f.singles), f.batches, ackFlightsPerBroker)
	}
	want := []int64{10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
	if got := f.batches[0].Acks[0].AckedOffsets(); !reflect.DeepEqual(got, want) {
		t.Fatalf("batched offsets %v, want %v", got, want)
	}
}

type requestKey struct{}

// ctxWarn records whether the Warn records were logged with the request's
// context (requestKey set), from which they get its trace id, client id
// and request id (otel.LogHandler).
type ctxWarn struct {
	mu      *sync.Mutex
	with    *[]bool
	message string
}

func (h ctxWarn) Enabled(context.Context, slog.Level) bool { return true }
func (h ctxWarn) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.message {
		h.mu.Lock()
		*h.with = append(*h.with, ctx != nil && ctx.Value(requestKey{}) != nil)
		h.mu.Unlock()
	}
	return nil
}
func (h ctxWarn) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h ctxWarn) WithGroup(string) slog.Handler      { return h }

// The Warn of a broker that refuses BATCH_ACK_MESSAGE is logged while an
// ack is served: with the request's context, so that it carries its trace
// id, client id and request id as docs/observability.md says of a
// request's records; it was logged without it.
func TestBatchAckRefusalIsLoggedWithTheRequest(t *testing.T) {
	f := &fakeAckBroker{refuseBatch: true}
	f.addr = startFakeSocket(t, f.answer)
	var mu sync.Mutex
	var with []bool
	cfg := DefaultConfig()
	cfg.NameServers = []string{f.addr}
	cfg.BatchAck = true
	b, err := New(cfg, slog.New(ctxWarn{mu: &mu, with: &with, message: "a broker refused BATCH_ACK_MESSAGE; its deliveries are acked one ACK_MESSAGE each (set cluster.batchAck to false to skip the attempt)"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	ctx := context.WithValue(t.Context(), requestKey{}, true)
	for i, err := range b.AckBatch(ctx, ackDeliveries()) {
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(with) == 0 {
		t.Fatal("the refusal was not logged")
	}
	for _, w := range with {
		if !w {
			t.Error("the refusal was logged without the request's context")
		}
	}
}

// TestBusyBrokerIsNotAskedOncePerDelivery: a broker that answers a
// BATCH_ACK_MESSAGE SYSTEM_BUSY (its ack queue full: overloaded) or
// GO_AWAY (shutting down) refuses the request, not the batch. Such an
// answer was taken for a refusal of batches and the deliveries were
// acked one ACK_MESSAGE each, up to 1024 requests for one to a broker
// that just said it is overloaded (and a Warn advising to turn
// cluster.batchAck off). Now each delivery of the batch gets the broker's
// answer: TOO_MANY_REQUESTS or UNAVAILABLE, which clients retry.
func TestBusyBrokerIsNotAskedOncePerDelivery(t *testing.T) {
	for _, c := range []struct {
		code   remoting.ResponseCode
		reason domain.Reason
	}{{remoting.ResponseSystemBusy, domain.ReasonTooManyRequests}, {remoting.ResponseGoAway, domain.ReasonUnavailable}} {
		t.Run(c.code.String(), func(t *testing.T) {
			f, b := startAckBroker(t, &fakeAckBroker{batchCode: c.code}, true)
			reqs := ackDeliveries()[:3] // one checkpoint of b1
			errs := b.AckBatch(t.Context(), reqs)
			f.mu.Lock()
			singles := len(f.singles)
			f.mu.Unlock()
			if singles != 0 {
				t.Errorf("%d ACK_MESSAGE sent after the batch was answered %v, want none", singles, c.code)
			}
			for i, err := range errs {
				if domain.ReasonOf(err) != c.reason {
					t.Errorf("entry %d: %v (reason %v), want %v", i, err, domain.ReasonOf(err), c.reason)
				}
			}
		})
	}
}

// TestAckOfAnExpiredHandle: an ack whose handle's invisible time has
// ended is refused (INVALID_RECEIPT_HANDLE) without being sent, alone or
// in a batch, as the Apache proxy refuses it; one of an orderly pop is
// sent, since the broker judges it by its pop time, which renewals keep
// (a push consumer's ack with the handle it received, after the instance
// that renewed it is gone).
func TestAckOfAnExpiredHandle(t *testing.T) {
	f, b := newAckBroker(t, false, false)
	expired := func(revive int32, off int64) ports.AckRequest {
		return ports.AckRequest{Group: "G", Topic: "T", MessageID: "m", Handle: domain.ReceiptHandle{StartOffset: off,
			RetrieveTime: recentPop - 60_000, InvisibleTime: 30000, ReviveQueueID: revive, BrokerName: "b1", QueueID: 1, QueueOffset: off, CommitLogOffset: 1}}
	}
	if err := b.Ack(t.Context(), expired(3, 1)); !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
		t.Fatalf("ack of an expired handle: %v, want invalid receipt handle", err)
	}
	errs := b.AckBatch(t.Context(), []ports.AckRequest{expired(3, 2), expired(remoting.OrderlyReviveQid, 3)})
	if !domain.HasReason(errs[0], domain.ReasonInvalidReceiptHandle) || errs[1] != nil {
		t.Fatalf("batch of an expired handle and an expired orderly one: %v", errs)
	}
	if err := b.Ack(t.Context(), expired(remoting.OrderlyReviveQid, 4)); err != nil {
		t.Fatalf("ack of an expired orderly handle: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var sent []int64
	for _, h := range f.singles {
		sent = append(sent, h.Offset)
	}
	if !slices.Equal(sent, []int64{3, 4}) {
		t.Fatalf("acks sent for offsets %v, want the orderly ones 3 and 4", sent)
	}
}
