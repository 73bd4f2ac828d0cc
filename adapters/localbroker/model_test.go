package localbroker

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/commitlog"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestEngineRandomOperations runs seeded random sequences of operations
// against the engine and checks them against a reference model of what a
// consumer group may be handed: sends of every kind, pops (FIFO or not,
// with tag filters), acks, changes of invisible time, nacks towards the
// dead-letter queue, forwards, recalls, transactions and their
// check-backs, pull offsets, topic and group definitions (maximum delivery
// attempts raised and lowered), snapshots, retention (segments aged and
// deleted at random points), clock moves, crashes and restarts. It checks,
// as it goes, that no message is handed out that the model forbids (acked,
// invisible, not yet due, uncommitted, rolled back, recalled, of a deleted
// topic, filtered out, out of FIFO order, removed by retention), that the
// state after a crash with snapshot and replay, and after a full replay
// (while retention has deleted nothing), is the live state (once the
// messages visible again at a lowered maximum are forwarded, as the
// application does: see forwardPastLowered), and that the topics, groups
// and pull offsets survive restarts as they are; at the end, after a crash
// and past every invisible time and timer, that every group gets every
// message it is owed, or finds it in its dead-letter queue.
//
// CI runs a few seeds (three of them with the retention mix);
// RMQPROXY_TEST_ENGINE_SEEDS=n runs seeds 1..n,
// RMQPROXY_TEST_ENGINE_SEED=s one seed (as -run 'TestEngineRandomOperations/seed=s$'
// does for the CI seeds), RMQPROXY_TEST_ENGINE_OPS the operations per seed,
// RMQPROXY_TEST_ENGINE_MIX another operation mix (fifo, admin, retention;
// see run).
// The engine's own goroutines (timers, check-backs, the reviver) run too,
// so a seed's trace may differ slightly between runs; the checks hold
// whatever they did.
func TestEngineRandomOperations(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5}
	ops := 250
	if v := os.Getenv("RMQPROXY_TEST_ENGINE_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("RMQPROXY_TEST_ENGINE_SEEDS=%q: %v", v, err)
		}
		seeds = seeds[:0]
		for s := range n {
			seeds = append(seeds, uint64(s+1))
		}
	}
	if v := os.Getenv("RMQPROXY_TEST_ENGINE_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("RMQPROXY_TEST_ENGINE_SEED=%q: %v", v, err)
		}
		seeds = []uint64{s}
	}
	if v := os.Getenv("RMQPROXY_TEST_ENGINE_OPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("RMQPROXY_TEST_ENGINE_OPS=%q: %v", v, err)
		}
		ops = n
	}
	type run struct {
		seed uint64
		mix  string
	}
	var runs []run
	mix, envSet := os.LookupEnv("RMQPROXY_TEST_ENGINE_MIX")
	for _, s := range seeds {
		runs = append(runs, run{s, mix})
	}
	if !envSet && os.Getenv("RMQPROXY_TEST_ENGINE_SEEDS") == "" && os.Getenv("RMQPROXY_TEST_ENGINE_SEED") == "" {
		// CI also runs a few seeds of the retention mix.
		runs = append(runs, run{6, "retention"}, run{7, "retention"}, run{8, "retention"})
	}
	for _, r := range runs {
		name := fmt.Sprintf("seed=%d", r.seed)
		if r.mix != mix {
			name += ",mix=" + r.mix
		}
		t.Run(name, func(t *testing.T) {
			m := newEngineModel(t, r.seed)
			defer func() {
				if t.Failed() {
					t.Logf("seed %d failed; re-run with RMQPROXY_TEST_ENGINE_SEED=%d RMQPROXY_TEST_ENGINE_OPS=%d RMQPROXY_TEST_ENGINE_MIX=%s; trace:\n%s",
						r.seed, r.seed, ops, r.mix, strings.Join(m.trace, "\n"))
				}
			}()
			m.run(ops, r.mix)
		})
	}
}

type mState uint8

const (
	msVisible    mState = iota // in its queue (sent, fired or committed)
	msTimer                    // a delay message before its time
	msHalf                     // a half message not resolved yet
	msRolledBack               // rolled back (or discarded after its last check-back)
	msRecalled                 // a delay message recalled
)

// mMsg is the model of one sent message; ids are unique in a run.
type mMsg struct {
	id, topic string
	inc       int // the topic's incarnation it was sent to
	qid       int32
	off       int64 // queue offset (normal and FIFO messages)
	mgroup    string
	tag       string
	state     mState
	deliverAt time.Time
	recall    string
	txnID     string
	// removed: retention deleted the segment of its record (it is
	// consumed for every group, never delivered again).
	removed bool
}

type mTopicDef struct {
	name string
	typ  domain.MessageType
}

type mTopic struct {
	exists bool
	inc    int
	queues int32
	counts map[int32]int64   // messages stored per queue (normal and FIFO topics)
	stored map[int32][]*mMsg // those messages, in queue order
}

// mGroupDef is a consumer group's fixed subscription.
type mGroupDef struct {
	name    string
	orderly bool
	tag     string // filter: "" takes every message
	topics  []string
}

type mGroup struct {
	exists bool
	inc    int
	max    int32
	minMax int32 // the lowest maximum of this incarnation
	dels   map[string]*mDel
}

// mDel is a message's deliveries to one incarnation of a group.
type mDel struct {
	m          *mMsg
	deliveries int32
	exact      bool // no delivery may have been lost in a crash
	inflight   bool // handle is the latest delivery's, not acked
	handle     domain.ReceiptHandle
	deadline   time.Time
	certain    bool // the delivery's pop record is durable
	acked      bool
	forwarded  bool // moved to the dead-letter queue by a forward
	maybeFwd   bool // a forward with an outlived handle: moved or not
	// fwdOutlived: a forward after the invisible time of a delivery that
	// was certainly made (the message visible again).
	fwdOutlived bool
	// A FIFO pop with runs hands out runs: an ack of a later message of a
	// run is final only once the earlier ones are; if one of them becomes
	// visible again first, the run is delivered again from it.
	run        int     // the pop that delivered the message in a run of two or more, 0 otherwise
	runAttempt int32   // the delivery attempt of the run's delivery
	validAck   bool    // acked with a handle the engine had to take
	heldBy     []*mDel // the earlier messages of its run when it was acked
	ackOp      int     // the operation of its ack
	fwdOp      int     // the operation of its forward (maybeFwd, forwarded)
}

// mustRedeliver reports whether del was acked in a FIFO run while an
// earlier message of the run was in flight, and that message then became
// visible again (not acked nor forwarded in time, delivered again, or
// released itself) rather than moved to the dead-letter queue after its
// last attempt: the ack was void, and del is to be delivered again.
func mustRedeliver(mg *mGroup, del *mDel) bool {
	if !del.acked || del.run == 0 {
		return false
	}
	for _, e := range del.heldBy {
		switch {
		case e.m.removed:
			// Retention deleted it: consumed when read again, maybe
			// after it released the run, maybe not.
		case e.run != del.run:
			return true // delivered again: it was visible again first
		case e.runAttempt >= mg.minMax:
			// May have been moved to the dead-letter queue after its last
			// attempt, the run's held messages with it.
		case e.maybeFwd && !e.fwdOutlived:
			// Forwarded with a handle whose pop a crash may have lost:
			// moved or not.
		case e.maybeFwd && e.fwdOp < del.ackOp:
			// Forwarded with an outlived handle before del's ack: moved
			// (consumed, its run released before del's ack, which then
			// is final) or not yet visible again, left in flight (its
			// expiry releases the run later).
		case e.acked || e.forwarded:
			// An ack taken after the invisible time (the reviver had not
			// made it visible yet, or it would have been refused)
			// consumed it before its run was released, as a valid one.
			if mustRedeliver(mg, e) {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// surelyFinal reports whether del's ack is final: acked, and, in a FIFO
// run, acked in time after every earlier message of the run was.
func surelyFinal(del *mDel) bool {
	if !del.acked {
		return false
	}
	if del.run == 0 {
		return true
	}
	if !del.validAck {
		return false
	}
	for _, e := range del.heldBy {
		if e.run != del.run || !surelyFinal(e) {
			return false
		}
	}
	return true
}

type engineModel struct {
	t      *testing.T
	h      *harness
	rng    *rand.Rand
	rec    *checkRecorder
	trace  []string
	op     int
	nextID int

	topicDefs []mTopicDef
	topics    map[string]*mTopic
	groupDefs []mGroupDef
	groups    map[string]*mGroup
	msgs      map[string]*mMsg
	order     []*mMsg                     // in sending order
	fifoSeq   map[string][]*mMsg          // FIFO messages per topic incarnation, queue and message group, in queue order
	offsets   map[consKey]int64           // pull offsets
	everDel   map[string]map[string]int32 // group name -> message id -> incarnations that delivered it
	everMax   map[string]map[string]int32 // group name -> message id -> most deliveries in one incarnation
	lowestMax map[string]int32            // group name -> the lowest maximum ever
	everFwd   map[string]map[string]bool  // group name -> message id -> forwarded (maybe)
	fwdSure   map[string]map[string]bool  // group name -> message id -> certainly forwarded
	fwdOp     map[string]map[string]int   // group name -> message id -> the operation of its last forward
	lastPopOp map[string]map[string]int   // group name -> message id -> the operation of its last delivery
	// removalOp is the last operation at which retention deleted segments
	// (dead-letter copies among them, maybe).
	removalOp int
	removals  int // retention runs that deleted segments
	removedN  int // messages they removed
	// lowered: some group's maximum delivery attempts was lowered; see
	// opEquivalence.
	lowered bool
}

const modelCheckMax = 3 // transactionCheckMax of the model's engine

func newEngineModel(t *testing.T, seed uint64) *engineModel {
	h := newHarness(t, func(c *Config) {
		c.SegmentSize = 3 << 10 // small, for retention to delete some
		c.MaxRecordSize = 2 << 10
		// Retention is driven by opRetention (segment file times set in
		// the past, then applyRetention); the maintenance loop's hourly
		// run never comes in a test, and a day is past every half
		// message's age in a run.
		c.Retention = 24 * time.Hour
		c.AutoCreateTopics = false
		c.AutoCreateGroups = false
		c.TransactionCheckMax = modelCheckMax
	})
	m := &engineModel{
		t: t, h: h, rng: rand.New(rand.NewPCG(seed, 0x5eed)), rec: &checkRecorder{},
		topicDefs: []mTopicDef{
			{"n0", domain.MessageTypeNormal}, {"n1", domain.MessageTypeNormal}, {"f0", domain.MessageTypeFIFO},
			{"d0", domain.MessageTypeDelay}, {"x0", domain.MessageTypeTransaction},
		},
		groupDefs: []mGroupDef{
			{name: "ga", tag: "A", topics: []string{"n0", "n1", "d0", "x0"}},
			{name: "gb", topics: []string{"n0", "n1", "d0", "x0"}},
			{name: "gf", orderly: true, topics: []string{"f0"}},
			{name: "gf2", orderly: true, topics: []string{"f0"}},
			{name: "puller"},
		},
		topics: map[string]*mTopic{}, groups: map[string]*mGroup{}, msgs: map[string]*mMsg{},
		fifoSeq: map[string][]*mMsg{}, offsets: map[consKey]int64{},
		everDel: map[string]map[string]int32{}, everMax: map[string]map[string]int32{}, lowestMax: map[string]int32{},
		everFwd: map[string]map[string]bool{}, fwdSure: map[string]map[string]bool{},
		fwdOp: map[string]map[string]int{}, lastPopOp: map[string]map[string]int{},
	}
	h.engineMod = func(e *Engine) { e.SetTransactionCheckHandler(m.rec.handle) }
	h.restart()
	for _, d := range m.topicDefs {
		m.topics[d.name] = &mTopic{}
		m.createTopic(d)
	}
	for _, d := range m.groupDefs {
		m.groups[d.name] = &mGroup{}
		m.createGroup(d.name)
	}
	if _, err := h.e.CreateGroup(t.Context(), domain.NewConsumerGroup("inspector")); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *engineModel) logf(format string, a ...any) {
	m.trace = append(m.trace, fmt.Sprintf("%4d %s ", m.op, m.h.clock.Now().Format("15:04:05.000"))+fmt.Sprintf(format, a...))
}

func (m *engineModel) failf(format string, a ...any) {
	m.t.Helper()
	m.logf("FAIL: "+format, a...)
	m.t.Fatalf("op %d: "+format, append([]any{m.op}, a...)...)
}

func (m *engineModel) now() time.Time { return m.h.clock.Now() }

func (m *engineModel) pick(n int) int { return m.rng.IntN(n) }

func (m *engineModel) groupDef(name string) mGroupDef {
	for _, d := range m.groupDefs {
		if d.name == name {
			return d
		}
	}
	panic(name)
}

func (m *engineModel) topicDef(name string) mTopicDef {
	for _, d := range m.topicDefs {
		if d.name == name {
			return d
		}
	}
	panic(name)
}

func (m *engineModel) run(ops int, mix string) {
	type op struct {
		name   string
		weight int
		do     func()
	}
	table := []op{
		{"send", 14, m.opSendNormal}, {"send FIFO", 10, m.opSendFIFO}, {"send delay", 6, m.opSendDelay}, {"send half", 5, m.opSendTxn},
		{"pop", 16, m.opPop}, {"pop FIFO", 10, m.opPopFIFO}, {"ack", 12, m.opAck}, {"ack batch", 4, m.opAckBatch},
		{"change invisible", 6, m.opChangeInvisible}, {"forward", 2, m.opForward}, {"recall", 3, m.opRecall},
		{"end transaction", 4, m.opEndTxn}, {"answer check-back", 3, m.opAnswerCheck}, {"advance", 9, m.opAdvance},
		{"pull offset", 3, m.opPullOffset}, {"pull", 3, m.opPull}, {"change invisible batch", 2, m.opChangeInvisibleBatch}, {"topic admin", 2, m.opTopicAdmin}, {"group admin", 2, m.opGroupAdmin},
		{"reset", 1, m.opReset}, {"snapshot", 2, m.opSnapshot}, {"retention", 2, m.opRetention}, {"crash", 2, m.opCrash}, {"restart", 1, m.opRestart}, {"replay equivalence", 2, m.opEquivalence},
	}
	// RMQPROXY_TEST_ENGINE_MIX weighs some operations more: fifo (FIFO sends
	// and pops, invisible-time changes, forwards, clock moves, crashes) or
	// admin (topic and group changes, crashes, restarts, replay checks) or
	// retention (retention runs, forwards, FIFO, group changes, replay
	// checks).
	mixes := map[string]map[string]int{
		"fifo":      {"send FIFO": 3, "pop FIFO": 3, "change invisible": 2, "change invisible batch": 2, "forward": 3, "advance": 2, "crash": 2},
		"admin":     {"topic admin": 5, "group admin": 5, "reset": 4, "crash": 3, "restart": 3, "replay equivalence": 3},
		"retention": {"retention": 6, "forward": 4, "send FIFO": 2, "pop FIFO": 2, "group admin": 3, "advance": 2, "replay equivalence": 3},
	}
	if _, ok := mixes[mix]; mix != "" && !ok {
		m.t.Fatalf("RMQPROXY_TEST_ENGINE_MIX=%q: want fifo, admin or retention", mix)
	}
	total := 0
	for i := range table {
		if f := mixes[mix][table[i].name]; f > 0 {
			table[i].weight *= f
		}
		total += table[i].weight
	}
	done := map[string]int{}
	for m.op = 1; m.op <= ops; m.op++ {
		r := m.pick(total)
		for _, o := range table {
			if r < o.weight {
				o.do()
				done[o.name]++
				break
			}
			r -= o.weight
		}
	}
	m.t.Logf("operations: %v; retention deleted segments %d times, %d messages", done, m.removals, m.removedN)
	m.finish()
}

// ---- definitions

func (m *engineModel) createTopic(d mTopicDef) {
	mt := m.topics[d.name]
	q := int32(1 + m.pick(3))
	if _, err := m.h.e.CreateTopic(m.t.Context(), domain.Topic{Name: d.name, Type: d.typ, QueueCount: q}); err != nil {
		m.failf("create topic %s: %v", d.name, err)
	}
	mt.exists, mt.queues, mt.counts, mt.stored = true, q, map[int32]int64{}, map[int32][]*mMsg{}
	mt.inc++
	m.logf("create topic %s (%d queues, incarnation %d)", d.name, q, mt.inc)
}

func (m *engineModel) createGroup(name string) {
	d := m.groupDef(name)
	g := domain.NewConsumerGroup(name)
	g.MaxDeliveryAttempts = int32(1 + m.pick(4))
	g.Orderly = d.orderly
	if _, err := m.h.e.CreateGroup(m.t.Context(), g); err != nil {
		m.failf("create group %s: %v", name, err)
	}
	mg := m.groups[name]
	mg.exists, mg.max, mg.minMax, mg.dels = true, g.MaxDeliveryAttempts, g.MaxDeliveryAttempts, map[string]*mDel{}
	mg.inc++
	if lm, ok := m.lowestMax[name]; !ok || g.MaxDeliveryAttempts < lm {
		m.lowestMax[name] = g.MaxDeliveryAttempts
	}
	m.logf("create group %s (max %d, incarnation %d)", name, g.MaxDeliveryAttempts, mg.inc)
}

func (m *engineModel) opTopicAdmin() {
	d := m.topicDefs[m.pick(len(m.topicDefs))]
	mt := m.topics[d.name]
	ctx := m.t.Context()
	switch {
	case !mt.exists:
		m.createTopic(d)
	case m.pick(2) == 0:
		if err := m.h.e.DeleteTopic(ctx, d.name); err != nil {
			m.failf("delete topic %s: %v", d.name, err)
		}
		mt.exists = false
		for _, g := range m.groups {
			for id, del := range g.dels {
				if del.m.topic == d.name {
					delete(g.dels, id)
				}
			}
		}
		for k := range m.offsets {
			if k.topic == d.name {
				delete(m.offsets, k)
			}
		}
		m.logf("delete topic %s", d.name)
	default:
		q := mt.queues + int32(m.pick(2))
		if _, err := m.h.e.UpdateTopic(ctx, domain.Topic{Name: d.name, Type: d.typ, QueueCount: q}); err != nil {
			m.failf("update topic %s: %v", d.name, err)
		}
		mt.queues = q
		m.logf("update topic %s (%d queues)", d.name, q)
	}
}

func (m *engineModel) opGroupAdmin() {
	d := m.groupDefs[m.pick(len(m.groupDefs))]
	mg := m.groups[d.name]
	ctx := m.t.Context()
	switch {
	case !mg.exists:
		m.createGroup(d.name)
	case m.pick(5) < 2:
		if err := m.h.e.DeleteGroup(ctx, d.name); err != nil {
			m.failf("delete group %s: %v", d.name, err)
		}
		mg.exists, mg.dels = false, nil
		for k := range m.offsets {
			if k.group == d.name {
				delete(m.offsets, k)
			}
		}
		m.logf("delete group %s", d.name)
	default:
		g := domain.NewConsumerGroup(d.name)
		// Raised, kept or lowered (not below 1).
		g.MaxDeliveryAttempts = max(1, mg.max+int32(m.pick(5))-2)
		g.Orderly = d.orderly
		if _, err := m.h.e.UpdateGroup(ctx, g); err != nil {
			m.failf("update group %s: %v", d.name, err)
		}
		if g.MaxDeliveryAttempts < mg.max {
			m.lowered = true
		}
		mg.max = g.MaxDeliveryAttempts
		mg.minMax = min(mg.minMax, mg.max)
		m.lowestMax[d.name] = min(m.lowestMax[d.name], mg.max)
		m.logf("update group %s (max %d)", d.name, mg.max)
	}
}

// opReset resets a group's offsets on a topic (one queue or all) to the
// first message stored: the group gets every message of those queues
// again, from the first, as one it never had (a reset to a later offset
// would need the model to know where timers fired).
func (m *engineModel) opReset() {
	d := m.groupDefs[m.pick(len(m.groupDefs))]
	topics := d.topics
	if len(topics) == 0 {
		topics = []string{"n0", "n1", "f0"}
	}
	topic := topics[m.pick(len(topics))]
	mg, mt := m.groups[d.name], m.topics[topic]
	qid := m.randomQueue(topic)
	res, err := m.h.e.ResetOffset(m.t.Context(), ports.ResetOffsetRequest{Group: d.name, Topic: topic, QueueID: qid, Policy: ports.OffsetBeginning})
	m.logf("reset %s on %s#%d to the beginning: %+v %v", d.name, topic, qid, res, err)
	switch {
	case !mg.exists:
		if !domain.HasReason(err, domain.ReasonConsumerGroupNotFound) {
			m.failf("reset of a deleted group: %v", err)
		}
		return
	case !mt.exists:
		if !domain.HasReason(err, domain.ReasonTopicNotFound) {
			m.failf("reset on a deleted topic: %v", err)
		}
		return
	case err != nil:
		m.failf("reset: %v", err)
		return
	}
	if want := int(mt.queues); qid >= 0 && len(res) != 1 || qid < 0 && len(res) != want {
		m.failf("reset answered %d queues", len(res))
	}
	for _, r := range res {
		for id, del := range mg.dels {
			if del.m.topic == topic && del.m.inc == mt.inc && del.m.qid == r.QueueID {
				delete(mg.dels, id)
			}
		}
		k := consKey{d.name, topic, r.QueueID}
		if _, ok := m.offsets[k]; ok {
			m.offsets[k] = r.NewOffset
		}
	}
}

// checkDefinitions compares the engine's topics, groups and pull offsets
// with the model's.
func (m *engineModel) checkDefinitions(when string) {
	ctx := m.t.Context()
	ts, err := m.h.e.ListTopics(ctx)
	if err != nil {
		m.failf("%s: list topics: %v", when, err)
	}
	var got, want []string
	for _, t := range ts {
		if !strings.HasPrefix(t.Name, "%DLQ%") {
			got = append(got, fmt.Sprintf("%s/%s/%d/%d", t.Name, t.Type, t.QueueCount, t.Permission))
		}
	}
	for _, d := range m.topicDefs {
		if mt := m.topics[d.name]; mt.exists {
			want = append(want, fmt.Sprintf("%s/%s/%d/%d", d.name, d.typ, mt.queues, domain.PermReadWrite))
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		m.failf("%s: topics %v, model %v", when, got, want)
	}
	gs, err := m.h.e.ListGroups(ctx)
	if err != nil {
		m.failf("%s: list groups: %v", when, err)
	}
	got, want = nil, []string{"inspector/17/false"}
	for _, g := range gs {
		got = append(got, fmt.Sprintf("%s/%d/%v", g.Name, g.MaxDeliveryAttempts, g.Orderly))
	}
	for _, d := range m.groupDefs {
		if mg := m.groups[d.name]; mg.exists {
			want = append(want, fmt.Sprintf("%s/%d/%v", d.name, mg.max, d.orderly))
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		m.failf("%s: groups %v, model %v", when, got, want)
	}
	for _, d := range m.topicDefs {
		mt := m.topics[d.name]
		if !mt.exists || (d.typ != domain.MessageTypeNormal && d.typ != domain.MessageTypeFIFO) {
			continue
		}
		for qid := range mt.queues {
			k := consKey{"puller", d.name, qid}
			off, err := m.h.e.GetOffset(ctx, "puller", domain.QueueRef{Topic: d.name, BrokerName: m.h.cfg.BrokerName, QueueID: qid})
			want, ok := m.offsets[k]
			switch {
			case !m.groups["puller"].exists:
				if !domain.HasReason(err, domain.ReasonConsumerGroupNotFound) {
					m.failf("%s: offset of deleted group puller on %s#%d: %d, %v", when, d.name, qid, off, err)
				}
			case !ok:
				if !domain.HasReason(err, domain.ReasonOffsetNotFound) {
					m.failf("%s: offset of puller on %s#%d: %d, %v; model: none", when, d.name, qid, off, err)
				}
			case err != nil || off != want:
				m.failf("%s: offset of puller on %s#%d: %d, %v; model: %d", when, d.name, qid, off, err, want)
			}
		}
	}
}

// ---- sends

func (m *engineModel) newMsg(topic string) domain.Message {
	m.nextID++
	return msg(topic, fmt.Sprintf("m%d", m.nextID), []string{"A", "B", ""}[m.pick(3)])
}

// sendTo sends msgs to a random queue of topic; it returns the queue and
// the receipts, or false when the topic does not exist (as the model
// expects the send to fail).
func (m *engineModel) sendTo(topic string, msgs []domain.Message) (int32, []domain.SendReceipt, bool) {
	mt := m.topics[topic]
	qid := int32(0)
	if mt.exists {
		qid = int32(m.pick(int(mt.queues)))
	}
	rs, err := m.h.e.Send(m.t.Context(), domain.QueueRef{Topic: topic, BrokerName: m.h.cfg.BrokerName, QueueID: qid}, msgs)
	if !mt.exists {
		if !domain.HasReason(err, domain.ReasonTopicNotFound) {
			m.failf("send to deleted topic %s: %v", topic, err)
		}
		return 0, nil, false
	}
	if err != nil {
		m.failf("send %d messages to %s#%d: %v", len(msgs), topic, qid, err)
	}
	if len(rs) != len(msgs) {
		m.failf("send of %d messages: %d receipts", len(msgs), len(rs))
	}
	return qid, rs, true
}

func (m *engineModel) record(dm domain.Message, qid int32, r domain.SendReceipt, state mState) *mMsg {
	mm := &mMsg{id: dm.ID, topic: dm.Topic, inc: m.topics[dm.Topic].inc, qid: qid, off: r.QueueOffset, mgroup: dm.Group,
		tag: dm.Tag, state: state, deliverAt: dm.DeliverAt, recall: r.RecallHandle, txnID: r.TransactionID}
	m.msgs[mm.id] = mm
	m.order = append(m.order, mm)
	return mm
}

func (m *engineModel) opSendNormal() {
	topic := []string{"n0", "n1"}[m.pick(2)]
	var msgs []domain.Message
	for range 1 + m.pick(3) {
		msgs = append(msgs, m.newMsg(topic))
	}
	qid, rs, ok := m.sendTo(topic, msgs)
	if !ok {
		return
	}
	mt := m.topics[topic]
	for i, r := range rs {
		if r.QueueOffset != mt.counts[qid] {
			m.failf("send to %s#%d: offset %d, model %d", topic, qid, r.QueueOffset, mt.counts[qid])
		}
		mt.counts[qid]++
		mt.stored[qid] = append(mt.stored[qid], m.record(msgs[i], qid, r, msVisible))
	}
	m.logf("send %v to %s#%d", ids2(msgs), topic, qid)
}

func ids2(ms []domain.Message) []string {
	out := make([]string, len(ms))
	for i, x := range ms {
		out[i] = x.ID + "/" + x.Tag + x.Group
	}
	return out
}

func (m *engineModel) fifoKey(mm *mMsg) string {
	return fmt.Sprintf("%s/%d/%d/%s", mm.topic, mm.inc, mm.qid, mm.mgroup)
}

func (m *engineModel) opSendFIFO() {
	var msgs []domain.Message
	for range 1 + m.pick(4) {
		x := m.newMsg("f0")
		x.Group = []string{"A", "B", "C"}[m.pick(3)]
		msgs = append(msgs, x)
	}
	qid, rs, ok := m.sendTo("f0", msgs)
	if !ok {
		return
	}
	mt := m.topics["f0"]
	for i, r := range rs {
		if r.QueueOffset != mt.counts[qid] {
			m.failf("send to f0#%d: offset %d, model %d", qid, r.QueueOffset, mt.counts[qid])
		}
		mt.counts[qid]++
		mm := m.record(msgs[i], qid, r, msVisible)
		mt.stored[qid] = append(mt.stored[qid], mm)
		k := m.fifoKey(mm)
		m.fifoSeq[k] = append(m.fifoSeq[k], mm)
	}
	m.logf("send FIFO %v to f0#%d", ids2(msgs), qid)
}

func (m *engineModel) opSendDelay() {
	var msgs []domain.Message
	for range 1 + m.pick(2) {
		x := m.newMsg("d0")
		x.DeliverAt = m.now().Add([]time.Duration{0, 2 * time.Second, 10 * time.Second, 45 * time.Second, 3 * time.Minute, 9 * time.Minute}[m.pick(6)])
		msgs = append(msgs, x)
	}
	qid, rs, ok := m.sendTo("d0", msgs)
	if !ok {
		return
	}
	for i, r := range rs {
		st := msTimer
		if r.QueueOffset >= 0 {
			st = msVisible
		}
		m.record(msgs[i], qid, r, st)
	}
	m.logf("send delay %v to d0#%d: %+v", ids2(msgs), qid, rs)
}

func (m *engineModel) opSendTxn() {
	x := m.newMsg("x0")
	x.Transactional = true
	qid, rs, ok := m.sendTo("x0", []domain.Message{x})
	if !ok {
		return
	}
	m.record(x, qid, rs[0], msHalf)
	m.logf("send half %s to x0#%d", x.ID, qid)
}

// ---- pops

// existingGroup picks a group by predicate, or returns "" when none exists.
func (m *engineModel) pickGroup(ok func(mGroupDef) bool) string {
	var names []string
	for _, d := range m.groupDefs {
		if ok(d) {
			names = append(names, d.name)
		}
	}
	return names[m.pick(len(names))]
}

func (m *engineModel) opPop() {
	g := m.pickGroup(func(d mGroupDef) bool { return !d.orderly && len(d.topics) > 0 })
	d := m.groupDef(g)
	topic := d.topics[m.pick(len(d.topics))]
	m.pop(g, topic, m.randomQueue(topic), false, false, int32(1+m.pick(4)), []time.Duration{time.Second, 10 * time.Second, 30 * time.Second, time.Minute}[m.pick(4)])
}

// randomQueue is -1 (any queue) or one of topic's queues.
func (m *engineModel) randomQueue(topic string) int32 {
	if mt := m.topics[topic]; mt.exists && m.pick(3) == 0 {
		return int32(m.pick(int(mt.queues)))
	}
	return -1
}

func (m *engineModel) opPopFIFO() {
	g := m.pickGroup(func(d mGroupDef) bool { return d.orderly })
	m.pop(g, "f0", m.randomQueue("f0"), true, m.pick(2) == 0, int32(1+m.pick(4)), []time.Duration{time.Second, 10 * time.Second, 30 * time.Second, time.Minute}[m.pick(4)])
}

// pop pops for group from topic and checks what it got; it returns the
// messages.
func (m *engineModel) pop(group, topic string, qid int32, fifo, runs bool, n int32, inv time.Duration) []domain.StoredMessage {
	d := m.groupDef(group)
	mg := m.groups[group]
	mt := m.topics[topic]
	req := ports.PopRequest{Group: group, Topic: topic, QueueID: qid, MaxMessages: n, InvisibleTime: inv, FIFO: fifo, FIFORuns: runs}
	if d.tag != "" {
		f, err := filter.Compile(filter.Expression{Type: filter.TypeTag, Text: d.tag})
		if err != nil {
			m.t.Fatal(err)
		}
		req.Filter = f
	}
	now := m.now()
	got, err := m.h.e.Pop(m.t.Context(), req)
	switch {
	case !mt.exists:
		if !domain.HasReason(err, domain.ReasonTopicNotFound) {
			m.failf("pop of deleted topic %s: %v, %v", topic, ids(got), err)
		}
		return nil
	case !mg.exists:
		if !domain.HasReason(err, domain.ReasonConsumerGroupNotFound) {
			m.failf("pop by deleted group %s: %v, %v", group, ids(got), err)
		}
		return nil
	case err != nil:
		m.failf("pop %s %s#%d: %v", group, topic, qid, err)
	}
	m.logf("pop %s %s#%d n=%d inv=%v fifo=%v runs=%v: %v", group, topic, qid, n, inv, fifo, runs, popIDs(got))
	for i, sm := range got {
		m.checkDelivery(group, sm, got[:i], fifo, now)
	}
	runLen := map[string]int{}
	if fifo && runs {
		for _, sm := range got {
			runLen[fmt.Sprint(sm.QueueID, "/", sm.Group)]++
		}
	}
	for _, sm := range got {
		mm := m.msgs[sm.ID]
		del := mg.dels[sm.ID]
		if del == nil {
			del = &mDel{m: mm, exact: true}
			mg.dels[sm.ID] = del
			if m.everDel[group] == nil {
				m.everDel[group], m.everMax[group] = map[string]int32{}, map[string]int32{}
			}
			m.everDel[group][sm.ID]++
		}
		del.deliveries++
		m.everMax[group][sm.ID] = max(m.everMax[group][sm.ID], del.deliveries)
		if m.lastPopOp[group] == nil {
			m.lastPopOp[group] = map[string]int{}
		}
		m.lastPopOp[group][sm.ID] = m.op
		if del.exact && sm.DeliveryAttempt != del.deliveries || sm.DeliveryAttempt > del.deliveries || sm.DeliveryAttempt < 1 {
			m.failf("%s got %s as delivery attempt %d; model: delivery %d (exact %v)", group, sm.ID, sm.DeliveryAttempt, del.deliveries, del.exact)
		}
		hd, err := domain.ParseReceiptHandle(sm.ReceiptHandle)
		if err != nil {
			m.failf("handle of %s: %v", sm.ID, err)
		}
		del.inflight, del.handle, del.deadline, del.certain, del.acked = true, hd, now.Add(inv), true, false
		del.run, del.validAck, del.heldBy, del.runAttempt = 0, false, nil, sm.DeliveryAttempt
		if runLen[fmt.Sprint(sm.QueueID, "/", sm.Group)] > 1 {
			del.run = m.op
		}
	}
	return got
}

func popIDs(ms []domain.StoredMessage) []string {
	out := make([]string, len(ms))
	for i, x := range ms {
		out[i] = fmt.Sprintf("%s@%d#%d/%d", x.ID, x.DeliveryAttempt, x.QueueID, x.QueueOffset)
	}
	return out
}

// done reports whether del's message may be consumed by its group (acked,
// forwarded, or moved to the dead-letter queue after its last attempt).
func (m *engineModel) mayBeDone(mg *mGroup, del *mDel, now time.Time) bool {
	if del == nil {
		return false
	}
	if del.m.removed {
		return true
	}
	return del.acked || del.forwarded || del.maybeFwd || (del.deliveries >= mg.minMax && !del.deadline.After(now))
}

// checkDelivery checks that group may be handed sm now; before are the
// messages handed before it in the same pop.
func (m *engineModel) checkDelivery(group string, sm domain.StoredMessage, before []domain.StoredMessage, fifo bool, now time.Time) {
	d := m.groupDef(group)
	mg := m.groups[group]
	mm := m.msgs[sm.ID]
	if mm == nil {
		m.failf("%s got unknown message %s", group, sm.ID)
	}
	mt := m.topics[mm.topic]
	switch {
	case sm.Topic != mm.topic || sm.QueueID != mm.qid:
		m.failf("%s got %s from %s#%d; it was sent to %s#%d", group, sm.ID, sm.Topic, sm.QueueID, mm.topic, mm.qid)
	case mm.inc != mt.inc || !mt.exists:
		m.failf("%s got %s of topic %s incarnation %d; the topic is at %d (exists %v)", group, sm.ID, mm.topic, mm.inc, mt.inc, mt.exists)
	case d.tag != "" && mm.tag != d.tag:
		m.failf("%s (tag %s) got %s tagged %q", group, d.tag, sm.ID, mm.tag)
	case mm.state == msHalf:
		m.failf("%s got half message %s before its commit", group, sm.ID)
	case mm.state == msRolledBack:
		m.failf("%s got rolled-back message %s", group, sm.ID)
	case mm.state == msRecalled:
		m.failf("%s got recalled message %s", group, sm.ID)
	case mm.removed:
		m.failf("%s got %s, whose record retention deleted", group, sm.ID)
	case mm.state == msTimer && now.Before(mm.deliverAt.Add(-timerTick)):
		m.failf("%s got delay message %s at %v, before its time %v", group, sm.ID, now, mm.deliverAt)
	case mm.off >= 0 && sm.QueueOffset != mm.off:
		m.failf("%s got %s at offset %d; it was stored at %d", group, sm.ID, sm.QueueOffset, mm.off)
	}
	if del := mg.dels[sm.ID]; del != nil {
		switch {
		case surelyFinal(del):
			m.failf("%s got %s again after its ack", group, sm.ID)
		case del.forwarded:
			m.failf("%s got %s again after its forward to the dead-letter queue", group, sm.ID)
		case del.inflight && del.certain && del.deadline.After(now):
			m.failf("%s got %s while invisible until %v", group, sm.ID, del.deadline)
		}
	}
	if !fifo {
		return
	}
	if mm.mgroup == "" {
		m.failf("FIFO pop of %s got %s without message group", group, sm.ID)
	}
	for _, e := range m.fifoSeq[m.fifoKey(mm)] {
		if e == mm {
			break
		}
		if e.removed || m.mayBeDone(mg, mg.dels[e.id], now) || slices.ContainsFunc(before, func(b domain.StoredMessage) bool { return b.ID == e.id }) {
			continue
		}
		m.failf("%s got %s (message group %s) while %s before it is not consumed (%+v)", group, sm.ID, mm.mgroup, e.id, mg.dels[e.id])
	}
}

// ---- acks and changes

// inflight lists the held deliveries of existing groups, in a stable order.
func (m *engineModel) inflight() []struct {
	group string
	del   *mDel
} {
	var out []struct {
		group string
		del   *mDel
	}
	for _, d := range m.groupDefs {
		mg := m.groups[d.name]
		if !mg.exists {
			continue
		}
		for _, id := range slices.Sorted(maps.Keys(mg.dels)) {
			if del := mg.dels[id]; del.inflight {
				out = append(out, struct {
					group string
					del   *mDel
				}{d.name, del})
			}
		}
	}
	return out
}

func (m *engineModel) ackReq(group string, del *mDel) ports.AckRequest {
	return ports.AckRequest{Group: group, Topic: del.m.topic, MessageID: del.m.id, Handle: del.handle}
}

// handleValid reports whether the engine must take del's handle.
func (m *engineModel) handleValid(del *mDel) bool {
	return del.certain && del.deadline.After(m.now())
}

// acked applies the outcome of an ack of del.
func (m *engineModel) acked(what, group string, del *mDel, err error) {
	m.logf("%s %s %s (valid %v): %v", what, group, del.m.id, m.handleValid(del), err)
	switch {
	case err == nil:
		del.acked, del.inflight, del.validAck = true, false, del.deadline.After(m.now()) // a lost pop would have made it fail
		del.ackOp = m.op
		if del.run != 0 {
			mg := m.groups[group]
			for _, e := range m.fifoSeq[m.fifoKey(del.m)] {
				if e == del.m {
					break
				}
				if ed := mg.dels[e.id]; ed != nil && ed.run == del.run {
					del.heldBy = append(del.heldBy, ed)
				}
			}
		}
	case m.handleValid(del):
		m.failf("%s of %s by %s with a valid handle: %v", what, del.m.id, group, err)
	case domain.HasReason(err, domain.ReasonInvalidReceiptHandle):
		del.inflight = false
	default:
		m.failf("%s of %s by %s: %v", what, del.m.id, group, err)
	}
}

func (m *engineModel) opAck() {
	in := m.inflight()
	if len(in) == 0 {
		return
	}
	x := in[m.pick(len(in))]
	m.acked("ack", x.group, x.del, m.h.e.Ack(m.t.Context(), m.ackReq(x.group, x.del)))
}

// inflightBatch returns 2 to 4 in-flight deliveries picked at random, nil
// when fewer than 2 are in flight.
func (m *engineModel) inflightBatch() []struct {
	group string
	del   *mDel
} {
	in := m.inflight()
	if len(in) < 2 {
		return nil
	}
	m.rng.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
	return in[:min(len(in), 2+m.pick(3))]
}

func (m *engineModel) opAckBatch() {
	in := m.inflightBatch()
	if in == nil {
		return
	}
	var reqs []ports.AckRequest
	for _, x := range in {
		reqs = append(reqs, m.ackReq(x.group, x.del))
	}
	errs := m.h.e.AckBatch(m.t.Context(), reqs)
	for i, x := range in {
		m.acked("batch ack", x.group, x.del, errs[i])
	}
}

func (m *engineModel) opChangeInvisible() {
	in := m.inflight()
	if len(in) == 0 {
		return
	}
	x := in[m.pick(len(in))]
	inv := []time.Duration{0, 0, time.Second, 5 * time.Second, 30 * time.Second, time.Minute}[m.pick(6)]
	valid := m.handleValid(x.del)
	nh, err := m.h.e.ChangeInvisible(m.t.Context(), ports.ChangeInvisibleRequest{AckRequest: m.ackReq(x.group, x.del), InvisibleTime: inv})
	m.logf("change invisible %s %s to %v (valid %v): %v", x.group, x.del.m.id, inv, valid, err)
	m.changedInvisible(x.group, x.del, inv, nh, valid, err)
}

// changedInvisible applies to the model the answer of an invisible-time
// change of group's delivery del to inv: the new handle, or the delivery
// gone (a refused outdated handle), or a failure of the test.
func (m *engineModel) changedInvisible(group string, del *mDel, inv time.Duration, nh domain.ReceiptHandle, valid bool, err error) {
	switch {
	case err == nil:
		del.handle, del.deadline = nh, m.now().Add(inv)
	case valid:
		m.failf("change invisible of %s by %s with a valid handle: %v", del.m.id, group, err)
	case domain.HasReason(err, domain.ReasonInvalidReceiptHandle):
		del.inflight = false
	default:
		m.failf("change invisible of %s by %s: %v", del.m.id, group, err)
	}
}

func (m *engineModel) opChangeInvisibleBatch() {
	in := m.inflightBatch()
	if in == nil {
		return
	}
	var reqs []ports.ChangeInvisibleRequest
	var valid []bool
	for _, x := range in {
		inv := []time.Duration{0, time.Second, 30 * time.Second}[m.pick(3)]
		reqs = append(reqs, ports.ChangeInvisibleRequest{AckRequest: m.ackReq(x.group, x.del), InvisibleTime: inv})
		valid = append(valid, m.handleValid(x.del))
	}
	hs, errs := m.h.e.ChangeInvisibleBatch(m.t.Context(), reqs)
	for i, x := range in {
		err := errs[i]
		m.logf("batch change invisible %s %s to %v (valid %v): %v", x.group, x.del.m.id, reqs[i].InvisibleTime, valid[i], err)
		m.changedInvisible(x.group, x.del, reqs[i].InvisibleTime, hs[i], valid[i], err)
	}
}

func (m *engineModel) opForward() {
	in := m.inflight()
	if len(in) == 0 {
		return
	}
	x := in[m.pick(len(in))]
	m.forward(x.group, x.del)
}

// forward forwards group's delivery del to the dead-letter queue.
func (m *engineModel) forward(group string, del *mDel) {
	x := struct {
		group string
		del   *mDel
	}{group, del}
	valid := m.handleValid(x.del)
	err := m.h.e.ForwardToDeadLetter(m.t.Context(), m.ackReq(x.group, x.del))
	m.logf("forward %s %s (valid %v): %v", x.group, x.del.m.id, valid, err)
	if err != nil && (valid || !forwardRefused(err, ports.ForwardForgedHandle)) {
		m.failf("forward of %s by %s: %v", x.del.m.id, x.group, err)
	}
	x.del.inflight = false
	if m.everFwd[x.group] == nil {
		m.everFwd[x.group], m.fwdSure[x.group] = map[string]bool{}, map[string]bool{}
	}
	m.everFwd[x.group][x.del.m.id] = true
	if m.fwdOp[x.group] == nil {
		m.fwdOp[x.group] = map[string]int{}
	}
	m.fwdOp[x.group][x.del.m.id] = m.op
	x.del.fwdOp = m.op
	if valid {
		x.del.forwarded = true
		m.fwdSure[x.group][x.del.m.id] = true
	} else {
		x.del.maybeFwd = true
		x.del.fwdOutlived = x.del.certain
	}
}

// ---- timers and transactions

func (m *engineModel) opRecall() {
	var cands []*mMsg
	for _, mm := range m.order {
		if mm.state == msTimer && mm.recall != "" && mm.inc == m.topics[mm.topic].inc && m.topics[mm.topic].exists {
			cands = append(cands, mm)
		}
	}
	if len(cands) == 0 {
		return
	}
	mm := cands[m.pick(len(cands))]
	_, err := m.h.e.Recall(m.t.Context(), mm.topic, mm.recall)
	m.logf("recall %s (due %v): %v", mm.id, mm.deliverAt, err)
	switch {
	case err == nil:
		mm.state = msRecalled
	case mm.deliverAt.After(m.now()):
		m.failf("recall of %s before its time %v: %v", mm.id, mm.deliverAt, err)
	}
}

func (m *engineModel) halves() []*mMsg {
	var out []*mMsg
	for _, mm := range m.order {
		if mm.state == msHalf && mm.inc == m.topics[mm.topic].inc && m.topics[mm.topic].exists {
			out = append(out, mm)
		}
	}
	return out
}

// checksOf counts the check-backs handed to a producer for message id.
func (m *engineModel) checksOf(id string) int {
	m.rec.mu.Lock()
	defer m.rec.mu.Unlock()
	n := 0
	for _, c := range m.rec.checks {
		if c.Message.ID == id {
			n++
		}
	}
	return n
}

func (m *engineModel) endTxn(mm *mMsg, res ports.Resolution, fromCheck bool) {
	err := m.h.e.EndTransaction(m.t.Context(), ports.EndTransactionRequest{Topic: mm.topic, MessageID: mm.id, TransactionID: mm.txnID, Resolution: res, FromCheck: fromCheck})
	m.logf("end transaction %s %v (checks %d): %v", mm.id, res, m.checksOf(mm.id), err)
	switch {
	case err == nil && res == ports.ResolutionCommit:
		mm.state = msVisible
	case err == nil && res == ports.ResolutionRollback:
		mm.state = msRolledBack
	case err == nil:
	case domain.HasReason(err, domain.ReasonInvalidTransactionID) && m.checksOf(mm.id) >= modelCheckMax:
		mm.state = msRolledBack // discarded after its last check-back
	default:
		m.failf("end transaction %s %v: %v", mm.id, res, err)
	}
}

func (m *engineModel) opEndTxn() {
	hs := m.halves()
	if len(hs) == 0 {
		return
	}
	m.endTxn(hs[m.pick(len(hs))], []ports.Resolution{ports.ResolutionCommit, ports.ResolutionRollback, ports.ResolutionUnknown}[m.pick(3)], false)
}

func (m *engineModel) opAnswerCheck() {
	var cands []*mMsg
	for _, mm := range m.halves() {
		if m.checksOf(mm.id) > 0 {
			cands = append(cands, mm)
		}
	}
	if len(cands) == 0 {
		return
	}
	m.endTxn(cands[m.pick(len(cands))], []ports.Resolution{ports.ResolutionCommit, ports.ResolutionRollback, ports.ResolutionUnknown}[m.pick(3)], true)
}

func (m *engineModel) opAdvance() {
	d := []time.Duration{time.Second, 5 * time.Second, 20 * time.Second, 61 * time.Second, 3 * time.Minute}[m.pick(5)]
	m.h.fake().Advance(d)
	r := m.pick(8)
	m.logf("advance %v (timers %v, check-backs %v, reviver %v)", d, r&1 != 0, r&2 != 0, r&4 != 0)
	if r&1 != 0 {
		m.h.fireTimers()
	}
	if r&2 != 0 {
		m.h.checkTxns()
	}
	if r&4 != 0 {
		m.h.revive()
	}
}

// ---- pull offsets, snapshots, crashes

// pickQueueOffset picks a queue of a normal or FIFO topic and an offset
// in it up to its end; ok is false when the topic picked does not exist.
func (m *engineModel) pickQueueOffset() (topic string, mt *mTopic, qid int32, off int64, ok bool) {
	topic = []string{"n0", "n1", "f0"}[m.pick(3)]
	mt = m.topics[topic]
	if !mt.exists {
		return topic, mt, 0, 0, false
	}
	qid = int32(m.pick(int(mt.queues)))
	return topic, mt, qid, int64(m.pick(int(mt.counts[qid]) + 1)), true
}

func (m *engineModel) opPullOffset() {
	topic, _, qid, off, ok := m.pickQueueOffset()
	if !ok {
		return
	}
	err := m.h.e.UpdateOffset(m.t.Context(), "puller", domain.QueueRef{Topic: topic, BrokerName: m.h.cfg.BrokerName, QueueID: qid}, off)
	m.logf("update offset puller %s#%d to %d: %v", topic, qid, off, err)
	switch {
	case !m.groups["puller"].exists:
		if !domain.HasReason(err, domain.ReasonConsumerGroupNotFound) {
			m.failf("offset update of deleted group: %v", err)
		}
	case err != nil:
		m.failf("offset update: %v", err)
	default:
		m.offsets[consKey{"puller", topic, qid}] = off
	}
}

// opPull reads a queue of a normal or FIFO topic from a random offset and
// checks that it holds what was sent to it, in order.
func (m *engineModel) opPull() {
	topic, mt, qid, off, ok := m.pickQueueOffset()
	if !ok {
		return
	}
	r, err := m.h.e.Pull(m.t.Context(), ports.PullRequest{Group: "inspector", Queue: domain.QueueRef{Topic: topic, BrokerName: m.h.cfg.BrokerName, QueueID: qid}, Offset: off, BatchSize: 8})
	m.logf("pull %s#%d from %d: %v next %d min %d max %d %v", topic, qid, off, ids(r.Messages), r.NextOffset, r.MinOffset, r.MaxOffset, err)
	// Retention deletes a prefix of the log, so of each queue: the queue
	// starts after the removed messages.
	minOff := int64(0)
	for _, x := range mt.stored[qid] {
		if !x.removed {
			break
		}
		minOff++
	}
	switch {
	case off < minOff:
		if !domain.HasReason(err, domain.ReasonIllegalOffset) {
			m.failf("pull %s#%d from %d, before %d where retention left the queue: %v, %v", topic, qid, off, minOff, ids(r.Messages), err)
		}
		return
	case err != nil:
		m.failf("pull %s#%d from %d: %v", topic, qid, off, err)
	}
	want := mt.stored[qid][off:min(off+8, int64(len(mt.stored[qid])))]
	var wantIDs []string
	for _, x := range want {
		wantIDs = append(wantIDs, x.id)
	}
	if !slices.Equal(ids(r.Messages), wantIDs) && !(len(wantIDs) == 0 && len(r.Messages) == 0) {
		m.failf("pull %s#%d from %d: %v, model %v", topic, qid, off, ids(r.Messages), wantIDs)
	}
	if r.MaxOffset != mt.counts[qid] || r.MinOffset != minOff || r.NextOffset != off+int64(len(want)) {
		m.failf("pull %s#%d from %d: next %d min %d max %d; model holds %d", topic, qid, off, r.NextOffset, r.MinOffset, r.MaxOffset, mt.counts[qid])
	}
}

func (m *engineModel) opSnapshot() {
	err := m.h.e.Snapshot(m.t.Context())
	m.logf("snapshot: %v", err)
	if err != nil {
		m.failf("snapshot: %v", err)
	}
}

func (m *engineModel) crash(settle bool) {
	m.h.crashRestart(settle)
	if !settle {
		for _, mg := range m.groups {
			for _, del := range mg.dels {
				del.certain, del.exact = false, false
			}
		}
	}
}

func (m *engineModel) opCrash() {
	settle := m.pick(2) == 0
	m.logf("crash (settled %v)", settle)
	m.crash(settle)
	m.checkDefinitions("after a crash")
}

func (m *engineModel) opRestart() {
	m.logf("restart")
	m.h.restart()
	m.checkDefinitions("after a restart")
}

// quiesce runs what is due now, so that the engine's goroutines find
// nothing to do while the states are compared.
func (m *engineModel) quiesce() {
	m.h.fireTimers()
	m.h.checkTxns()
	m.h.revive()
	m.h.fireTimers()
}

// opRetention ages some of the commit log's closed segments past the
// retention (their file times) after zero, one or two snapshots, applies
// retention, and marks the messages whose records it deleted: a prefix of
// the log, so of each queue; delay and half messages pending pin theirs.
func (m *engineModel) opRetention() {
	ctx := m.t.Context()
	m.quiesce()
	m.h.settle(m.h.e.clog.NextOffset())
	at := map[string]int64{} // message id -> commit-log offset of its queue entry
	for _, d := range m.topicDefs {
		mt := m.topics[d.name]
		if !mt.exists {
			continue
		}
		for qid := range mt.queues {
			m.h.e.mu.Lock()
			off, _, err := m.h.e.offsetRangeLocked(d.name, qid)
			m.h.e.mu.Unlock()
			if err != nil {
				m.failf("range of %s#%d: %v", d.name, qid, err)
			}
			for {
				r, err := m.h.e.Pull(ctx, ports.PullRequest{Group: "inspector", Queue: domain.QueueRef{Topic: d.name, BrokerName: m.h.cfg.BrokerName, QueueID: qid}, Offset: off, BatchSize: 32})
				if err != nil {
					m.failf("pull %s#%d from %d: %v", d.name, qid, off, err)
				}
				for _, sm := range r.Messages {
					at[sm.ID] = sm.CommitLogOffset
				}
				if r.NextOffset <= off || r.NextOffset >= r.MaxOffset {
					break
				}
				off = r.NextOffset
			}
		}
	}
	snaps := m.pick(3)
	for range snaps {
		if err := m.h.e.Snapshot(ctx); err != nil {
			m.failf("snapshot: %v", err)
		}
	}
	dir := filepath.Join(m.h.cfg.DataDir, "commitlog")
	bases, err := commitlog.SegmentBases(dir)
	if err != nil {
		m.failf("segments: %v", err)
	}
	aged := 0
	if len(bases) > 1 {
		aged = 1 + m.pick(len(bases)-1)
	}
	old := m.now().Add(-2 * m.h.cfg.Retention)
	for _, b := range bases[:aged] {
		if err := os.Chtimes(filepath.Join(dir, fmt.Sprintf("%020d", b)), old, old); err != nil {
			m.failf("age segment %d: %v", b, err)
		}
	}
	before := m.h.e.clog.StartOffset()
	if err := m.h.e.applyRetention(); err != nil {
		m.failf("retention: %v", err)
	}
	start := m.h.e.clog.StartOffset()
	var removed []string
	if start > before {
		m.removalOp = m.op
		m.removals++
		for _, mm := range m.order {
			if o, ok := at[mm.id]; ok && o < start && !mm.removed && mm.inc == m.topics[mm.topic].inc {
				mm.removed = true
				m.removedN++
				removed = append(removed, mm.id)
			}
		}
	}
	m.logf("retention after %d snapshots, %d of %d segments aged: log start %d -> %d, removed %v", snaps, aged, len(bases), before, start, removed)
}

// forwardPastLowered brings the live engine to the end a restart reaches
// at once, the one deliberate difference between a live engine and its
// replay (docs/storage.md): after a group's maximum delivery attempts was
// lowered, a message visible again at an attempt the new maximum has
// reached is delivered once more by the live engine, and the application
// forwards that delivery to the dead-letter queue, while the reviver of
// a replayed engine moves it at once. It pops such messages and forwards
// them as the application does, until none is left; it reports false when
// some are left that a pop does not hand out (a FIFO message group's
// earlier message is in flight): the states then differ as documented.
func (m *engineModel) forwardPastLowered() bool {
	if !m.lowered {
		return true
	}
	for range 4 {
		m.quiesce()
		b := m.h.canonicalState()
		var s *snapshot
		for i := range b { // the snapshot part ends at a newline (see describeState)
			if b[i] == '\n' {
				if x, err := decodeSnapshot(b[:i]); err == nil {
					s = x
					break
				}
			}
		}
		if s == nil {
			m.failf("canonical state without a snapshot part")
		}
		var keys []consKey
		for _, st := range s.states {
			mg := m.groups[st.key.group]
			if mg == nil || !mg.exists {
				continue
			}
			for _, d := range st.deliveries {
				if d.d.visible && d.d.attempt >= mg.max {
					keys = append(keys, st.key)
					break
				}
			}
		}
		if len(keys) == 0 {
			return true
		}
		for _, k := range keys {
			d := m.groupDef(k.group)
			m.logf("%s has a message visible again at its lowered maximum %d on %s#%d", k.group, m.groups[k.group].max, k.topic, k.qid)
			for _, sm := range m.pop(k.group, k.topic, k.qid, d.orderly, false, 32, time.Minute) {
				if sm.DeliveryAttempt > m.groups[k.group].max {
					m.forward(k.group, m.groups[k.group].dels[sm.ID])
				}
			}
		}
	}
	m.logf("messages visible again at a lowered maximum are left")
	return false
}

func (m *engineModel) opEquivalence() {
	m.logf("replay equivalence")
	if !m.forwardPastLowered() {
		// Not even the replays compare: one from a snapshot taken after
		// such a message became visible again keeps it visible (as the
		// live engine), a replay from before moves it (docs/storage.md).
		m.h.crashRestart(true)
		m.checkDefinitions("after a restart")
		return
	}
	m.quiesce()
	if m.h.e.clog.StartOffset() > 0 {
		// Retention deleted the log's start, and with it the records that
		// defined the topics and groups (the snapshots hold them): a
		// replay without a snapshot cannot be compared.
		live := m.h.canonicalState()
		m.h.crashRestart(true)
		fromSnap := m.h.canonicalState()
		if !bytes.Equal(live, fromSnap) {
			m.failf("state after snapshot + replay differs from the live state (- live, + snapshot and replay):\n%s", stateDiff(live, fromSnap))
		}
		m.checkDefinitions("after replay")
		return
	}
	if msg := replayMismatch(m.h.replayStates()); msg != "" {
		m.failf("%s", msg)
	}
	m.checkDefinitions("after replays")
}

// ---- the end

func (m *engineModel) finish() {
	m.op = -1
	ctx := m.t.Context()
	m.crash(m.pick(2) == 0)
	m.checkDefinitions("at the end")
	for _, mm := range m.halves() {
		m.endTxn(mm, ports.ResolutionCommit, false)
	}
	m.h.fake().Advance(2 * time.Hour)
	m.quiesce()
	m.logf("drain")
	drained := map[string]map[string]int{}
	for _, d := range m.groupDefs {
		mg := m.groups[d.name]
		if !mg.exists {
			continue
		}
		drained[d.name] = map[string]int{}
		for _, topic := range d.topics {
			if !m.topics[topic].exists {
				continue
			}
			var got []domain.StoredMessage
			for {
				ms := m.pop(d.name, topic, -1, d.orderly, d.orderly && m.pick(2) == 0, 16, time.Hour)
				if len(ms) == 0 {
					break
				}
				var reqs []ports.AckRequest
				for _, sm := range ms {
					reqs = append(reqs, m.ackReq(d.name, mg.dels[sm.ID]))
				}
				for i, err := range m.h.e.AckBatch(ctx, reqs) {
					m.acked("drain ack", d.name, mg.dels[ms[i].ID], err)
				}
				got = append(got, ms...)
			}
			last := map[string]int64{}
			for _, sm := range got {
				drained[d.name][sm.ID]++
				mm := m.msgs[sm.ID]
				if d.orderly {
					k := m.fifoKey(mm)
					if o, ok := last[k]; ok && o >= sm.QueueOffset {
						m.failf("drain of %s: %s at offset %d after offset %d of its message group", d.name, sm.ID, sm.QueueOffset, o)
					}
					last[k] = sm.QueueOffset
				}
			}
		}
	}
	// Every group's dead-letter queue, read by a group of its own.
	dlq := map[string]map[string]int{}
	for _, d := range m.groupDefs {
		if m.groups[d.name].inc == 0 {
			continue
		}
		dlq[d.name] = map[string]int{}
		for {
			ms, err := m.h.e.Pop(ctx, ports.PopRequest{Group: "inspector", Topic: domain.DeadLetterTopic(d.name), QueueID: -1, MaxMessages: 32, InvisibleTime: time.Hour})
			if domain.HasReason(err, domain.ReasonTopicNotFound) || len(ms) == 0 {
				break
			}
			if err != nil {
				m.failf("pop of %s: %v", domain.DeadLetterTopic(d.name), err)
			}
			for _, sm := range ms {
				if sm.DeadLetter == nil {
					m.failf("dead-letter message %s without origin", sm.ID)
				}
				dlq[d.name][sm.DeadLetter.MessageID]++
				m.h.ack("inspector", sm)
			}
		}
		m.logf("dead-letter queue of %s: %v", d.name, dlq[d.name])
	}
	for g, q := range dlq {
		for id, n := range q {
			mm := m.msgs[id]
			switch {
			case mm == nil:
				m.failf("dead-letter queue of %s holds unknown message %s", g, id)
			case int32(n) > m.everDel[g][id]:
				m.failf("dead-letter queue of %s holds %s %d times; %d incarnations of the group got it", g, id, n, m.everDel[g][id])
			case !m.everFwd[g][id] && m.everMax[g][id] < m.lowestMax[g]:
				m.failf("dead-letter queue of %s holds %s, delivered at most %d times (lowest maximum %d), never forwarded", g, id, m.everMax[g][id], m.lowestMax[g])
			}
		}
		for id := range m.fwdSure[g] {
			// Unless retention deleted the message (consumed instead of
			// moved) or, maybe, its copy.
			if q[id] == 0 && m.fwdOp[g][id] >= m.removalOp && !m.msgs[id].removed {
				m.failf("%s forwarded %s to its dead-letter queue; it is not there", g, id)
			}
		}
	}
	// Every message owed to a group was drained or is in its dead-letter
	// queue, not both (unless an earlier incarnation moved it).
	for _, d := range m.groupDefs {
		mg := m.groups[d.name]
		if !mg.exists {
			continue
		}
		for _, mm := range m.order {
			mt := m.topics[mm.topic]
			if !slices.Contains(d.topics, mm.topic) || !mt.exists || mm.inc != mt.inc || (d.tag != "" && mm.tag != d.tag) {
				if drained[d.name][mm.id] > 0 {
					m.failf("%s drained %s, not its message", d.name, mm.id)
				}
				continue
			}
			del := mg.dels[mm.id]
			owed := (mm.state == msVisible || mm.state == msTimer) && !mm.removed
			// Retention after its last delivery may have deleted its
			// dead-letter copy.
			dlqGone := del != nil && m.removalOp > m.lastPopOp[d.name][mm.id]
			consumedBefore := del != nil && (del.forwarded || del.maybeFwd || (del.acked && drained[d.name][mm.id] == 0 && !mustRedeliver(mg, del)))
			switch {
			case !owed:
				if drained[d.name][mm.id] > 0 {
					m.failf("%s drained %s (state %d)", d.name, mm.id, mm.state)
				}
			case consumedBefore:
			case drained[d.name][mm.id] > 1:
				m.failf("%s drained %s %d times", d.name, mm.id, drained[d.name][mm.id])
			case drained[d.name][mm.id] == 0 && dlq[d.name][mm.id] == 0 && !dlqGone:
				m.failf("%s never got %s (%+v, delivery %+v)", d.name, mm.id, *mm, del)
			case drained[d.name][mm.id] == 1 && dlq[d.name][mm.id] > 0 && int32(dlq[d.name][mm.id]) >= m.everDel[d.name][mm.id]:
				m.failf("%s drained %s, also in its dead-letter queue %d times", d.name, mm.id, dlq[d.name][mm.id])
			}
		}
	}
	m.h.restart()
	m.checkDefinitions("after the drain")
}
