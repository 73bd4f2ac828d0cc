package e2e_test

import (
	"context"
	"fmt"
	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/freeport"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
)

// fastConsumer lets tests use short invisible times and polls.
var fastConsumer = []string{"--messaging.consumer.minInvisibleTime=1s", "--messaging.consumer.minLongPolling=1s"}

func createTopicVia(t *testing.T, c *testenv.Child, name string, queues int32) {
	t.Helper()
	testenv.Claim(t, "topic", name)
	ac, err := admin.NewClient(c.AdminAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.CreateTopic(t.Context(), application.TopicSpec{Name: name, Type: domain.MessageTypeNormal, QueueCount: queues}); err != nil {
		t.Fatal(err)
	}
}

// TestKill9KeepsAcknowledgedSendsAndAcks kills rmqproxy with SIGKILL while
// producers are sending and consumers are acking (both keep going through
// the kill, so that some sends and acks are in flight when it lands),
// restarts it on the same data, and checks that every send answered OK is
// still there and that no message whose ack was answered OK is delivered
// again, however long after its invisible time one waits.
func TestKill9KeepsAcknowledgedSendsAndAcks(t *testing.T) {
	dataDir := t.TempDir()
	// The commit-log writer waits up to 20 ms to group records under one
	// fdatasync: an ack answered before its record is durable would then
	// still be unwritten, in the process's memory, for long enough that
	// the kill lands on some (correct code answers only after the wait).
	args := append(slices.Clip(fastConsumer), "--local.groupCommitWait=20ms")
	c1 := testenv.StartChild(t, dataDir, append(slices.Clip(args), "--grpc.address="+freeport.Addr(t))...)
	topic, group := testenv.Name(t, "durable"), testenv.Name(t, "g-durable")
	createTopicVia(t, c1, topic, 4)
	p1 := c1.Proxy(t)

	var mu sync.Mutex
	sentOK := map[string]bool{}
	acked := map[string]bool{}
	// unsure holds the messages whose ack was sent but not answered OK
	// (the kill cut it off): the ack may or may not have been applied.
	unsure := map[string]bool{}

	// Producers send until the process dies under them.
	pr := testenv.NewProducer(t, p1, topic)
	ctx, stopSending := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				r, err := pr.Send(sctx, &rmq.Message{Topic: topic, Body: []byte(fmt.Sprintf("w%d-%d", w, i))})
				cancel()
				if err != nil {
					continue // outcome unknown: it may or may not be stored
				}
				mu.Lock()
				sentOK[r[0].MessageID] = true
				mu.Unlock()
			}
		}()
	}
	// A backlog first, so that the consumers below never wait for messages.
	testenv.WaitFor(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if n := len(sentOK); n < 1500 {
			return fmt.Errorf("%d sends answered OK so far", n)
		}
		return nil
	})
	// Consumers ack what they receive, concurrently and without pause, so
	// that acks are being answered at the moment of the kill; an ack counts
	// only once the proxy answered it OK (the raw protocol shows the status).
	raw := testenv.NewRawClient(t, p1)
	raw.Subscribe(t, group, topic)
	// Once 500 acks are confirmed, the kill comes the moment the next ack
	// is answered OK, while the other consumers' acks are in flight: an
	// ack answered before its record is durable is then lost.
	ackCtx, stopAcking := context.WithCancel(t.Context())
	killNow := make(chan struct{})
	var killOnce sync.Once
	var ackers sync.WaitGroup
	for range 8 {
		ackers.Add(1)
		go func() {
			defer ackers.Done()
			for ackCtx.Err() == nil {
				n := ackOnce(ackCtx, t, raw, group, topic, &mu, acked, unsure)
				if n < 0 {
					time.Sleep(10 * time.Millisecond) // the proxy is gone
					continue
				}
				mu.Lock()
				enough := n > 0 && len(acked) >= 500
				mu.Unlock()
				if enough {
					killOnce.Do(func() { close(killNow) })
				}
			}
		}()
	}
	select {
	case <-killNow:
	case <-time.After(60 * time.Second):
		mu.Lock()
		a, n := len(acked), len(sentOK)
		mu.Unlock()
		t.Fatalf("acked only %d of %d sent in a minute", a, n)
	}
	c1.Kill(t) // SIGKILL while the producers send and the consumers ack
	stopAcking()
	ackers.Wait()
	mu.Lock()
	t.Logf("before the kill: %d sends answered OK, %d acks confirmed, %d unanswered", len(sentOK), len(acked), len(unsure))
	sentBefore := len(sentOK)
	mu.Unlock()

	// Restart on the same port, as an operator would: the producers
	// reconnect and go on; what they send now must be kept as well.
	c2 := testenv.StartChild(t, dataDir, append(slices.Clip(args), "--grpc.address="+c1.GRPCAddr)...)
	restarted := time.Now()
	p2 := c2.Proxy(t)
	testenv.WaitFor(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if n := len(sentOK); n < sentBefore+200 {
			return fmt.Errorf("%d sends answered OK so far", n)
		}
		return nil
	})
	stopSending()
	wg.Wait()
	_ = pr.GracefulStop()
	raw2 := testenv.NewRawClient(t, p2)
	raw2.Subscribe(t, group, topic)
	redelivered := map[string]bool{}
	var missing []string
	// Keep receiving until every send answered OK has come and for well
	// over the invisible time (2 s) after the restart, so that a delivery
	// in flight at the kill, whose ack was lost, is delivered again.
	const settle = 3 * ackInvisible
	testenv.WaitFor(t, 90*time.Second, func() error {
		n := ackOnce(t.Context(), t, raw2, group, topic, &mu, redelivered, nil)
		mu.Lock()
		defer mu.Unlock()
		missing = missing[:0]
		for id := range sentOK {
			if !acked[id] && !redelivered[id] && !unsure[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d acknowledged sends not delivered yet", len(missing))
		}
		if since := time.Since(restarted); since < settle || n != 0 {
			return fmt.Errorf("still receiving (%d after restart, %v since)", len(redelivered), since)
		}
		return nil
	})
	n := 0
	for id := range redelivered {
		if acked[id] {
			if n++; n <= 10 {
				t.Errorf("message %s was acked OK before the kill and delivered again after restart", id)
			}
		}
	}
	if n > 0 {
		t.Errorf("%d messages acked OK before the kill were delivered again", n)
	}
	t.Logf("after restart: %d delivered (%d of them sent without a confirmed answer)", len(redelivered), countNot(redelivered, sentOK))
}

// ackInvisible is the invisible time of ackOnce's receives.
const ackInvisible = 2 * time.Second

// ackOnce receives one batch and acks it, recording in into the ids whose
// ack the proxy answered OK and in unsure (unless nil) those whose ack was
// sent but not answered OK. Safe for concurrent use; it returns how many
// new ids it recorded in into, or -1 when the proxy could not be reached or
// the stream broke (the proxy is being killed).
func ackOnce(ctx context.Context, t *testing.T, raw *testenv.RawClient, group, topic string, mu *sync.Mutex, into, unsure map[string]bool) int {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ctx = raw.WithHeaders(ctx)
	st, msgs, err := raw.ReceiveWith(ctx, testenv.ReceiveRequest(group, topic, 32, ackInvisible))
	if err != nil {
		return -1
	}
	switch {
	case st == nil:
		return -1
	case st.GetCode() == v2.Code_MESSAGE_NOT_FOUND:
		return 0
	case st.GetCode() != v2.Code_OK:
		t.Errorf("receive: %v", st)
		return 0
	}
	resp, err := raw.AckMessage(ctx, testenv.AckRequest(group, topic, msgs))
	n := 0
	mu.Lock()
	defer mu.Unlock()
	ok := map[string]bool{}
	for _, e := range resp.GetEntries() {
		if e.GetStatus().GetCode() == v2.Code_OK {
			ok[e.GetMessageId()] = true
			if !into[e.GetMessageId()] {
				into[e.GetMessageId()] = true
				n++
			}
		}
	}
	for _, m := range msgs {
		if id := m.GetSystemProperties().GetMessageId(); !ok[id] && unsure != nil {
			unsure[id] = true
		}
	}
	if err != nil {
		return -1
	}
	return n
}

func countNot(a, b map[string]bool) int {
	n := 0
	for k := range a {
		if !b[k] {
			n++
		}
	}
	return n
}

// ackSome receives one batch and acks it, recording the ids whose ack the
// proxy confirmed; a refused receive or ack fails t. It returns how many
// messages the receive brought, or -1 when the receive was not answered
// (its stream broke): that receive saw nothing.
func ackSome(t *testing.T, raw *testenv.RawClient, group, topic string, mu *sync.Mutex, into map[string]bool) int {
	st, msgs := raw.Receive(t, testenv.ReceiveRequest(group, topic, 32, 2*time.Second))
	switch {
	case st == nil:
		return -1
	case st.GetCode() == v2.Code_MESSAGE_NOT_FOUND:
		return 0
	case st.GetCode() != v2.Code_OK:
		t.Fatalf("receive: %v", st)
	}
	resp, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, msgs))
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack of %d messages: %v %v", len(msgs), resp, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range resp.GetEntries() {
		if e.GetStatus().GetCode() == v2.Code_OK {
			into[e.GetMessageId()] = true
		}
	}
	return len(msgs)
}

// TestTornTailAndCorruptionAtStart damages the commit log of a stopped
// proxy: a torn last record is cut off at start; a corrupted record in the
// middle of the log stops the start-up with an explanation, unless the
// operator chooses truncation.
func TestTornTailAndCorruptionAtStart(t *testing.T) {
	testenv.LocalOnly(t, "it damages the embedded broker's commit log")
	waitsInParallel(t)
	dataDir := t.TempDir()
	c1 := testenv.StartChild(t, dataDir, fastConsumer...)
	createTopicVia(t, c1, "torn", 1)
	pr := testenv.NewProducer(t, c1.Proxy(t), "torn")
	var ids []string
	for i := range 50 {
		r, err := pr.Send(t.Context(), &rmq.Message{Topic: "torn", Body: []byte(fmt.Sprintf("m%03d", i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r[0].MessageID)
	}
	_ = pr.GracefulStop()
	c1.Kill(t)

	segs, _ := filepath.Glob(filepath.Join(dataDir, "commitlog", "*"))
	sort.Strings(segs)
	if len(segs) == 0 {
		t.Fatal("no commit-log segment")
	}
	last := segs[len(segs)-1]
	intact, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("torn tail", func(t *testing.T) {
		// A crash in the middle of a write leaves a partial record: a length
		// that promises more bytes than follow.
		// It is written where the records end, over the zeros the log
		// keeps ahead of them (local.preallocate).
		f, err := os.OpenFile(last, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3}, recordsEnd(intact)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		c := testenv.StartChild(t, dataDir, fastConsumer...)
		got := drain(t, c.Proxy(t), "torn", "g-torn-"+t.Name()[len(t.Name())-4:])
		for _, id := range ids {
			if !got[id] {
				t.Errorf("message %s lost after torn-tail recovery", id)
			}
		}
		if !strings.Contains(c.Output(), "torn") {
			t.Errorf("recovery did not report the torn tail; logs:\n%s", c.Output())
		}
		c.Kill(t)
	})

	t.Run("corruption in the middle", func(t *testing.T) {
		damaged := append([]byte(nil), intact...)
		damaged[recordsEnd(intact)/2] ^= 0xff // inside an acknowledged record
		if err := os.WriteFile(last, damaged, 0o644); err != nil {
			t.Fatal(err)
		}
		// Remove snapshots so that recovery must read the damaged range.
		os.RemoveAll(filepath.Join(dataDir, "snapshot"))
		c := testenv.StartChild(t, dataDir)
		code, logs := c.ExitedWith(t)
		if code == 0 || !strings.Contains(logs, filepath.Base(last)) || !strings.Contains(logs, "recovery") {
			t.Fatalf("start on a corrupted log: exit %d, logs:\n%s", code, logs)
		}
		c2 := testenv.StartChild(t, dataDir, append(fastConsumer, "--local.recovery=truncate")...)
		got := drain(t, c2.Proxy(t), "torn", "g-corrupt")
		if len(got) == 0 || len(got) >= len(ids) {
			t.Fatalf("after truncation %d of %d messages remain; expected the ones before the damage", len(got), len(ids))
		}
	})
}

// drain receives and acks every message of a topic for a fresh group.
func drain(t *testing.T, p *testenv.Proxy, topic, group string) map[string]bool {
	t.Helper()
	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, group, topic)
	var mu sync.Mutex
	got := map[string]bool{}
	empty := 0
	testenv.WaitFor(t, 60*time.Second, func() error {
		switch ackSome(t, raw, group, topic, &mu, got) {
		case -1:
			return fmt.Errorf("a receive was not answered (%d so far)", len(got))
		case 0:
			empty++
		default:
			empty = 0
		}
		if empty < 2 {
			return fmt.Errorf("still receiving (%d so far)", len(got))
		}
		return nil
	})
	return got
}
