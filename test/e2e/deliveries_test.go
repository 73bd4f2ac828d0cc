package e2e_test

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// deliveryLog records what a simple consumer was given and what its acks
// answered, per message, so that a message delivered again after its ack
// can be explained from the test's output: when each delivery came (the
// test's monotonic clock and the broker's pop time from the receipt
// handle, on the same host's wall clock), its checkpoint, when its ack was
// sent and what it answered, the receives that failed, and how far this
// host's wall clock moved against its monotonic clock meanwhile (a step
// of the wall clock moves the broker's invisible times and revivals, which
// it times by the wall clock).
type deliveryLog struct {
	start time.Time // with a monotonic reading
	wall0 time.Time // start's wall-clock reading alone

	mu      sync.Mutex
	events  map[string][]string // message id → what happened to it
	states  map[string]*deliveryState
	excused string        // the one message excused as the broker's redelivery (see excuse)
	failed  []string      // receives that failed, and when
	maxStep time.Duration // largest |drift| change between two records
	drift   time.Duration // drift at the last record
}

func newDeliveryLog() *deliveryLog {
	now := time.Now()
	return &deliveryLog{start: now, wall0: now.Round(0), events: map[string][]string{}, states: map[string]*deliveryState{}}
}

// deliveryState is where a message stands in a deliveryLog.
type deliveryState struct {
	attempt int32         // the last delivery's attempt
	ackedOK bool          // the last delivery's ack answered OK
	ackLeft time.Duration // how long before its handle's invisible time ended that ack was sent
	// afterAck says the last delivery came after a timely ack answered OK
	// of the one before it, with the next attempt: what a RocketMQ broker
	// does when the ack it answered did not reach its revive service.
	afterAck bool
}

// timelyAck is how long before a handle's invisible time ends an ack must
// be sent to count as timely: a RocketMQ broker revives a checkpoint no
// sooner than a second after that.
const timelyAck = time.Second

// stamp is now on the test's monotonic clock since start, with the wall
// clock's drift from it (wall elapsed - monotonic elapsed); l.mu is held.
func (l *deliveryLog) stamp() string {
	now := time.Now()
	mono := now.Sub(l.start)
	drift := now.Round(0).Sub(l.wall0) - mono
	if step := (drift - l.drift).Abs(); step > l.maxStep {
		l.maxStep = step
	}
	l.drift = drift
	return fmt.Sprintf("+%v (wall %s, drift %v)", mono.Round(time.Millisecond), now.UTC().Format("15:04:05.000"), drift.Round(time.Millisecond))
}

// received records a delivery of m.
func (l *deliveryLog) received(m *rmq.MessageView) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.states[m.GetMessageId()]
	if st == nil {
		st = &deliveryState{}
		l.states[m.GetMessageId()] = st
	}
	st.afterAck = st.ackedOK && st.ackLeft >= timelyAck && m.GetDeliveryAttempt() == st.attempt+1
	st.attempt, st.ackedOK = m.GetDeliveryAttempt(), false
	l.events[m.GetMessageId()] = append(l.events[m.GetMessageId()],
		fmt.Sprintf("%s received, attempt %d, %s", l.stamp(), m.GetDeliveryAttempt(), describeHandle(m.GetReceiptHandle())))
}

// acked records the ack of m sent at sent and its answer.
func (l *deliveryLog) acked(m *rmq.MessageView, sent time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	answer, ackOK := "OK", err == nil
	if err != nil {
		answer = err.Error()
	}
	left := "?"
	if h, err := domain.ParseReceiptHandle(m.GetReceiptHandle()); err == nil {
		d := h.NextVisibleTime().Sub(sent)
		left = d.Round(time.Millisecond).String()
		if st := l.states[m.GetMessageId()]; st != nil && st.attempt == m.GetDeliveryAttempt() {
			st.ackedOK, st.ackLeft = ackOK, d
		}
	}
	l.events[m.GetMessageId()] = append(l.events[m.GetMessageId()],
		fmt.Sprintf("%s ack answered %s (sent at +%v, %s before the handle's invisible time ended)", l.stamp(), answer, sent.Sub(l.start).Round(time.Millisecond), left))
}

// receiveFailed records a receive that failed (a timeout: what the proxy
// had popped for it is delivered again later).
func (l *deliveryLog) receiveFailed(sent time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed = append(l.failed, fmt.Sprintf("%s receive sent at +%v failed: %v", l.stamp(), sent.Sub(l.start).Round(time.Millisecond), err))
}

// receive receives from c as the tests do and records the outcome; a
// receive that found nothing is not recorded.
func (l *deliveryLog) receive(t *testing.T, c rmq.SimpleConsumer, batch int32, invisible time.Duration) ([]*rmq.MessageView, error) {
	sent := time.Now()
	ms, err := c.Receive(t.Context(), batch, invisible)
	if err != nil && !testenv.IsNoMessage(err) {
		l.receiveFailed(sent, err)
	}
	for _, m := range ms {
		l.received(m)
	}
	return ms, err
}

// ack acks m and records the answer.
func (l *deliveryLog) ack(t *testing.T, c rmq.SimpleConsumer, m *rmq.MessageView) error {
	sent := time.Now()
	err := c.Ack(t.Context(), m)
	l.acked(m, sent, err)
	return err
}

// explain describes the history of the messages ms (delivered again), the
// receives that failed, the clocks, and what rmqproxy and the broker
// logged about late pops, releases, acks and revivals.
func (l *deliveryLog) explain(t *testing.T, p *testenv.Proxy, ms []*rmq.MessageView) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "now %s\n", l.stamp())
	for _, m := range ms {
		fmt.Fprintf(&b, "message %s, delivered again: attempt %d, %s; before:\n", m.GetMessageId(), m.GetDeliveryAttempt(), describeHandle(m.GetReceiptHandle()))
		for _, e := range l.events[m.GetMessageId()] {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	fmt.Fprintf(&b, "wall clock minus monotonic clock since the start: %v now, largest change between two records %v\n",
		l.drift.Round(time.Millisecond), l.maxStep.Round(time.Millisecond))
	fmt.Fprintf(&b, "%d receives failed:\n", len(l.failed))
	for _, f := range l.failed {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	b.WriteString(relevantLogs(t, p))
	return b.String()
}

// describeHandle shows what a receipt handle says about its delivery: the
// broker's pop time (as an offset from now and as a wall-clock time), the
// invisible time, the checkpoint and the message's queue position.
func describeHandle(handle string) string {
	h, err := domain.ParseReceiptHandle(handle)
	if err != nil {
		return fmt.Sprintf("handle %q (%v)", handle, err)
	}
	popped := time.UnixMilli(h.RetrieveTime)
	return fmt.Sprintf("popped %s (%v before this record) invisible %dms, checkpoint %d revive queue %d topic type %v, queue %d offset %d",
		popped.UTC().Format("15:04:05.000"), time.Since(popped).Round(time.Millisecond), h.InvisibleTime,
		h.StartOffset, h.ReviveQueueID, h.TopicType, h.QueueID, h.QueueOffset)
}

// relevantLogs returns rmqproxy's log lines about pops, releases and acks
// (a child process's) and, in the cluster pass, the broker's pop log lines
// that report a failure (WARN, ERROR, "fail"), at most 50 of each.
func relevantLogs(t *testing.T, p *testenv.Proxy) string {
	var b strings.Builder
	pick := func(what string, lines []string, keep func(string) bool) {
		var kept []string
		for _, line := range lines {
			if keep(line) {
				kept = append(kept, line)
			}
		}
		if len(kept) > 50 {
			kept = kept[len(kept)-50:]
		}
		fmt.Fprintf(&b, "%s (%d lines):\n", what, len(kept))
		for _, line := range kept {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	if p.PID() != 0 {
		pick("rmqproxy's log about pops, releases and acks", strings.Split(p.Logs(t), "\n"), func(line string) bool {
			return strings.Contains(line, "pop answer") || strings.Contains(line, "releas") || strings.Contains(line, "ack") ||
				strings.Contains(line, `"level":"WARN"`)
		})
	}
	if br := testenv.Broker(t); br != nil {
		f, err := os.Open(br.LogFile("pop.log"))
		if err != nil {
			fmt.Fprintf(&b, "the broker's pop log: %v\n", err)
			return b.String()
		}
		defer f.Close()
		var lines []string
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		pick("the broker's pop log, failures", lines, func(line string) bool {
			return strings.Contains(line, "WARN") || strings.Contains(line, "ERROR") || strings.Contains(line, "fail")
		})
	}
	return b.String()
}

// excuse reports whether m, delivered again, is excused as the broker's
// own redelivery, and then logs its history. RocketMQ's pop consumption is
// at-least-once: a broker answers an ACK_MESSAGE with SUCCESS whatever
// becomes of the ack record it stores (AckMessageProcessor's
// handlePutMessageResult only logs a failed put), and its revive service
// passes over an ack whose checkpoint is not in the same scan
// (PopReviveService.consumeReviveMessage), so now and then it revives a
// message whose ack it answered. That is excused once per log, in the
// cluster pass only, and only for a message whose previous delivery was
// acked OK while its handle had at least timelyAck left and which comes
// with the next attempt; anything else, and anything in local mode, is a
// failure. The caller acks it, and it must not come again.
func (l *deliveryLog) excuse(t *testing.T, p *testenv.Proxy, m *rmq.MessageView) bool {
	if testenv.Target != testenv.TargetCluster {
		return false
	}
	l.mu.Lock()
	st := l.states[m.GetMessageId()]
	ok := st != nil && st.afterAck && l.excused == ""
	if ok {
		l.excused = m.GetMessageId()
	}
	l.mu.Unlock()
	if ok {
		t.Logf("the broker delivered message %s again after a timely ack it answered OK (RocketMQ's pop is at-least-once; excused once in the cluster pass):\n%s",
			m.GetMessageId(), l.explain(t, p, []*rmq.MessageView{m}))
	}
	return ok
}
