package localbroker

import (
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/ports"
)

// timerCounts counts what the timer hooks are told, by topic.
type timerCounts struct {
	mu          sync.Mutex
	added, done map[string]int
	delays      []time.Duration
}

func (c *timerCounts) hooks() Hooks {
	c.added, c.done = map[string]int{}, map[string]int{}
	count := func(m map[string]int) func(string) {
		return func(topic string) {
			c.mu.Lock()
			m[topic]++
			c.mu.Unlock()
		}
	}
	added := count(c.added)
	return Hooks{TimerAdded: func(topic string, delay time.Duration) {
		added(topic)
		c.mu.Lock()
		c.delays = append(c.delays, delay)
		c.mu.Unlock()
	}, TimerDone: count(c.done)}
}

func (c *timerCounts) want(t *testing.T, step string, added, done map[string]int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !maps.Equal(c.added, added) || !maps.Equal(c.done, done) {
		t.Errorf("%s: added %v, done %v; want %v, %v", step, c.added, c.done, added, done)
	}
}

// TestTimerHooksCountTheWheelsMessages: the basis of
// rocketmq_timer_enqueue_total and rocketmq_timer_dequeue_total. A delay
// message sent, or a transactional one committed, enters the timing
// wheel once; it leaves it once, when it fires; a message due already, a
// recalled one and the replay at a restart count nothing.
func TestTimerHooksCountTheWheelsMessages(t *testing.T) {
	var c timerCounts
	h := newHarness(t, func(*Config) {})
	h.engineMod = func(e *Engine) { e.SetHooks(c.hooks()) }
	h.restart()

	late := msg("d", "late", "")
	late.DeliverAt = h.clock.Now().Add(time.Minute)
	late.BornAt = h.clock.Now().Add(-time.Second) // its delay counts from its birth
	recalled := msg("d", "recalled", "")
	recalled.DeliverAt = h.clock.Now().Add(time.Minute)
	due := msg("d", "due", "")
	due.DeliverAt = h.clock.Now()
	h.send("d", 0, late)
	r := h.send("d", 0, recalled)[0]
	h.send("d", 0, due)
	tx := txMsg("tx", "td")
	tx.DeliverAt = h.clock.Now().Add(time.Minute)
	txr := h.send("tx", 0, tx)[0]
	c.want(t, "sent", map[string]int{"d": 2}, map[string]int{})
	c.mu.Lock()
	if len(c.delays) != 2 || c.delays[0] != time.Minute+time.Second || c.delays[1] != time.Minute {
		t.Errorf("delays %v, want [1m1s 1m0s]", c.delays)
	}
	c.mu.Unlock()
	if err := h.e.EndTransaction(t.Context(), ports.EndTransactionRequest{Topic: "tx", MessageID: "td", TransactionID: txr.TransactionID, Resolution: ports.ResolutionCommit}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Recall(t.Context(), "d", r.RecallHandle); err != nil {
		t.Fatal(err)
	}
	c.want(t, "committed, recalled", map[string]int{"d": 2, "tx": 1}, map[string]int{})
	h.fake().Advance(time.Minute)
	h.fireTimers()
	c.want(t, "fired", map[string]int{"d": 2, "tx": 1}, map[string]int{"d": 1, "tx": 1})
	h.restart()
	c.want(t, "restarted", map[string]int{}, map[string]int{})
}
