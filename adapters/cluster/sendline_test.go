package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// fakeSendBroker is a broker (b1, topic T of 4 queues; its own NameServer
// when served by startB1, see startSendBroker) that stores what it is sent: per queue, the messages
// in order. While hold is open it answers no SEND_MESSAGE_V2; with
// refuseBatch it answers SEND_BATCH_MESSAGE as a broker whose
// maxMessageSize the batch exceeds.
type fakeSendBroker struct {
	addr        string
	hold        chan struct{}
	refuseBatch bool
	mu          sync.Mutex
	singles     int
	batches     [][]remoting.BatchMessage
	queues      map[int32][]remoting.Properties
}

func (f *fakeSendBroker) answer(req *remoting.Command) *remoting.Command {
	code := remoting.RequestCode(req.Code)
	if f.hold != nil && code == remoting.RequestSendMessageV2 {
		<-f.hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
	switch code {
	case remoting.RequestSendMessageV2, remoting.RequestSendBatchMessage:
		var h remoting.SendMessageRequestHeader
		if err := h.DecodeFieldsV2(req.Fields); err != nil {
			return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
		}
		msgs := []remoting.BatchMessage{{Body: req.Body, Properties: remoting.ParseProperties(h.Properties)}}
		if code == remoting.RequestSendBatchMessage {
			if f.refuseBatch {
				// What a 5.5.0 broker answers (its MessageExtEncoder
				// throws, and the exception's text is the remark).
				return remoting.NewResponse(req, remoting.ResponseSystemError,
					"java.lang.RuntimeException: message body size exceeded, org.apache.rocketmq.store.MessageExtEncoder.encode(MessageExtEncoder.java:290)")
			}
			var err error
			if msgs, err = remoting.DecodeBatch(req.Body); err != nil || !h.Batch {
				return remoting.NewResponse(req, remoting.ResponseSystemError, fmt.Sprint("bad batch: ", err))
			}
			f.batches = append(f.batches, msgs)
		} else {
			f.singles++
		}
		if f.queues == nil {
			f.queues = map[int32][]remoting.Properties{}
		}
		sr := remoting.SendMessageResponseHeader{MsgID: "0A00000100002A9F0000000000000000", QueueID: h.QueueID, QueueOffset: int64(len(f.queues[h.QueueID]))}
		for _, m := range msgs {
			f.queues[h.QueueID] = append(f.queues[h.QueueID], m.Properties)
		}
		resp.Fields = sr.AppendFields(nil)
	default:
		return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "not supported here")
	}
	return resp
}

func startSendBroker(t testing.TB, f *fakeSendBroker, configure func(*Config)) *Broker {
	t.Helper()
	f.addr = startB1(t, 4, rw, func(_ string, req, _ *remoting.Command) *remoting.Command { return f.answer(req) }).addr
	return newOnFakeSocket(t, f.addr, configure)
}

// sendOne sends message i (its id, key and user property say i) to queue
// i%4 of T and returns its receipt.
func sendOne(ctx context.Context, b *Broker, i int) (domain.SendReceipt, error) {
	m := domain.Message{Topic: "T", Body: []byte("body " + strconv.Itoa(i)), ID: fmt.Sprintf("ID%06d", i), Keys: []string{"k" + strconv.Itoa(i)},
		BornAt: time.UnixMilli(1_700_000_000_000 + int64(i)), Properties: map[string]string{"n": strconv.Itoa(i)}}
	r, err := b.Send(ctx, domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: int32(i % 4)}, []domain.Message{m})
	if err != nil {
		return domain.SendReceipt{}, err
	}
	if len(r) != 1 || cap(r) != 1 { // a batch's receipts are shared: capped, so that appending copies
		return domain.SendReceipt{}, fmt.Errorf("%d receipts (room for %d), want 1", len(r), cap(r))
	}
	return r[0], nil
}

// sendsInFlight fills b's send line of T on b1 (the broker holding its
// answers) and queues ten more sends behind it, plus one whose caller
// gives up; it returns the results of the fourteen sends once f answers.
func sendsInFlight(t *testing.T, f *fakeSendBroker, b *Broker) map[int]domain.SendReceipt {
	t.Helper()
	ctx := t.Context()
	if _, err := b.meta.topic(ctx, "T"); err != nil { // before answers are held
		t.Fatal(err)
	}
	line := b.sendLines.Line(sendKey{broker: "b1", topic: "T"})
	type result struct {
		i   int
		r   domain.SendReceipt
		err error
	}
	results := make(chan result, 20)
	send := func(i int) {
		r, err := sendOne(ctx, b, i)
		results <- result{i, r, err}
	}
	for i := range sendFlights {
		go send(i)
	}
	waitLine(t, line.State, sendFlights, 0)
	for i := range 10 {
		go send(10 + i)
		waitLine(t, line.State, sendFlights, i+1) // in this order
	}
	giveUpWhileWaiting(t, line.State, sendFlights, 10, func(ctx context.Context) error { _, err := sendOne(ctx, b, 99); return err })
	close(f.hold)
	out := map[int]domain.SendReceipt{}
	for range sendFlights + 10 {
		res := <-results
		if res.err != nil {
			t.Fatalf("send %d: %v", res.i, res.err)
		}
		out[res.i] = res.r
	}
	waitLine(t, line.State, 0, 0)
	return out
}

// TestConcurrentSendsShareARequest: while sendFlights sends are in flight
// to a broker, ten more wait; once it answers, the ten go in one
// SEND_BATCH_MESSAGE to the queue of the first of them, each with its own
// properties (id, keys, user property, born time); each caller's receipt
// has its message's offset. A send whose caller gives up while it waits
// is not sent.
func TestConcurrentSendsShareARequest(t *testing.T) {
	f := &fakeSendBroker{hold: make(chan struct{})}
	b := startSendBroker(t, f, func(*Config) {})
	receipts := sendsInFlight(t, f, b)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.singles != sendFlights || len(f.batches) != 1 || len(f.batches[0]) != 10 {
		t.Fatalf("%d single sends and %d batches, want %d single sends and one batch of 10", f.singles, len(f.batches), sendFlights)
	}
	for j, m := range f.batches[0] {
		i := 10 + j
		p := m.Properties
		if string(m.Body) != "body "+strconv.Itoa(i) || p.Value(remoting.PropertyUniqKey) != fmt.Sprintf("ID%06d", i) || p.Value(remoting.PropertyKeys) != "k"+strconv.Itoa(i) ||
			p.Value("n") != strconv.Itoa(i) || p.Value(remoting.PropertyBornTimestamp) != strconv.Itoa(1_700_000_000_000+i) {
			t.Fatalf("batched message %d: body %q, properties %v", j, m.Body, p)
		}
	}
	// The batch went to message 10's queue (2), after its single send.
	for i, r := range receipts {
		q := f.queues[r.QueueID]
		if r.QueueOffset < 0 || int(r.QueueOffset) >= len(q) || q[r.QueueOffset].Value(remoting.PropertyUniqKey) != r.MessageID || r.MessageID != fmt.Sprintf("ID%06d", i) {
			t.Fatalf("send %d: receipt %+v does not point at its message", i, r)
		}
		if i >= 10 && r.QueueID != 2 {
			t.Fatalf("send %d went to queue %d, want the batch's queue 2", i, r.QueueID)
		}
	}
}

// TestBatchRefusedSendsAlone: a batch the broker refuses as such
// (MESSAGE_ILLEGAL, e.g. above its maxMessageSize) is sent again one
// message at a time, each to its own queue, and every send succeeds.
func TestBatchRefusedSendsAlone(t *testing.T) {
	f := &fakeSendBroker{hold: make(chan struct{}), refuseBatch: true}
	b := startSendBroker(t, f, func(*Config) {})
	receipts := sendsInFlight(t, f, b)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.singles != sendFlights+10 {
		t.Fatalf("%d single sends, want %d", f.singles, sendFlights+10)
	}
	for i, r := range receipts {
		if r.QueueID != int32(i%4) || f.queues[r.QueueID][r.QueueOffset].Value(remoting.PropertyUniqKey) != r.MessageID {
			t.Fatalf("send %d: receipt %+v", i, r)
		}
	}
}

// TestCoalesceSendsOff: with cluster.coalesceSends off, every message goes
// alone, however many are in flight: none enters a send line.
func TestCoalesceSendsOff(t *testing.T) {
	f := &fakeSendBroker{}
	b := startSendBroker(t, f, func(c *Config) { c.CoalesceSends = false })
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if _, err := sendOne(t.Context(), b, i); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.singles != 64 || len(f.batches) != 0 || b.sendLines.Len() != 0 {
		t.Fatalf("%d single sends, %d batches and %d send lines, want 64 and none", f.singles, len(f.batches), b.sendLines.Len())
	}
}

// giveUpWhileWaiting starts call (one more item for a line with inFlight
// requests in flight and waiting items waiting), waits until it waits
// too, gives up on it, and checks that it ends with its context's error
// and no longer waits.
func giveUpWhileWaiting(t *testing.T, state func() (int, int), inFlight, waiting int, call func(context.Context) error) {
	t.Helper()
	gaveUp, cancel := context.WithCancel(t.Context())
	gone := make(chan error, 1)
	go func() { gone <- call(gaveUp) }()
	waitLine(t, state, inFlight, waiting+1)
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the call given up on: %v", err)
	}
	waitLine(t, state, inFlight, waiting)
}

// waitLine waits until state reports inFlight requests in flight and
// waiting items waiting.
func waitLine(t *testing.T, state func() (int, int), inFlight, waiting int) {
	t.Helper()
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error { // the line has no notification of its state
		if f, w := state(); f != inFlight || w != waiting {
			return fmt.Errorf("%d in flight and %d waiting, want %d and %d", f, w, inFlight, waiting)
		}
		return nil
	})
}

// TestBatchWaitsForTheLatestDeadline: a coalesced batch whose callers all
// have deadlines ends with a timeout once the latest has passed, although
// cluster.requestTimeout is far off, and one of a caller without a
// deadline waits for requestTimeout (here: still waiting when the others
// would have ended).
func TestBatchWaitsForTheLatestDeadline(t *testing.T) {
	unblock := make(chan struct{})
	f := &fakeSendBroker{}
	f.addr = startB1(t, 4, rw, func(_ string, req, _ *remoting.Command) *remoting.Command {
		if remoting.RequestCode(req.Code) == remoting.RequestSendBatchMessage {
			<-unblock // never answered while the test runs
		}
		return f.answer(req)
	}).addr
	b := newOnFakeSocket(t, f.addr, func(c *Config) { c.RequestTimeout = time.Hour })
	t.Cleanup(func() { close(unblock) }) // before the socket's and the adapter's
	e, err := b.meta.topic(t.Context(), "T")
	if err != nil {
		t.Fatal(err)
	}
	q := domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: 0}
	m := domain.Message{Topic: "T", Body: []byte("x"), ID: "ID1"}
	items := func(deadlines ...time.Time) []pendingSend {
		var its []pendingSend
		for _, d := range deadlines {
			its = append(its, pendingSend{msg: &m, props: "UNIQ_KEY\x01ID1\x02", deadline: d})
		}
		return its
	}
	run := func(its []pendingSend) chan []sendResult {
		done := make(chan []sendResult, 1)
		go func() {
			out := make([]sendResult, len(its))
			b.sendBatchOf(context.Background(), e, q, its, out)
			done <- out
		}()
		return done
	}
	now := time.Now()
	bounded := run(items(now.Add(50*time.Millisecond), now.Add(200*time.Millisecond)))
	unbounded := run(items(now.Add(50*time.Millisecond), time.Time{}))
	select {
	case out := <-bounded:
		for i, r := range out {
			var ce *client.Error
			if !errors.As(r.err, &ce) || ce.Kind != client.KindTimeout {
				t.Fatalf("item %d of the bounded batch: %+v", i, r)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the batch did not end at its callers' latest deadline")
	}
	select {
	case out := <-unbounded:
		t.Fatalf("the batch of a caller without a deadline ended before cluster.requestTimeout: %+v", out)
	default:
	}
}

// TestSendWithoutBornTimeIsNotCoalesced: a message sent without a born
// time gets this host's clock as the born time the broker stores
// (sendRequest), which consumers read, so it must not share a
// SEND_BATCH_MESSAGE: a batch carries one born time for all its messages,
// its first message's, and behind another caller's message it took that
// one's (a client's, from any time).
func TestSendWithoutBornTimeIsNotCoalesced(t *testing.T) {
	b := startSendBroker(t, &fakeSendBroker{}, func(*Config) {})
	m := domain.Message{Topic: "T", Body: []byte("x"), ID: "ID1"}
	if b.coalescible([]domain.Message{m}) {
		t.Fatal("a message without a born time may share a batch")
	}
	m.BornAt = time.UnixMilli(1_700_000_000_000)
	if !b.coalescible([]domain.Message{m}) {
		t.Fatal("a normal message with a born time may not share a batch")
	}
}
