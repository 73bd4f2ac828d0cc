package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestKill9DamagedTimerBucketsRebuilt kills rmqproxy (SIGKILL) while delay
// messages wait, damages the timer index as a bad disk would (a flipped byte
// in each near bucket, the bucket of the far timers deleted) and restarts:
// rmqproxy rebuilds the buckets from the commit log and says so once; every
// near message is delivered once, not before its time; the one fired before
// the crash is not delivered again; the far ones are still pending (their
// recall recalls them: rmqproxy logs "delay message recalled") and the one
// recalled before the crash is not (its recall is answered OK, as every
// recall before the delivery time, but recalls nothing).
func TestKill9DamagedTimerBucketsRebuilt(t *testing.T) {
	testenv.LocalOnly(t, "it damages the embedded broker's timer-index files")
	waitsInParallel(t)
	dir := t.TempDir()
	flags := append([]string{"--local.snapshotInterval=200ms"}, fastConsumer...)
	c := testenv.StartChild(t, dir, flags...)
	if _, err := adminClient(t, c).CreateTopic(t.Context(), application.TopicSpec{Name: "timers", Type: domain.MessageTypeDelay, QueueCount: 2}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// The group subscribes before anything is sent: a timer firing twice
	// would put a second copy in its queue.
	sc := testenv.NewSimpleConsumer(t, c.Proxy(t), "g-timers", time.Second, map[string]*rmq.FilterExpression{"timers": rmq.SUB_ALL})
	pr := testenv.NewProducer(t, c.Proxy(t), "timers")
	send := func(body string, at time.Time) string {
		t.Helper()
		m := &rmq.Message{Topic: "timers", Body: []byte(body)}
		m.SetDelayTimestamp(at)
		r, err := pr.Send(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return r[0].MessageID + " " + r[0].RecallHandle
	}
	start := time.Now()
	first := strings.Fields(send("first", start.Add(500*time.Millisecond)))[0]
	due := map[string]time.Time{}
	for i := range 6 {
		at := start.Add(8*time.Second + time.Duration(i)*250*time.Millisecond)
		due[strings.Fields(send(fmt.Sprint("near-", i), at))[0]] = testenv.DeliveryTime(at)
	}
	var far [][]string // message id, recall handle
	for i := range 3 {
		far = append(far, strings.Fields(send(fmt.Sprint("far-", i), start.Add(time.Hour+time.Duration(i)*time.Second))))
	}
	recalled := strings.Fields(send("recalled", start.Add(time.Hour)))
	if _, err := pr.Recall(ctx, "timers", recalled[1]); err != nil {
		t.Fatal(err)
	}
	if got := receiveAll(t, sc, 1, 30*time.Second); len(got) != 1 || got[first].IsZero() {
		t.Fatalf("before the crash: %v", got)
	}
	_ = pr.GracefulStop()
	snapshotCovers(t, dir)
	c.Kill(t)
	if time.Now().After(start.Add(8 * time.Second)) {
		t.Logf("the near timers were due before the crash (slow machine): the test checks less")
	}

	farBucket := filepath.Join(dir, "timer", fmt.Sprintf("%020d", start.Add(time.Hour).UnixMilli()/60_000*60_000))
	buckets, _ := filepath.Glob(filepath.Join(dir, "timer", "0*"))
	damaged := 0
	for _, p := range buckets {
		if p == farBucket {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			damaged++
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) <= 20 {
			continue
		}
		b[17] ^= 0x04 // inside the first entry
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		damaged++
	}
	if damaged < 2 {
		t.Fatalf("found %d timer buckets to damage in %v (far %s)", damaged, buckets, farBucket)
	}

	c = startServing(t, dir, flags...)
	if n := strings.Count(c.Output(), "rebuilt them from the commit log"); n != 1 {
		t.Fatalf("%d rebuild warnings; logs:\n%s", n, c.Output())
	}
	sc = testenv.NewSimpleConsumer(t, c.Proxy(t), "g-timers", time.Second, map[string]*rmq.FilterExpression{"timers": rmq.SUB_ALL})
	got := receiveAll(t, sc, len(due), 60*time.Second)
	for id, at := range got {
		if want, ok := due[id]; !ok {
			t.Errorf("unexpected message %s (fired twice, or recalled?)", id)
		} else if at.Before(want) {
			t.Errorf("message %s delivered %v before its time", id, want.Sub(at))
		}
	}
	if ms := testenv.ReceiveAnswered(t, sc, 16, 3*time.Second); len(ms) != 0 {
		t.Fatalf("delivered again after all: %s", ms[0].GetMessageId())
	}
	pr = testenv.NewProducer(t, c.Proxy(t), "timers")
	// A recall is answered OK whether or not the message is pending (as a
	// broker answers); only one that recalls a pending message logs
	// "delay message recalled". The recalled one goes first: once the far
	// ones' lines are written, its line would have been too.
	wasRecalled := func(id string) bool {
		for _, l := range strings.Split(c.Output(), "\n") {
			if strings.Contains(l, `"msg":"delay message recalled"`) && strings.Contains(l, `"msg_id":"`+id+`"`) {
				return true
			}
		}
		return false
	}
	for _, m := range append([][]string{recalled}, far...) {
		if id, err := pr.Recall(ctx, "timers", m[1]); err != nil || id != m[0] {
			t.Errorf("recall of %s after the rebuild: %q %v", m[0], id, err)
		}
	}
	waitfor.Condition(t, 30*time.Second, 10*time.Millisecond, func() error {
		for _, m := range far {
			if !wasRecalled(m[0]) {
				return fmt.Errorf("the far timer %s was not pending after the rebuild (no \"delay message recalled\" logged)", m[0])
			}
		}
		return nil
	})
	if wasRecalled(recalled[0]) {
		t.Error("the timer recalled before the crash was pending again")
	}
	_ = pr.GracefulStop()
}
