package grpc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestCheckBacksPassOverAClientStuckOnItsSettingsReply: a producer stops
// reading its Telemetry stream but goes on sending its settings (as a
// client does whose reader is stuck while its settings sync runs). Its
// large settings replies fill its flow-control window, so the handler
// blocks writing the second reply. That client must count as stalled like
// one whose check-back write blocks: check-backs then go to the other
// producer of the topic at once, instead of each waiting for room in the
// stuck client's queue. The wait is made an hour here (it is 3 s), so that
// a check-back that waited cannot reach the healthy producer within the
// test's deadline, however fast or slow the machine.
func TestCheckBacksPassOverAClientStuckOnItsSettingsReply(t *testing.T) {
	b := &fakeBroker{}
	ts := startTestServer(t, b, func(_ *Config, a *application.Config) { a.CheckSendTimeout = time.Hour })
	stuckProducer(t, ts, "stuck", "tx")
	healthy := producerStream(t, ts, "healthy", "tx")

	const checks = 64
	h := b.handler()
	for i := range checks {
		msg := domain.StoredMessage{Message: domain.Message{Topic: "tx", ID: fmt.Sprintf("m%03d", i)}, TransactionID: fmt.Sprintf("tx%03d", i)}
		h(context.Background(), ports.TransactionCheck{Message: msg, Checks: 1})
	}
	// Half of the check-backs try the stuck producer first; its queue takes
	// telemetryQueueLength of them, the healthy producer gets the others.
	want := checks - telemetryQueueLength
	got := map[string]bool{}
	received := make(chan error, 1)
	go func() {
		for len(got) < want {
			cmd, err := healthy.Recv()
			if err != nil {
				received <- err
				return
			}
			if rc := cmd.GetRecoverOrphanedTransactionCommand(); rc != nil {
				got[rc.GetTransactionId()] = true
			}
		}
		received <- nil
	}()
	select {
	case err := <-received:
		if err != nil {
			t.Fatalf("healthy producer: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the healthy producer did not get its %d check-backs within a minute: they waited for the producer stuck on its settings reply", want)
	}
}

// stuckProducer opens a Telemetry stream of producer clientID for topic
// that stops reading while it sends its settings twice: the handler blocks
// writing the second settings reply, so the client counts as stalled after
// stalledAfter, and commands queued for it are not written. It returns a
// function that ends the stream.
func stuckProducer(t *testing.T, ts *testServer, clientID, topic string) (end func()) {
	t.Helper()
	stuck, end := smallWindowTelemetry(t, ts, clientID)
	// About 300 KiB of topics: the echoed reply is larger than the stream's
	// window and write quota together (2 × 64 KiB), so the first reply is
	// written (it is never read) and the second one blocks.
	topics := []*v2.Resource{{Name: topic}}
	for i := range 2400 {
		topics = append(topics, &v2.Resource{Name: fmt.Sprintf("pad-%05d-%s", i, strings.Repeat("p", 110))})
	}
	ct := v2.ClientType_PRODUCER
	settings := &v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{
		ClientType: &ct, RequestTimeout: durationpb.New(3 * time.Second),
		PubSub: &v2.Settings_Publishing{Publishing: &v2.Publishing{Topics: topics}},
	}}}
	if err := stuck.Send(settings); err != nil {
		t.Fatal(err)
	}
	// The second settings (its sync) add a topic, so that the test can tell
	// when the handler has stored them and goes on to write their reply.
	pub := settings.GetSettings().GetPublishing()
	pub.Topics = append(pub.Topics, &v2.Resource{Name: "marker"})
	if err := stuck.Send(settings); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if st, ok := ts.sessions.Settings(clientID); !ok || st.Publishing == nil || !slices.Contains(st.Publishing.Topics, "marker") {
			return errors.New("the stuck producer's second settings are not stored yet")
		}
		return nil
	})
	return end
}

// TestCheckBackHandedOnlyOnceWritten: a check-back counts towards
// transactionCheckMax (TransactionCheck.Handed) once it is written to a
// producer's Telemetry stream, not when it is queued for it: check-backs
// queued for a producer whose stream ends before they are written are not
// counted, and the same check-backs written to another producer later are,
// once each.
func TestCheckBackHandedOnlyOnceWritten(t *testing.T) {
	b := &fakeBroker{}
	ts := startTestServer(t, b)
	endStuck := stuckProducer(t, ts, "stuck", "tx")
	var mu sync.Mutex
	handed := map[string]int{}
	check := func(i int) ports.TransactionCheck {
		id := fmt.Sprintf("tx%03d", i)
		msg := domain.StoredMessage{Message: domain.Message{Topic: "tx", ID: fmt.Sprintf("m%03d", i)}, TransactionID: id}
		return ports.TransactionCheck{Message: msg, Checks: 1, Handed: func() {
			mu.Lock()
			defer mu.Unlock()
			handed[id]++
		}}
	}
	// The stuck producer's queue takes telemetryQueueLength check-backs;
	// the one more fails once it counts as stalled, so when that is logged
	// every hand-over is done.
	const checks = telemetryQueueLength + 1
	h := b.handler()
	for i := range checks {
		h(context.Background(), check(i))
	}
	waitFor(t, 10*time.Second, func() error {
		if !ts.logs.contains("no producer took a transaction check-back") {
			return errors.New("the stuck producer's queue took every check-back")
		}
		return nil
	})
	endStuck()
	healthy := producerStream(t, ts, "healthy", "tx")
	for i := range checks { // the broker asks again
		h(context.Background(), check(i))
	}
	got := map[string]bool{}
	for len(got) < checks {
		cmd, err := healthy.Recv()
		if err != nil {
			t.Fatalf("healthy producer after %d check-backs: %v", len(got), err)
		}
		if rc := cmd.GetRecoverOrphanedTransactionCommand(); rc != nil {
			got[rc.GetTransactionId()] = true
		}
	}
	waitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for i := range checks {
			if id := fmt.Sprintf("tx%03d", i); handed[id] != 1 {
				return fmt.Errorf("check-back %s reported handed %d times, want once (written to one producer only): %v", id, handed[id], handed)
			}
		}
		return nil
	})
}

// waitFor polls cond until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	tick, deadline := time.NewTicker(10*time.Millisecond), time.After(d)
	defer tick.Stop()
	for err := cond(); err != nil; err = cond() {
		select {
		case <-deadline:
			t.Fatalf("not within %v: %v", d, err)
		case <-tick.C:
		}
	}
}

// telemetryServerStub is a Telemetry stream nobody writes or reads: only
// its context is used.
type telemetryServerStub struct {
	v2.MessagingService_TelemetryServer
	ctx context.Context
}

func (s telemetryServerStub) Context() context.Context { return s.ctx }

// TestTrySendNeverWaits: TrySend queues a command while the client's queue
// has room and refuses at once when it is full (the check-back dispatcher
// then offers it to another producer instead of waiting for this one).
func TestTrySendNeverWaits(t *testing.T) {
	ch := newTelemetryChannel(telemetryServerStub{ctx: t.Context()})
	cmd := ports.ClientCommand{RecoverTransaction: &domain.StoredMessage{Message: domain.Message{Topic: "tx", ID: "m"}, TransactionID: "t"}}
	for i := range telemetryQueueLength {
		if err := ch.TrySend(cmd); err != nil {
			t.Fatalf("command %d with room in the queue: %v", i, err)
		}
	}
	if err := ch.TrySend(cmd); !errors.Is(err, errClientBusy) {
		t.Fatalf("a command for a full queue: %v, want errClientBusy", err)
	}
	<-ch.queue
	if err := ch.TrySend(cmd); err != nil {
		t.Fatalf("a command once the writer took one: %v", err)
	}
}

// TestQueuedCommandsOfAClientAreBoundedInBytes: the commands waiting for a
// client's Telemetry stream (check-backs carry their message, body and
// all) take at most telemetryQueueBytes, and one command more: a producer
// that stopped reading its stream held up to telemetryQueueLength
// check-backs of messages up to messaging.limits.maxBodySize (4 MiB) each,
// 64 MiB per such stream for the connection's life. A full queue refuses
// at once (the dispatcher offers the check-back to another producer), and
// takes commands again once the writer took some.
func TestQueuedCommandsOfAClientAreBoundedInBytes(t *testing.T) {
	ch := newTelemetryChannel(telemetryServerStub{ctx: t.Context()})
	body := make([]byte, 1<<20)
	cmd := ports.ClientCommand{RecoverTransaction: &domain.StoredMessage{Message: domain.Message{Topic: "tx", ID: "m", Body: body}, TransactionID: "t"}}
	queued := 0
	for ch.TrySend(cmd) == nil {
		queued++
		if queued > telemetryQueueLength {
			t.Fatal("the queue took more than telemetryQueueLength commands")
		}
	}
	if held := queued * len(body); held > telemetryQueueBytes+len(body) {
		t.Fatalf("a client that does not read its stream has %d commands, %d MiB, waiting for it; want at most %d MiB and one command",
			queued, held>>20, telemetryQueueBytes>>20)
	}
	// A waiting Send gets its place once the writer takes a command.
	sent := make(chan error, 1)
	go func() { sent <- ch.Send(t.Context(), cmd) }()
	q := <-ch.queue
	ch.taken(q)
	if err := <-sent; err != nil {
		t.Fatalf("a command waiting for room once the writer took one: %v", err)
	}
	// An empty queue takes a command of any size.
	for len(ch.queue) > 0 {
		ch.taken(<-ch.queue)
	}
	huge := ports.ClientCommand{RecoverTransaction: &domain.StoredMessage{Message: domain.Message{Topic: "tx", ID: "m", Body: make([]byte, 2*telemetryQueueBytes)}, TransactionID: "t"}}
	if err := ch.TrySend(huge); err != nil {
		t.Fatalf("a command larger than telemetryQueueBytes for an empty queue: %v", err)
	}
}
