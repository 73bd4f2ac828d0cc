package application

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// recordingChannel records the commands it takes and writes them at once
// (calls their Written), or refuses them all. With unwritten set it takes
// them but never writes them, as a stream that ends before its writer
// gets to them.
type recordingChannel struct {
	openChannel
	refuse    error
	unwritten bool
	mu        sync.Mutex
	got       []string
}

func (c *recordingChannel) Send(_ context.Context, cmd ports.ClientCommand) error {
	if c.refuse != nil {
		return c.refuse
	}
	c.mu.Lock()
	c.got = append(c.got, cmd.RecoverTransaction.TransactionID)
	c.mu.Unlock()
	if !c.unwritten && cmd.Written != nil {
		cmd.Written()
	}
	return nil
}

func (c *recordingChannel) TrySend(cmd ports.ClientCommand) error {
	return c.Send(context.Background(), cmd)
}

func (c *recordingChannel) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// TestCheckBacksPassOverRefusingProducers: check-backs are dispatched by
// workers, never in the broker's call, and a producer whose channel refuses
// (a stalled client) is passed over for the next one.
func TestCheckBacksPassOverRefusingProducers(t *testing.T) {
	m, _, _ := newTestMessaging(DefaultConfig())
	stalled := &recordingChannel{openChannel: *newOpenChannel(), refuse: errors.New("stalled")}
	healthy := &recordingChannel{openChannel: *newOpenChannel()}
	for id, ch := range map[string]ports.ClientChannel{"a-stalled": stalled, "b-healthy": healthy} {
		connectProducer(t, m, id, "tx", ch)
	}
	const n = 50
	for i := range n {
		m.relayTransactionCheck(t.Context(), ports.TransactionCheck{Message: domain.StoredMessage{
			Message: domain.Message{Topic: "tx", ID: "m"}, TransactionID: string(rune('A' + i))}})
	}
	stop := startWorkers(t, m)
	defer stop()
	waitfor.Condition(t, 30*time.Second, 10*time.Millisecond, func() error {
		if got := healthy.count(); got < n {
			return fmt.Errorf("the healthy producer got %d of %d check-backs", got, n)
		}
		return nil
	})
}

// handedCounter counts, per transaction id, the Handed calls of the
// check-backs it made.
type handedCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *handedCounter) check(topic, txID string) ports.TransactionCheck {
	return ports.TransactionCheck{
		Message: domain.StoredMessage{Message: domain.Message{Topic: topic, ID: "m-" + txID}, TransactionID: txID},
		Handed: func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.n == nil {
				h.n = map[string]int{}
			}
			h.n[txID]++
		},
	}
}

func (h *handedCounter) get(txID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[txID]
}

// startWorkers runs m's workers (Messaging.Run) until stop, which waits
// for them to end (and may be called again).
func startWorkers(t *testing.T, m *Messaging) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	return func() { cancel(); <-done }
}

// connectProducer declares client clientID a producer of topic whose
// Telemetry channel is ch.
func connectProducer(t *testing.T, m *Messaging, clientID, topic string, ch ports.ClientChannel) {
	t.Helper()
	s := ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{topic}}}
	if _, err := m.UpdateSettings(asClient(t.Context(), clientID), s, ch); err != nil {
		t.Fatal(err)
	}
}

// TestCheckBackHandedOnlyWhenAProducerTookIt: the broker counts a
// check-back towards transactionCheckMax only when told a producer took
// it. One dropped because the dispatch queue was full, or because no
// producer of the topic was connected, or that every producer's channel
// refused, is never reported handed; one a producer took is, once.
func TestCheckBackHandedOnlyWhenAProducerTookIt(t *testing.T) {
	m, _, _ := newTestMessaging(DefaultConfig())
	var handed handedCounter
	// No producer of the topic: dropped at once, not queued.
	m.relayTransactionCheck(t.Context(), handed.check("tx", "nobody"))
	if n := m.checks.queued(); n != 0 {
		t.Fatalf("a check-back without any producer was queued (%d queued)", n)
	}
	healthy := &recordingChannel{openChannel: *newOpenChannel()}
	stalled := &recordingChannel{openChannel: *newOpenChannel(), refuse: errors.New("stalled")}
	for id, p := range map[string]struct {
		ch    ports.ClientChannel
		topic string
	}{"healthy": {healthy, "tx"}, "stalled": {stalled, "tx-stalled"}} {
		connectProducer(t, m, id, p.topic, p.ch)
	}
	// The workers are not running yet: the queue fills, one more is dropped.
	m.relayTransactionCheck(t.Context(), handed.check("tx-stalled", "refused"))
	for i := range checkQueueLength - 1 {
		m.relayTransactionCheck(t.Context(), handed.check("tx", fmt.Sprint(i)))
	}
	m.relayTransactionCheck(t.Context(), handed.check("tx", "overflow"))
	stop := startWorkers(t, m)
	defer stop()
	waitfor.Condition(t, 60*time.Second, 10*time.Millisecond, func() error {
		if got := healthy.count(); got < checkQueueLength-1 {
			return fmt.Errorf("the producer got %d of %d queued check-backs", got, checkQueueLength-1)
		}
		return nil
	})
	waitfor.Condition(t, 10*time.Second, 10*time.Millisecond, func() error {
		for i := range checkQueueLength - 1 {
			if n := handed.get(fmt.Sprint(i)); n != 1 {
				return fmt.Errorf("check-back %d a producer took reported handed %d times, want once", i, n)
			}
		}
		return nil
	})
	for _, id := range []string{"nobody", "overflow", "refused"} {
		if n := handed.get(id); n != 0 {
			t.Errorf("check-back %q reached no producer but was reported handed %d times", id, n)
		}
	}
}

// TestCheckBackTakenButNotWrittenIsNotHanded: a producer's channel takes a
// check-back into its queue, but its stream ends before the check-back is
// written. No producer saw it, so it must not count towards
// transactionCheckMax: Handed is called only once it is written.
func TestCheckBackTakenButNotWrittenIsNotHanded(t *testing.T) {
	m, _, _ := newTestMessaging(DefaultConfig())
	var handed handedCounter
	ending := &recordingChannel{openChannel: *newOpenChannel(), unwritten: true}
	connectProducer(t, m, "ending", "tx", ending)
	stop := startWorkers(t, m)
	defer stop()
	m.relayTransactionCheck(t.Context(), handed.check("tx", "taken"))
	waitfor.Condition(t, 10*time.Second, 10*time.Millisecond, func() error {
		if ending.count() != 1 {
			return errors.New("the producer's channel did not take the check-back")
		}
		return nil
	})
	stop() // the worker has returned from the hand-over
	if n := handed.get("taken"); n != 0 {
		t.Errorf("a check-back taken but never written was reported handed %d times", n)
	}
}

// TestDroppedCheckBacksAreLoggedSparingly: a backlog drops check-backs by
// the thousand; the warning says so once a minute with their number, not
// once per check-back.
func TestDroppedCheckBacksAreLoggedSparingly(t *testing.T) {
	m, _, clock := newTestMessaging(DefaultConfig())
	var buf bytes.Buffer
	m.log = slog.New(slog.NewTextHandler(&buf, nil))
	connectProducer(t, m, "p", "tx", newOpenChannel())
	var handed handedCounter
	// The workers are not running: the queue fills, then 500 are dropped.
	for i := range checkQueueLength + 500 {
		m.relayTransactionCheck(t.Context(), handed.check("tx", fmt.Sprint(i)))
	}
	if lines := strings.Count(buf.String(), "too many transaction check-backs"); lines != 1 || !strings.Contains(buf.String(), "dropped=1 ") {
		t.Fatalf("500 drops within a minute logged %d warnings, want 1 saying dropped=1:\n%s", lines, buf.String())
	}
	buf.Reset()
	clock.Advance(time.Minute)
	m.relayTransactionCheck(t.Context(), handed.check("tx", "later"))
	if lines := strings.Count(buf.String(), "too many transaction check-backs"); lines != 1 || !strings.Contains(buf.String(), "dropped=500 ") {
		t.Fatalf("a minute later: %d warnings, want 1 saying dropped=500 (499 not logged and this one):\n%s", lines, buf.String())
	}
}

// stuckChannel is a producer's channel whose hand-over does not return
// until the test releases it (a client whose stream stays full): the
// worst a slow client can do to the goroutine handing it a command.
type stuckChannel struct {
	openChannel
	release chan struct{}
	mu      sync.Mutex
	entered int
}

func (c *stuckChannel) Send(context.Context, ports.ClientCommand) error {
	c.mu.Lock()
	c.entered++
	c.mu.Unlock()
	<-c.release
	return errors.New("released")
}

// TrySend refuses: the stuck client's queue is full.
func (c *stuckChannel) TrySend(ports.ClientCommand) error { return errors.New("queue full") }

func (c *stuckChannel) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entered
}

// TestSlowProducersDoNotHoldOtherTopicsCheckBacks: producers of more
// topics than there were dispatch workers block in their hand-overs (their
// streams full). The check-backs of another topic, with a healthy
// producer, must all reach it while those hand-overs are still blocked;
// each slow producer holds at most one hand-over of its own. (Before, the
// slow producers' check-backs took every worker, each for up to
// checkSendTimeout, and the healthy topic's check-backs waited behind them.)
func TestSlowProducersDoNotHoldOtherTopicsCheckBacks(t *testing.T) {
	m, _, _ := newTestMessaging(DefaultConfig())
	release := make(chan struct{})
	const slowTopics = 8
	var slow []*stuckChannel
	for i := range slowTopics {
		ch := &stuckChannel{openChannel: *newOpenChannel(), release: release}
		slow = append(slow, ch)
		connectProducer(t, m, fmt.Sprint("slow-", i), fmt.Sprint("slow-", i), ch)
	}
	healthy := &recordingChannel{openChannel: *newOpenChannel()}
	connectProducer(t, m, "healthy", "healthy", healthy)
	var handed handedCounter
	// The slow topics' check-backs come first, several each.
	for round := range 3 {
		for i := range slowTopics {
			m.relayTransactionCheck(t.Context(), handed.check(fmt.Sprint("slow-", i), fmt.Sprintf("s%d-%d", i, round)))
		}
	}
	const n = 50
	for i := range n {
		m.relayTransactionCheck(t.Context(), handed.check("healthy", fmt.Sprint("h", i)))
	}
	stop := startWorkers(t, m)
	defer func() { close(release); stop() }()
	waitfor.Condition(t, 20*time.Second, 10*time.Millisecond, func() error {
		if got := healthy.count(); got < n {
			return fmt.Errorf("the healthy topic's producer got %d of %d check-backs while %d slow producers block their hand-overs", got, n, slowTopics)
		}
		return nil
	})
	for i := range n {
		if k := handed.get(fmt.Sprint("h", i)); k != 1 {
			t.Errorf("healthy check-back %d reported handed %d times, want once", i, k)
		}
	}
	for i, ch := range slow {
		if k := ch.count(); k > 1 {
			t.Errorf("slow producer %d holds %d blocked hand-overs, want at most 1", i, k)
		}
	}
}

// TestOneTopicsBacklogLeavesPlacesForOthers: a topic with more orphaned
// transactions than the dispatch queue has places fills it (its producer
// is not taking them yet); the check-backs of another topic that come
// after must still be queued and reach their producer, the backlog's
// check-backs giving way (they are asked again later).
func TestOneTopicsBacklogLeavesPlacesForOthers(t *testing.T) {
	m, _, _ := newTestMessaging(DefaultConfig())
	big := &recordingChannel{openChannel: *newOpenChannel()}
	small := &recordingChannel{openChannel: *newOpenChannel()}
	for id, p := range map[string]struct {
		ch    ports.ClientChannel
		topic string
	}{"big": {big, "big"}, "small": {small, "small"}} {
		connectProducer(t, m, id, p.topic, p.ch)
	}
	var handed handedCounter
	// The workers are not running yet: the backlog fills every place.
	for i := range 2 * checkQueueLength {
		m.relayTransactionCheck(t.Context(), handed.check("big", fmt.Sprint("b", i)))
	}
	const n = 100
	for i := range n {
		m.relayTransactionCheck(t.Context(), handed.check("small", fmt.Sprint("s", i)))
	}
	stop := startWorkers(t, m)
	defer stop()
	waitfor.Condition(t, 20*time.Second, 10*time.Millisecond, func() error {
		if got := small.count(); got < n {
			return fmt.Errorf("the small topic's producer got %d of %d check-backs (the big one %d)", got, n, big.count())
		}
		return nil
	})
	waitfor.Condition(t, 20*time.Second, 10*time.Millisecond, func() error {
		if got, want := big.count(), checkQueueLength-n; got != want {
			return fmt.Errorf("the big topic's producer got %d check-backs, want the %d places the small topic left", got, want)
		}
		return nil
	})
	for i := range n {
		if k := handed.get(fmt.Sprint("s", i)); k != 1 {
			t.Errorf("small check-back %d reported handed %d times, want once", i, k)
		}
	}
}

// TestSlowProducerDoesNotHoldItsTopicsOtherProducer: of a topic's two
// producers one is stuck (its queue full, a hand-over to it blocks). The
// topic's check-backs must all reach the other producer without any
// hand-over waiting for the stuck one: it is offered each first without
// waiting, and only when no producer has room does the dispatcher wait.
// (Before, every other check-back took its turn at the stuck producer
// first and waited there up to checkSendTimeout.)
func TestSlowProducerDoesNotHoldItsTopicsOtherProducer(t *testing.T) {
	m, _, _ := newTestMessaging(DefaultConfig())
	release := make(chan struct{})
	stuck := &stuckChannel{openChannel: *newOpenChannel(), release: release}
	healthy := &recordingChannel{openChannel: *newOpenChannel()}
	for id, ch := range map[string]ports.ClientChannel{"a-stuck": stuck, "b-healthy": healthy} {
		connectProducer(t, m, id, "tx", ch)
	}
	var handed handedCounter
	const n = 50
	for i := range n {
		m.relayTransactionCheck(t.Context(), handed.check("tx", fmt.Sprint(i)))
	}
	stop := startWorkers(t, m)
	defer func() { close(release); stop() }()
	waitfor.Condition(t, 20*time.Second, 10*time.Millisecond, func() error {
		if got := healthy.count(); got < n {
			return fmt.Errorf("the healthy producer got %d of %d check-backs (hand-overs blocked at the stuck one: %d)", got, n, stuck.count())
		}
		return nil
	})
	if k := stuck.count(); k != 0 {
		t.Errorf("%d hand-overs waited for the stuck producer while the other had room", k)
	}
}
