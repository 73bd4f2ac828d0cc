package interop_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// Sizes are small: the whole suite shares 2 cores in CI.
const (
	normalCount = 30
	fifoCount   = 30
	fifoGroups  = 3
	delayCount  = 10
	delay       = 3 * time.Second
	// delayTolerance is how much earlier than its delivery time a delay
	// message may arrive: the proxy's timer tick (adapters/localbroker
	// timerTick: a delivery time at most this far ahead counts as due).
	delayTolerance = 10 * time.Millisecond
	// programTimeout bounds one program run; the program gives up on its own
	// a little earlier (--timeout-ms) so that it can say how far it got. A
	// run takes about 8 s, but CI shares 2 cores among three test runs,
	// fuzzing and the JVMs of a RocketMQ cluster (load average near 28):
	// one run there needed 0.6 s per send, and 45 s were not enough for 30
	// messages. Slack only costs time when a run fails; a message that an
	// earlier receive lost would still be caught, as a delivery attempt
	// above 1.
	programTimeout = 120 * time.Second
)

// TestInterop runs every scenario with every language's official client,
// one rmqproxy per language, the languages in parallel. In the cluster
// pass, once every language's scenarios have run, TestInterop checks that
// none of the messages their programs acked comes back (see ackWatch).
func TestInterop(t *testing.T) {
	acks := newAckWatch(t)
	for _, lang := range languages {
		t.Run(lang.name, func(t *testing.T) {
			t.Parallel()
			requireClient(t, lang)
			cfg := testenv.Config(t)
			if acks != nil {
				testenv.ShortPushInvisible(&cfg)
			}
			p := testenv.Start(t, cfg)
			for _, consumer := range []string{"simple", "push"} {
				t.Run("normal/"+consumer, func(t *testing.T) { normalScenario(t, p, acks, lang, consumer) })
			}
			for _, consumer := range []string{"simple", "push"} {
				t.Run("fifo/"+consumer, func(t *testing.T) { fifoScenario(t, p, acks, lang, consumer) })
			}
			t.Run("delay", func(t *testing.T) { delayScenario(t, p, acks, lang) })
			t.Run("transaction", func(t *testing.T) { transactionScenario(t, p, acks, lang) })
			t.Run("filter", func(t *testing.T) { filterScenario(t, p, acks, lang) })
			t.Run("invisible", func(t *testing.T) { invisibleScenario(t, p, acks, lang) })
			if lang.name == "java" {
				t.Run("limits", func(t *testing.T) { limitsScenario(t, p, lang) })
				t.Run("fiforun", func(t *testing.T) { fifoRunScenario(t, p, acks, lang) })
				t.Run("pastdue", func(t *testing.T) { pastDueScenario(t, p, acks, lang) })
				t.Run("verify", func(t *testing.T) { verifyScenario(t, p, acks, lang) })
			}
		})
	}
}

// names gives a subtest its own topic and consumer group.
func names(lang language, scenario, consumer string) (topic, group string) {
	base := lang.name + "-" + scenario
	if consumer != "" {
		base += "-" + consumer
	}
	return "t-" + base, "g-" + base
}

// normalScenario: N messages with tags, keys and properties, each received
// exactly once and intact, acked (simple consumer) or consumed (push).
func normalScenario(t *testing.T, p *testenv.Proxy, acks *ackWatch, lang language, consumer string) {
	topic, group := names(lang, "normal", consumer)
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 4)
	evs := runOn(t, p, lang, "normal", topic, group, "--count", strconv.Itoa(normalCount), "--consumer", consumer)
	sent, got := exactlyOnce(t, evs, normalCount)
	for id, r := range got {
		s := sent[id]
		if r.Topic != topic || r.Body != s.Body || r.Tag != s.Tag || !sameSet(r.Keys, s.Keys) || !sameMap(r.Props, s.Props) {
			t.Errorf("message %s arrived changed:\n got  topic %q body %q tag %q keys %v props %v\n sent topic %q body %q tag %q keys %v props %v",
				id, r.Topic, r.Body, r.Tag, r.Keys, r.Props, topic, s.Body, s.Tag, s.Keys, s.Props)
		}
		if r.Attempt != 1 {
			t.Errorf("message %s arrived with delivery attempt %d, want 1", id, r.Attempt)
		}
	}
	if consumer == "simple" {
		allAcked(t, evs, sent)
	}
	settled(t, p, acks, group, topic, normalCount, invisibleOf(consumer))
}

// fifoScenario: N messages in K message groups, sent one after the other in
// per-group sequence; each group arrives in order, each message once.
func fifoScenario(t *testing.T, p *testenv.Proxy, acks *ackWatch, lang language, consumer string) {
	topic, group := names(lang, "fifo", consumer)
	p.CreateTopic(t, topic, domain.MessageTypeFIFO, 4)
	orderly := true
	p.CreateGroup(t, application.GroupSpec{Name: group, Orderly: &orderly})
	evs := runOn(t, p, lang, "fifo", topic, group, "--count", strconv.Itoa(fifoCount),
		"--groups", strconv.Itoa(fifoGroups), "--consumer", consumer)
	sent, _ := exactlyOnce(t, evs, fifoCount)
	next := map[string]int{} // message group -> next expected sequence number
	var order []string
	for _, r := range only(evs, "received") {
		s, ok := sent[r.ID]
		if !ok {
			continue // reported by exactlyOnce
		}
		if r.Group != s.Group {
			t.Errorf("message %s arrived with message group %q, sent with %q", r.ID, r.Group, s.Group)
		}
		if r.Seq == nil || *r.Seq != *s.Seq {
			t.Errorf("message %s arrived with seq %v, sent with %d", r.ID, r.Seq, *s.Seq)
			continue
		}
		order = append(order, fmt.Sprintf("%s/%d", r.Group, *r.Seq))
		if *r.Seq != next[s.Group] {
			t.Errorf("message group %s: got seq %d, want %d (FIFO order broken)", s.Group, *r.Seq, next[s.Group])
		}
		next[s.Group] = *r.Seq + 1
		if r.Attempt != 1 {
			t.Errorf("message %s arrived with delivery attempt %d, want 1", r.ID, r.Attempt)
		}
	}
	t.Logf("receive order: %v", order)
	if consumer == "simple" {
		allAcked(t, evs, sent)
	}
	settled(t, p, acks, group, topic, fifoCount, invisibleOf(consumer))
}

// delayScenario: messages with a delivery time of now+D arrive, none before
// its time (less the proxy's tick). One more, sent first with the same
// delay, is recalled with the recall handle of its send receipt: the
// answer names it, and it never arrives (it was due before the others).
func delayScenario(t *testing.T, p *testenv.Proxy, acks *ackWatch, lang language) {
	topic, group := names(lang, "delay", "")
	p.CreateTopic(t, topic, domain.MessageTypeDelay, 4)
	evs := runOn(t, p, lang, "delay", topic, group, "--count", strconv.Itoa(delayCount),
		"--delay-ms", strconv.FormatInt(delay.Milliseconds(), 10), "--recall", "1")
	sent, got := exactlyOnce(t, evs, delayCount)
	recalled := only(evs, "recalled")
	if len(recalled) != 1 {
		t.Fatalf("%d messages recalled, want 1", len(recalled))
	}
	if r := recalled[0]; r.Answer != r.ID {
		t.Errorf("recalling message %s answered message id %q", r.ID, r.Answer)
	}
	for _, r := range only(evs, "received") {
		if r.ID == recalled[0].ID {
			t.Errorf("the recalled message %s was delivered (%q, attempt %d)", r.ID, r.Body, r.Attempt)
		}
	}
	minLate, maxLate := time.Duration(1<<62), time.Duration(-1<<62)
	for id, r := range got {
		s := sent[id]
		late := time.Duration(r.TS-s.DeliverAt) * time.Millisecond
		minLate, maxLate = min(minLate, late), max(maxLate, late)
		if early := time.Duration(s.DeliverAt-r.TS) * time.Millisecond; early > delayTolerance {
			t.Errorf("delay message %s arrived %v before its delivery time (tolerance %v)", id, early, delayTolerance)
		}
		if r.DeliverAt != s.DeliverAt {
			t.Errorf("delay message %s arrived with delivery timestamp %d, sent with %d", id, r.DeliverAt, s.DeliverAt)
		}
	}
	allAcked(t, evs, sent)
	if len(got) > 0 {
		t.Logf("%d delay messages arrived %v to %v after their delivery time", len(got), minLate, maxLate)
	}
	// The recalled message never reaches the topic's queues.
	settled(t, p, acks, group, topic, delayCount, simpleInvisible())
}

// transactionScenario: three half messages; the committed one and the one
// the producer's checker commits on check-back arrive, the rolled-back one
// never does. The topic has one queue, so by the time the checked-back
// message (committed last) arrives, a wrongly delivered rolled-back message
// would have arrived before it.
func transactionScenario(t *testing.T, p *testenv.Proxy, acks *ackWatch, lang language) {
	topic, group := names(lang, "transaction", "")
	p.CreateTopic(t, topic, domain.MessageTypeTransaction, 1)
	evs := runOn(t, p, lang, "transaction", topic, group)
	byOutcome := map[string]event{}
	for _, s := range only(evs, "sent") {
		byOutcome[s.Outcome] = s
	}
	if len(byOutcome) != 3 {
		t.Fatalf("sent %d half messages, want commit, rollback and unknown: %v", len(byOutcome), byOutcome)
	}
	want := map[string]string{byOutcome["commit"].ID: "commit", byOutcome["unknown"].ID: "unknown"}
	seen := map[string]int{}
	for _, r := range only(evs, "received") {
		seen[r.ID]++
		switch {
		case r.ID == byOutcome["rollback"].ID:
			t.Errorf("the rolled-back message %s was delivered", r.ID)
		case want[r.ID] == "":
			t.Errorf("unexpected message %s (%q) delivered", r.ID, r.Body)
		case r.Body != byOutcome[want[r.ID]].Body:
			t.Errorf("message %s arrived with body %q, sent %q", r.ID, r.Body, byOutcome[want[r.ID]].Body)
		}
	}
	for id, outcome := range want {
		if seen[id] != 1 {
			t.Errorf("the %s message %s was delivered %d times, want once", outcome, id, seen[id])
		}
	}
	checkedBack := false
	for _, c := range only(evs, "checked") {
		switch c.ID {
		case byOutcome["unknown"].ID:
			checkedBack = checkedBack || c.Resolution == "COMMIT"
		default:
			t.Errorf("the proxy checked back message %s (%s), which the producer had already resolved", c.ID, c.Outcome)
		}
	}
	t.Logf("delivered: %d of commit, %d of unknown (checked back), %d of rollback",
		seen[byOutcome["commit"].ID], seen[byOutcome["unknown"].ID], seen[byOutcome["rollback"].ID])
	if !checkedBack {
		t.Errorf("the proxy never checked back the open transaction of message %s", byOutcome["unknown"].ID)
	}
	// Only the two committed messages ever reached the topic's queue.
	settled(t, p, acks, group, topic, 2, simpleInvisible())
}

// runOn runs lang's program for scenario against p.
func runOn(t *testing.T, p *testenv.Proxy, lang language, scenario, topic, group string, extra ...string) []event {
	t.Helper()
	args := append([]string{scenario,
		"--endpoint", p.Addr,
		"--topic", topic, "--group", group,
		"--timeout-ms", strconv.FormatInt((programTimeout - 15*time.Second).Milliseconds(), 10),
		"--invisible-ms", strconv.FormatInt(simpleInvisible().Milliseconds(), 10),
	}, extra...)
	before := rpcCounts(t, p)
	evs := program(t, lang, programTimeout, args...)
	goodbyes(t, p, before, scenario)
	return evs
}

// clientsOf is how many clients (producers and consumers) each scenario's
// program starts and shuts down.
var clientsOf = map[string]int{"filter": 3, "limits": 3}

// goodbyes checks that every client of a program that just ended said
// goodbye (NotifyClientTermination answered OK, once per client), and logs
// the RPCs the proxy answered with a code other than OK while it ran (a
// receive that found no message aside).
func goodbyes(t *testing.T, p *testenv.Proxy, before map[rpcKey]uint64, scenario string) {
	t.Helper()
	want := uint64(clientsOf[scenario])
	if want == 0 {
		want = 2
	}
	var d rpcDelta
	testenv.WaitFor(t, 5*time.Second, func() error {
		d = diffRPCs(before, rpcCounts(t, p))
		if n := d[rpcKey{"NotifyClientTermination", "OK"}]; n < want {
			return fmt.Errorf("%d clients said goodbye (NotifyClientTermination answered OK), want %d; RPCs: %v", n, want, d)
		}
		return nil
	})
	notOK := rpcDelta{}
	for k, n := range d {
		if k.code != "OK" && k != (rpcKey{"ReceiveMessage", "MESSAGE_NOT_FOUND"}) {
			notOK[k] = n
		}
	}
	if len(notOK) > 0 {
		t.Logf("RPCs not answered OK: %v", notOK)
	}
}

// exactlyOnce checks that n distinct messages were sent and each of them,
// and nothing else, was received exactly once. It returns the sent and the
// received events by message id.
func exactlyOnce(t *testing.T, evs []event, n int) (sent, got map[string]event) {
	t.Helper()
	sent, got = map[string]event{}, map[string]event{}
	for _, s := range only(evs, "sent") {
		if _, dup := sent[s.ID]; dup {
			t.Errorf("send returned message id %s twice", s.ID)
		}
		sent[s.ID] = s
	}
	if len(sent) != n {
		t.Fatalf("sent %d distinct messages, want %d", len(sent), n)
	}
	count := map[string]int{}
	for _, r := range only(evs, "received") {
		count[r.ID]++
		if _, ok := sent[r.ID]; !ok {
			t.Errorf("received message %s (%q) that was not sent", r.ID, r.Body)
			continue
		}
		if count[r.ID] == 2 {
			t.Errorf("message %s received again (attempt %d) after it was consumed", r.ID, r.Attempt)
		}
		got[r.ID] = r
	}
	var lost []int
	for id, s := range sent {
		if count[id] == 0 {
			if s.Seq != nil {
				lost = append(lost, *s.Seq)
			} else {
				lost = append(lost, -1)
			}
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		t.Errorf("%d of %d messages never arrived (seq %v)", len(lost), n, lost)
	}
	return sent, got
}

// settled waits until the proxy's own view of group on topic agrees with
// what the program saw: want messages in the topic's queues, all of them
// acked (none in flight, none left to deliver). That holds for acks in the
// local pass only: in the cluster pass GroupStats reports the broker's
// consumer offset, which a RocketMQ 5 broker advances when it pops, and
// the in-flight count as unknown (0), so there it shows that every message
// was delivered, and acks checks that none comes back once the invisible
// time the program received with (invisible) and the broker's revive delay
// have passed (see ackWatch).
func settled(t *testing.T, p *testenv.Proxy, acks *ackWatch, group, topic string, want int64, invisible time.Duration) {
	t.Helper()
	acks.expect(t, group, topic, invisible)
	testenv.WaitFor(t, 15*time.Second, func() error {
		stats, err := p.Admin.GroupStats(t.Context(), group)
		if err != nil {
			return err
		}
		var total, acked, inFlight, consumable int64
		for _, q := range stats {
			if q.Topic != topic {
				continue
			}
			total += q.MaxOffset
			acked += q.AckOffset
			inFlight += q.InFlight
			consumable += q.Consumable
		}
		if total != want || acked != want || inFlight != 0 || consumable != 0 {
			return fmt.Errorf("group %s on %s: %d messages in the queues (want %d), %d acked, %d in flight, %d consumable",
				group, topic, total, want, acked, inFlight, consumable)
		}
		return nil
	})
}

// allAcked checks that a simple consumer acked every message it received.
func allAcked(t *testing.T, evs []event, sent map[string]event) {
	t.Helper()
	acked := map[string]bool{}
	for _, a := range only(evs, "acked") {
		acked[a.ID] = true
	}
	for id := range sent {
		if !acked[id] {
			t.Errorf("message %s was not acked", id)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// limitsScenario (Java): receives with an invisible duration out of bounds
// are refused with ILLEGAL_INVISIBLE_TIME and the Apache proxy's text, and a
// consumer subscribed with a 10 KiB tag expression receives the message that
// matches it and only that one.
func limitsScenario(t *testing.T, p *testenv.Proxy, lang language) {
	topic, group := names(lang, "limits", "")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	evs := runOn(t, p, lang, "limits", topic, group)
	// testenv.Config sets the minimum invisible time to 1 s; the maximum is
	// the default 12 h. The Java client prefixes the request id and code.
	want := map[string]string{
		"invisible-too-small": "response-code=40011] the invisibleTime is too small. min is 1000",
		"invisible-too-large": "response-code=40011] the invisibleTime is too large. max is 43200000",
	}
	for _, e := range only(evs, "accepted") {
		t.Errorf("receive %s was accepted", e.Case)
	}
	rejected := only(evs, "rejected")
	for _, e := range rejected {
		if w := want[e.Case]; !strings.HasSuffix(e.Message, w) {
			t.Errorf("receive %s: %q, want it to end with %q", e.Case, e.Message, w)
		}
	}
	if len(rejected) != len(want) {
		t.Errorf("%d receives rejected, want %d", len(rejected), len(want))
	}
	var hit string
	for _, s := range only(evs, "sent") {
		if s.Tag == "hit" {
			hit = s.ID
		}
	}
	got := only(evs, "received")
	if len(got) != 1 || got[0].ID != hit {
		t.Errorf("the 10 KiB tag expression received %v, want only the message tagged hit (%s)", got, hit)
	}
}

// fifoRunScenario (Java): a simple consumer of an orderly group receives
// with a batch size of 3 from a FIFO topic with one message group and gets
// a run of 3 consecutive messages, as from the Apache proxy; it acks the
// later two but not the first, and the whole run comes again (attempt 2);
// once it is acked the rest follows.
func fifoRunScenario(t *testing.T, p *testenv.Proxy, acks *ackWatch, lang language) {
	topic, group := names(lang, "fiforun", "")
	p.CreateTopic(t, topic, domain.MessageTypeFIFO, 2)
	orderly := true
	p.CreateGroup(t, application.GroupSpec{Name: group, Orderly: &orderly})
	evs := runOn(t, p, lang, "fiforun", topic, group)
	type round struct {
		seqs     []int
		attempts []int
	}
	var rounds []round
	var cur round
	for _, e := range evs {
		switch e.Event {
		case "received":
			if e.Seq != nil {
				cur.seqs = append(cur.seqs, *e.Seq)
			}
			cur.attempts = append(cur.attempts, e.Attempt)
		case "round":
			rounds = append(rounds, cur)
			cur = round{}
		}
	}
	want := []round{{[]int{0, 1, 2}, []int{1, 1, 1}}, {[]int{0, 1, 2}, []int{2, 2, 2}}, {[]int{3, 4, 5}, []int{1, 1, 1}}}
	if len(rounds) != len(want) {
		t.Fatalf("rounds %v, want %v", rounds, want)
	}
	for i := range want {
		if !slices.Equal(rounds[i].seqs, want[i].seqs) || !slices.Equal(rounds[i].attempts, want[i].attempts) {
			t.Errorf("round %d: seq %v attempts %v, want seq %v attempts %v", i+1, rounds[i].seqs, rounds[i].attempts, want[i].seqs, want[i].attempts)
		}
	}
	settled(t, p, acks, group, topic, 6, simpleInvisible())
}

// pastDueScenario (Java): delay messages whose delivery time lies 20 s in
// the past reach the simple consumer, which is already receiving while they
// are sent, at once. Their lateness (from the send to the receive) is
// logged, not asserted: speed is measured by BenchmarkPastDueDelayUnderLoad.
func pastDueScenario(t *testing.T, p *testenv.Proxy, acks *ackWatch, lang language) {
	topic, group := names(lang, "pastdue", "")
	p.CreateTopic(t, topic, domain.MessageTypeDelay, 4)
	const past = 20 * time.Second
	evs := runOn(t, p, lang, "delay", topic, group, "--count", strconv.Itoa(delayCount),
		"--delay-ms", strconv.FormatInt(-past.Milliseconds(), 10))
	sent, got := exactlyOnce(t, evs, delayCount)
	var late []time.Duration
	for id, r := range got {
		late = append(late, time.Duration(r.TS-(sent[id].DeliverAt+past.Milliseconds()))*time.Millisecond)
	}
	slices.Sort(late)
	if len(late) > 0 {
		t.Logf("%d past-due delay messages arrived %v to %v after their send", len(late), late[0], late[len(late)-1])
	}
	allAcked(t, evs, sent)
	settled(t, p, acks, group, topic, delayCount, simpleInvisible())
}

// verifyScenario (Java): rmqproxy client verify through the admin API with
// the official Java push consumer, the one client that runs its listener
// on a VerifyMessageCommand: the program's consumer consumes two messages,
// then has the proxy send each back to it for verification; its listener
// accepts one and fails the other the second time, and the admin API
// answers OK and FAILED_TO_CONSUME_MESSAGE for them. In the cluster target
// each message is then also sent back to the consumer through the broker
// (CONSUME_MESSAGE_DIRECTLY, see brokerVerifier), which answers CR_SUCCESS
// and CR_LATER for them.
func verifyScenario(t *testing.T, p *testenv.Proxy, acks *ackWatch, lang language) {
	topic, group := names(lang, "verify", "")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	adminAddr, perMessage := p.AdminAddr(), 2 // consumed once, verified once
	var viaBroker *brokerVerifier
	if testenv.Target == testenv.TargetCluster {
		viaBroker = startBrokerVerifier(t, p, group)
		adminAddr, perMessage = viaBroker.Addr, 3 // and once through the broker
	}
	evs := runOn(t, p, lang, "verify", topic, group, "--admin", adminAddr)
	// The push consumer acked both messages after consuming them.
	acks.expect(t, group, topic, testenv.PushInvisible)
	sent := map[string]string{} // id → verdict
	for _, e := range only(evs, "sent") {
		sent[e.ID] = e.Props["verdict"]
	}
	received := map[string]int{}
	for _, e := range only(evs, "received") {
		received[e.ID]++
	}
	verified := only(evs, "verify")
	if len(sent) != 2 || len(verified) != 2 {
		t.Fatalf("sent %v, verify answers %+v", sent, verified)
	}
	for _, v := range verified {
		var a admin.ClientAnswer
		if err := json.Unmarshal([]byte(v.Answer), &a); err != nil || v.Status != 200 {
			t.Fatalf("verify %s: HTTP %d %s", v.ID, v.Status, v.Answer)
		}
		want := map[string]string{"ok": "OK", "fail": "FAILED_TO_CONSUME_MESSAGE"}[sent[v.ID]]
		if a.Code != want || a.ClientID != v.Client || a.MessageID != v.ID || a.Topic != topic || a.Nonce == "" {
			t.Errorf("verify of the %q message %s: %+v, want code %s", sent[v.ID], v.ID, a, want)
		}
		if received[v.ID] != perMessage {
			t.Errorf("message %s reached the listener %d times, want %d", v.ID, received[v.ID], perMessage)
		}
		if viaBroker == nil {
			continue
		}
		b, ok := viaBroker.answer(v.ID)
		want = map[string]string{"ok": remoting.CMResultSuccess, "fail": remoting.CMResultLater}[sent[v.ID]]
		t.Logf("the broker's answer for the %q message: %+v", sent[v.ID], b)
		if !ok || b.Err != "" || b.Code != int32(remoting.ResponseSuccess) || b.Result.ConsumeResult != want ||
			b.Result.Remark != "from gRPC client "+v.Client {
			t.Errorf("consume directly through the broker of the %q message %s: %+v (recorded %v), want %s from client %s",
				sent[v.ID], v.ID, b, ok, want, v.Client)
		}
	}
}

// filterScenario: six messages, message i tagged TagA, TagB or TagC
// (i % 3) with the properties color (red for an even i, else blue) and n
// (i). A consumer of group G-tag subscribed with "TagA||TagC" receives
// exactly those tagged TagA or TagC, one of group G-sql subscribed with
// the SQL92 expression "color = 'red' AND n >= 2" exactly messages 2 and 4,
// each once and intact; both groups end with all six messages consumed
// (the ones their filter skips included).
func filterScenario(t *testing.T, p *testenv.Proxy, acks *ackWatch, lang language) {
	topic, group := names(lang, "filter", "")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	want := map[string][]int{}
	for i := range 6 {
		if i%3 != 1 {
			want["tag"] = append(want["tag"], i)
		}
		if i%2 == 0 && i >= 2 {
			want["sql"] = append(want["sql"], i)
		}
	}
	evs := runOn(t, p, lang, "filter", topic, group,
		"--tag-want", strconv.Itoa(len(want["tag"])), "--sql-want", strconv.Itoa(len(want["sql"])))
	sent := map[string]event{}
	for _, s := range only(evs, "sent") {
		sent[s.ID] = s
	}
	if len(sent) != 6 {
		t.Fatalf("sent %d distinct messages, want 6", len(sent))
	}
	got := map[string][]int{}
	for _, r := range only(evs, "received") {
		s, ok := sent[r.ID]
		switch {
		case !ok:
			t.Errorf("%s consumer received message %s (%q) that was not sent", r.Consumer, r.ID, r.Body)
			continue
		case r.Body != s.Body || r.Tag != s.Tag || !sameMap(r.Props, s.Props):
			t.Errorf("message %s arrived changed at the %s consumer: body %q tag %q props %v, sent body %q tag %q props %v",
				r.ID, r.Consumer, r.Body, r.Tag, r.Props, s.Body, s.Tag, s.Props)
		}
		got[r.Consumer] = append(got[r.Consumer], *s.Seq)
	}
	for _, c := range []string{"tag", "sql"} {
		slices.Sort(got[c])
		if !slices.Equal(got[c], want[c]) {
			t.Errorf("the %s consumer received messages %v, want %v", c, got[c], want[c])
		}
	}
	for _, c := range []string{"tag", "sql"} {
		settled(t, p, acks, group+"-"+c, topic, 6, simpleInvisible())
	}
}

// invisibleScenario: a simple consumer changes the invisible duration of
// the message "extend" to twice its own and acks it with the receipt handle
// the change returned: it arrives once. It changes that of "shorten" to
// 1 s and does not ack it: it arrives again (delivery attempt 2) no sooner
// than 1 s after the change, and is acked then.
func invisibleScenario(t *testing.T, p *testenv.Proxy, acks *ackWatch, lang language) {
	topic, group := names(lang, "invisible", "")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	evs := runOn(t, p, lang, "invisible", topic, group)
	byCase := map[string]string{}
	for _, s := range only(evs, "sent") {
		byCase[s.Case] = s.ID
	}
	if len(byCase) != 2 {
		t.Fatalf("sent %v, want extend and shorten", byCase)
	}
	attempts := map[string][]int{}
	var changing int64
	var redelivered int64
	for _, e := range evs {
		switch {
		case e.Event == "received":
			attempts[e.ID] = append(attempts[e.ID], e.Attempt)
			if e.ID == byCase["shorten"] && e.Attempt == 2 {
				redelivered = e.TS
			}
		case e.Event == "changing" && e.ID == byCase["shorten"]:
			changing = e.TS
		}
	}
	if a := attempts[byCase["extend"]]; !slices.Equal(a, []int{1}) {
		t.Errorf("the extended message arrived with delivery attempts %v, want [1]", a)
	}
	if a := attempts[byCase["shorten"]]; !slices.Equal(a, []int{1, 2}) {
		t.Errorf("the shortened message arrived with delivery attempts %v, want [1 2]", a)
	}
	if early := time.Second - time.Duration(redelivered-changing)*time.Millisecond; redelivered != 0 && early > delayTolerance {
		t.Errorf("the shortened message came again %v after its invisible duration was changed to 1 s", time.Duration(redelivered-changing)*time.Millisecond)
	} else if redelivered != 0 {
		t.Logf("the shortened message came again %v after the change", time.Duration(redelivered-changing)*time.Millisecond)
	}
	acked := map[string]int{}
	for _, a := range only(evs, "acked") {
		acked[a.ID]++
	}
	for c, id := range byCase {
		if acked[id] != 1 {
			t.Errorf("the %s message was acked %d times, want once", c, acked[id])
		}
	}
	settled(t, p, acks, group, topic, 2, simpleInvisible())
}
