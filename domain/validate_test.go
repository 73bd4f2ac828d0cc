package domain_test

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

func TestNames(t *testing.T) {
	cases := []struct {
		name  string
		topic domain.Reason // 0 (internal) means valid
		group domain.Reason
	}{
		{"orders", 0, 0},
		{"%RETRY%g", 0, 0},
		{"a|b-c_d", 0, 0},
		{"", domain.ReasonIllegalTopic, domain.ReasonIllegalConsumerGroup},
		{"   ", domain.ReasonIllegalTopic, domain.ReasonIllegalConsumerGroup},
		{"has space", domain.ReasonIllegalTopic, domain.ReasonIllegalConsumerGroup},
		{"ünïcode", domain.ReasonIllegalTopic, domain.ReasonIllegalConsumerGroup},
		{strings.Repeat("a", 121), 0, domain.ReasonIllegalConsumerGroup},
		{strings.Repeat("a", 128), domain.ReasonIllegalTopic, domain.ReasonIllegalConsumerGroup},
		{"TBW102", domain.ReasonIllegalTopic, 0},
		{"RMQ_SYS_ROCKSDB_TRANS_HALF_TOPIC", domain.ReasonIllegalTopic, 0},
		{"rmq_sys_anything", domain.ReasonIllegalTopic, 0},
		{"CID_RMQ_SYS_X", 0, domain.ReasonIllegalConsumerGroup},
	}
	check := func(kind, name string, err error, want domain.Reason) {
		t.Helper()
		if want == 0 && err != nil {
			t.Errorf("%s %q: unexpected %v", kind, name, err)
		}
		if want != 0 && !domain.HasReason(err, want) {
			t.Errorf("%s %q: got %v, want %v", kind, name, err, want)
		}
	}
	for _, c := range cases {
		check("topic", c.name, domain.ValidateTopicName(c.name), c.topic)
		check("group", c.name, domain.ValidateGroupName(c.name), c.group)
	}
}

func TestValidateMessage(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	base := func() domain.Message {
		return domain.Message{Topic: "t", Body: []byte("x"), ID: "01ABC", Tag: "tag", Keys: []string{"k"}, Properties: map[string]string{"p": "v"}}
	}
	l := domain.DefaultLimits()
	cases := []struct {
		name   string
		mutate func(*domain.Message)
		want   domain.Reason
	}{
		{"valid", func(*domain.Message) {}, 0},
		{"empty body", func(m *domain.Message) { m.Body = nil }, domain.ReasonBodyEmpty},
		{"body over 4MiB", func(m *domain.Message) { m.Body = make([]byte, 4<<20+1) }, domain.ReasonBodyTooLarge},
		{"body exactly 4MiB", func(m *domain.Message) { m.Body = make([]byte, 4<<20) }, 0},
		{"129 properties", func(m *domain.Message) {
			for i := range 129 {
				m.Properties[strings.Repeat("k", i+1)] = "v"
			}
		}, domain.ReasonPropertiesTooLarge},
		{"reserved key", func(m *domain.Message) { m.Properties["UNIQ_KEY"] = "x" }, domain.ReasonIllegalPropertyKey},
		{"control char value", func(m *domain.Message) { m.Properties["p"] = "a\x01" }, domain.ReasonIllegalPropertyKey},
		{"tag with bar", func(m *domain.Message) { m.Tag = "a|b" }, domain.ReasonIllegalMessageTag},
		{"blank tag", func(m *domain.Message) { m.Tag = "  " }, domain.ReasonIllegalMessageTag},
		{"blank key", func(m *domain.Message) { m.Keys = []string{" "} }, domain.ReasonIllegalMessageKey},
		{"oversized key", func(m *domain.Message) { m.Keys = []string{strings.Repeat("k", 16<<10)} }, domain.ReasonPropertiesTooLarge},
		{"blank id", func(m *domain.Message) { m.ID = " " }, domain.ReasonIllegalMessageID},
		{"empty property key", func(m *domain.Message) { m.Properties[""] = "v" }, domain.ReasonIllegalPropertyKey},
		{"proxy-written key", func(m *domain.Message) { m.Properties["__SHARDINGKEY"] = "g" }, domain.ReasonIllegalPropertyKey},
		{"transient key", func(m *domain.Message) { m.Properties["__RMQ.TRANSIENT.X"] = "1" }, domain.ReasonIllegalPropertyKey},
		{"id with property separator", func(m *domain.Message) { m.ID = "01AB\x02C" }, domain.ReasonIllegalMessageID},
		{"trace context with control char", func(m *domain.Message) { m.TraceContext = "00-ab\x01" }, domain.ReasonBadRequest},
		{"born host with control char", func(m *domain.Message) { m.BornHost = "h\x02" }, domain.ReasonBadRequest},
		{"unicode everywhere ok", func(m *domain.Message) {
			m.ID, m.TraceContext, m.BornHost, m.Tag, m.Keys = "ïd", "tràce", "hôst", "tâg", []string{"kéy"}
			m.Properties["ключ"] = "значение"
		}, 0},
		{"delay too far", func(m *domain.Message) { m.DeliverAt = now.Add(25 * time.Hour) }, domain.ReasonIllegalDeliveryTime},
		{"delay in past ok", func(m *domain.Message) { m.DeliverAt = now.Add(-time.Hour) }, 0},
		{"delay before 1970", func(m *domain.Message) { m.DeliverAt = time.Unix(-1, 0) }, domain.ReasonIllegalDeliveryTime},
		{"delay unrepresentable", func(m *domain.Message) { m.DeliverAt = domain.UnrepresentableTime }, domain.ReasonIllegalDeliveryTime},
		{"delay at the epoch ok", func(m *domain.Message) { m.DeliverAt = time.Unix(0, 0) }, 0},
		{"born 1878", func(m *domain.Message) { m.BornAt = time.Date(1878, 1, 1, 0, 0, 0, 0, time.UTC) }, domain.ReasonBadRequest},
		{"born unrepresentable", func(m *domain.Message) { m.BornAt = domain.UnrepresentableTime }, domain.ReasonBadRequest},
		{"born after 9999", func(m *domain.Message) { m.BornAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, domain.ReasonBadRequest},
		{"born at the epoch ok", func(m *domain.Message) { m.BornAt = time.Unix(0, 0) }, 0},
		{"negative delivery attempt", func(m *domain.Message) { m.ReconsumeTimes = -5 }, domain.ReasonBadRequest},
		{"delivery attempt ok", func(m *domain.Message) { m.ReconsumeTimes = 3 }, 0},
		{"tx recovery too long", func(m *domain.Message) { m.Transactional = true; m.TransactionRecovery = 2 * time.Hour }, domain.ReasonBadRequest},
		{"group of 64 bytes", func(m *domain.Message) { m.Group = strings.Repeat("g", 64) }, domain.ReasonIllegalMessageGroup},
		{"group of 63 bytes", func(m *domain.Message) { m.Group = strings.Repeat("g", 63) }, 0},
		{"blank group", func(m *domain.Message) { m.Group = " " }, domain.ReasonIllegalMessageGroup},
		// A RocketMQ broker stores at most 32767 bytes of properties and
		// adds its own (1 KiB reserved); the message id, trace context and
		// born host count too.
		{"properties of exactly 31743 bytes", func(m *domain.Message) { fillProperties(m, &m.ID, 31743) }, 0},
		{"properties of 31744 bytes", func(m *domain.Message) { fillProperties(m, &m.ID, 31744) }, domain.ReasonPropertiesTooLarge},
		// What a single send to a broker refused (it adds CLUSTER), and a
		// batch send stored but a redelivery could not store again.
		{"properties of exactly 32767 bytes", func(m *domain.Message) { fillProperties(m, &m.TraceContext, 32767) }, domain.ReasonPropertiesTooLarge},
		// A broker copies a half message's id into __transactionId__.
		{"transactional, properties at the limit", func(m *domain.Message) {
			m.Transactional = true
			fillProperties(m, &m.TraceContext, 31743-len("__transactionId__")-len(m.ID)-2)
		}, 0},
		{"transactional, one byte over", func(m *domain.Message) {
			m.Transactional = true
			fillProperties(m, &m.TraceContext, 31743-len("__transactionId__")-len(m.ID)-1)
		}, domain.ReasonPropertiesTooLarge},
		{"trace context past the broker's limit", func(m *domain.Message) { fillProperties(m, &m.TraceContext, 32768) }, domain.ReasonPropertiesTooLarge},
		{"born host past the broker's limit", func(m *domain.Message) { fillProperties(m, &m.BornHost, 32768) }, domain.ReasonPropertiesTooLarge},
		{"unicode past the broker's limit", func(m *domain.Message) { m.ID = strings.Repeat("é", 16384) }, domain.ReasonPropertiesTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := base()
			c.mutate(&m)
			err := l.ValidateMessage(&m, now)
			if c.want == 0 {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			if !domain.HasReason(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// fillProperties makes m's stored properties total bytes long by setting
// *field, one of m's string fields, to a run of x's.
func fillProperties(m *domain.Message, field *string, total int) {
	*field = "x"
	*field = strings.Repeat("x", total-m.StoredPropertiesLen()+1)
	if n := m.StoredPropertiesLen(); n != total {
		panic(n)
	}
}

func TestStoredProperties(t *testing.T) {
	m := domain.Message{Topic: "ns%t", ID: "id", Tag: "tag", Keys: []string{"a b", "", "c"}, Transactional: true,
		TransactionRecovery: 90 * time.Second, DeliverAt: time.UnixMilli(1700000000123), ReconsumeTimes: 2, Group: "g",
		TraceContext: "tc", BornHost: "h", BornAt: time.UnixMilli(1700000000000),
		Properties: map[string]string{"b": "2", "a": "1", "empty": ""}}
	var got []string
	for k, v := range m.StoredProperties() {
		got = append(got, k+"="+v)
	}
	want := []string{"UNIQ_KEY=id", "TAGS=tag", "KEYS=a b c", "TRAN_MSG=true", "CHECK_IMMUNITY_TIME_IN_SECONDS=90",
		"TIMER_DELIVER_MS=1700000000123", "RECONSUME_TIME=2", "PGROUP=ns%t", "__SHARDINGKEY=g", "TRACE_CONTEXT=tc",
		"__BORNHOST=h", "BORN_TIMESTAMP=1700000000000", "a=1", "b=2"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	n := 0
	for _, kv := range want {
		n += len(kv) + 1 // '=' stands for \x01; one more for \x02
	}
	if m.StoredPropertiesLen() != n {
		t.Fatalf("length %d, want %d", m.StoredPropertiesLen(), n)
	}
	// Stopping early stops.
	for range m.StoredProperties() {
		break
	}
}

func TestMessageTypeDerivationAndCheck(t *testing.T) {
	m := domain.Message{Group: "g"}
	if m.Type() != domain.MessageTypeFIFO {
		t.Fatal("group makes FIFO")
	}
	m.DeliverAt = time.Now()
	if m.Type() != domain.MessageTypeDelay {
		t.Fatal("delivery time wins over group")
	}
	m.Transactional = true
	if m.Type() != domain.MessageTypeTransaction {
		t.Fatal("transaction wins")
	}
	if err := domain.CheckMessageType("t", domain.MessageTypeMixed, &m); err != nil {
		t.Fatal(err)
	}
	n := domain.Message{}
	if err := domain.CheckMessageType("t", domain.MessageTypeFIFO, &n); !domain.HasReason(err, domain.ReasonMessageTypeConflict) {
		t.Fatal(err)
	}
}

func TestNamespace(t *testing.T) {
	for _, c := range []struct{ ns, name, want string }{
		{"", "t", "t"},
		{"ns", "t", "ns%t"},
		{"ns", "ns%t", "ns%t"},
		{"ns", "%RETRY%g", "%RETRY%ns%g"},
		{"ns", "%DLQ%g", "%DLQ%ns%g"},
		{"ns", "%RETRY%ns%g", "%RETRY%ns%g"},
		{"ns", "%RETRY%%DLQ%g", "%RETRY%ns%%DLQ%g"},
		{"ns", "%DLQ%%RETRY%other%g", "%DLQ%ns%%RETRY%other%g"},
		{"ns", "other%t", "ns%other%t"},
	} {
		if got := domain.WrapNamespace(c.ns, c.name); got != c.want {
			t.Errorf("wrap(%q,%q)=%q want %q", c.ns, c.name, got, c.want)
		}
	}
	if ns, bare := domain.SplitNamespace("ns%t"); ns != "ns" || bare != "t" {
		t.Errorf("split: %q %q", ns, bare)
	}
	if ns, bare := domain.SplitNamespace("%DLQ%ns%g"); ns != "ns" || bare != "%DLQ%g" {
		t.Errorf("split dlq: %q %q", ns, bare)
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	p := domain.RetryPolicy{Initial: time.Second, Max: 10 * time.Second, Multiplier: 2}
	for attempt, want := range map[int32]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 9: 10 * time.Second} {
		if got := p.Delay(attempt); got != want {
			t.Errorf("exponential attempt %d: %v want %v", attempt, got, want)
		}
	}
	c := domain.RetryPolicy{Delays: domain.DefaultRetryDelays()}
	if c.Delay(1) != time.Second || c.Delay(18) != 2*time.Hour || c.Delay(99) != 2*time.Hour {
		t.Error("customized delays")
	}
}

func TestRetryPolicyCapped(t *testing.T) {
	p := domain.RetryPolicy{Delays: domain.DefaultRetryDelays()}
	c := p.Capped(time.Minute)
	if c.Delay(1) != time.Second || c.Delay(4) != 30*time.Second || c.Delay(6) != time.Minute || c.Delay(99) != time.Minute {
		t.Errorf("customized delays capped at a minute: %v", c.Delays)
	}
	if p.Delay(99) != 2*time.Hour {
		t.Errorf("capping changed the policy it was given: %v", p.Delays)
	}
	e := domain.RetryPolicy{Initial: 2 * time.Minute, Max: time.Hour, Multiplier: 2}.Capped(time.Minute)
	if e.Initial != time.Minute || e.Max != time.Minute || e.Multiplier != 2 || e.Delay(3) != time.Minute {
		t.Errorf("exponential capped at a minute: %+v", e)
	}
	if u := (domain.RetryPolicy{Delays: []time.Duration{time.Hour}}).Capped(0); u.Delay(1) != time.Hour {
		t.Errorf("no cap: %v", u.Delays)
	}
}

// TestRetryMultiplierMustBeFinite: a group whose multiplier is NaN or
// infinite is refused: the local broker's group record refuses it on
// replay, which would stop every later start.
func TestRetryMultiplierMustBeFinite(t *testing.T) {
	for _, m := range []float64{math.NaN(), math.Inf(1), 0.5} {
		g := domain.NewConsumerGroup("g")
		g.RetryPolicy = domain.RetryPolicy{Initial: time.Second, Max: time.Minute, Multiplier: m}
		if err := g.Validate(); !domain.HasReason(err, domain.ReasonBadRequest) {
			t.Errorf("multiplier %v: %v, want BAD_REQUEST", m, err)
		}
	}
	g := domain.NewConsumerGroup("g")
	g.RetryPolicy = domain.RetryPolicy{Initial: time.Second, Max: time.Minute, Multiplier: 1.5}
	if err := g.Validate(); err != nil {
		t.Errorf("multiplier 1.5: %v", err)
	}
}

// TestReservedPropertyKeysAreTheBrokers: every name in RocketMQ 5.5.0's
// MessageConst.STRING_HASH_SET (read from rocketmq-common-5.5.0.jar) is
// refused as a user property, as the Apache proxy refuses it. A name the
// set lacks here reached the brokers in cluster mode, which act on it
// (TIMER_DELAY_MS delayed a NORMAL message) or hide it from consumers.
func TestReservedPropertyKeysAreTheBrokers(t *testing.T) {
	upstream := []string{"TRACE_ON", "MSG_REGION", "KEYS", "TAGS", "WAIT", "DELAY", "RETRY_TOPIC",
		"ORIGIN_GROUP", "REAL_TOPIC", "REAL_QID", "TRAN_MSG", "PGROUP", "MIN_OFFSET", "MAX_OFFSET",
		"BUYER_ID", "ORIGIN_MESSAGE_ID", "TRANSFER_FLAG", "CORRECTION_FLAG", "MQ2_FLAG",
		"RECONSUME_TIME", "UNIQ_KEY", "MAX_RECONSUME_TIMES", "CONSUME_START_TIME", "POP_CK",
		"POP_CK_OFFSET", "1ST_POP_TIME", "TRAN_PREPARED_QUEUE_OFFSET", "DUP_INFO",
		"EXTEND_UNIQ_INFO", "INSTANCE_ID", "CORRELATION_ID", "REPLY_TO_CLIENT", "TTL",
		"ARRIVE_TIME", "PUSH_REPLY_TIME", "CLUSTER", "MSG_TYPE", "INNER_MULTI_QUEUE_OFFSET",
		"TIMER_DELAY_MS", "TIMER_DELAY_SEC", "TIMER_DELIVER_MS", "TIMER_ENQUEUE_MS",
		"TIMER_DEQUEUE_MS", "TIMER_ROLL_TIMES", "TIMER_OUT_MS", "TIMER_DEL_UNIQKEY",
		"TIMER_DELAY_LEVEL", "__BORNHOST", "BORN_TIMESTAMP", "DLQ_ORIGIN_TOPIC",
		"DLQ_ORIGIN_MESSAGE_ID", "__CRC32#", "_SYS_MSG_PRIORITY_", "__LITE_TOPIC"}
	l := domain.DefaultLimits()
	for _, k := range upstream {
		m := domain.Message{Topic: "t", Body: []byte("x"), ID: "01ABC", Properties: map[string]string{k: "1"}}
		err := l.ValidateMessage(&m, time.Now())
		if !domain.HasReason(err, domain.ReasonIllegalPropertyKey) || err.(*domain.Error).Msg != "property is used by system: "+k {
			t.Errorf("user property %s: got %v, want ILLEGAL_MESSAGE_PROPERTY_KEY", k, err)
		}
	}
}

func TestTransactionalMessageWithDeliveryTimeIsRefused(t *testing.T) {
	l := domain.DefaultLimits()
	now := time.Now()
	m := domain.Message{Topic: "t", ID: "id", Body: []byte("b"), Transactional: true, DeliverAt: now.Add(time.Minute)}
	if err := l.ValidateMessage(&m, now); !domain.HasReason(err, domain.ReasonMessageTypeConflict) {
		t.Fatalf("transactional with delivery time: %v, want MESSAGE_PROPERTY_CONFLICT_WITH_TYPE", err)
	}
	m.DeliverAt = time.Time{}
	if err := l.ValidateMessage(&m, now); err != nil {
		t.Fatalf("transactional: %v", err)
	}
}

func TestUnservedKindsAreRefused(t *testing.T) {
	p := int32(1)
	for name, c := range map[string]struct {
		m    domain.Message
		want bool
	}{
		"normal":             {domain.Message{}, false},
		"fifo":               {domain.Message{Group: "g"}, false},
		"priority":           {domain.Message{Priority: &p}, true},
		"priority zero":      {domain.Message{Priority: new(int32)}, true},
		"lite":               {domain.Message{LiteTopic: "l"}, true},
		"fifo with priority": {domain.Message{Group: "g", Priority: &p}, true},
	} {
		err := domain.CheckUnservedKind("t", domain.MessageTypeMixed, &c.m)
		if got := domain.HasReason(err, domain.ReasonMessageTypeConflict); got != c.want {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSplitKeys(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"a", "b"}, []string{"a", "b"}},
		{[]string{"a b", "", " c ", "d\u00a0e"}, []string{"a", "b", "c", "d\u00a0e"}},
		{[]string{""}, []string{}},
	} {
		if got := domain.SplitKeys(c.in); !slices.Equal(got, c.want) {
			t.Errorf("SplitKeys(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzSplitKeys: the keys local mode stores are the keys cluster mode
// reads back from the KEYS property (joined with the separator, split
// again), and splitting twice changes nothing.
func FuzzSplitKeys(f *testing.F) {
	for _, s := range []string{"a", "a b", " ", "a\u00a0b", "a  b ", "\x00 \x01"} {
		f.Add(s, "k")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		keys := domain.SplitKeys([]string{a, b})
		if again := domain.SplitKeys(keys); !slices.Equal(again, keys) {
			t.Fatalf("%q then %q", keys, again)
		}
		if stored := domain.SplitKeys([]string{strings.Join(keys, domain.KeySeparator)}); !slices.Equal(stored, keys) && len(stored)+len(keys) > 0 {
			t.Fatalf("local %q, cluster %q", keys, stored)
		}
	})
}

// FuzzWrapNamespaceStaysInItsNamespace: whatever name a client in a
// namespace sends (a name may hold '%'), the qualified name belongs to
// that namespace, so '%' in a name never reaches another namespace.
func FuzzWrapNamespaceStaysInItsNamespace(f *testing.F) {
	for _, s := range [][2]string{{"a", "T"}, {"a", "b%T"}, {"a", "%RETRY%%DLQ%b%T"}, {"a", "%DLQ%%RETRY%b%T"},
		{"a", "a%T"}, {"a", "%a%T"}, {"a", "%RETRY%"}, {"a", "|%|"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, ns, name string) {
		if ns == "" || strings.ContainsRune(ns, '%') || domain.ValidateGroupName(ns) != nil || domain.ValidateTopicName(name) != nil {
			return
		}
		q := domain.WrapNamespace(ns, name)
		if got, _ := domain.SplitNamespace(q); got != ns {
			t.Fatalf("namespace %q, name %q: %q is in namespace %q", ns, name, q, got)
		}
	})
}

// StoredPropertiesLen is the sum over StoredProperties, computed without
// allocating (every send is checked with it).
func FuzzStoredPropertiesLen(f *testing.F) {
	f.Add("id", "tag", "a b", "  c  d ", true, int64(90), int64(1700000000123), int32(-1), "g", "tc", "h", int64(-5), "k", "v", "e")
	f.Add("", "", "", "", false, int64(0), int64(0), int32(0), "", "", "", int64(0), "", "", "")
	f.Fuzz(func(t *testing.T, id, tag, k1, k2 string, txn bool, recoverySec, deliverMs int64, reconsume int32, group, trace, host string, bornMs int64, pk, pv, pe string) {
		m := domain.Message{Topic: "t", ID: id, Tag: tag, Keys: []string{k1, k2}, Transactional: txn,
			TransactionRecovery: time.Duration(recoverySec) * time.Second, ReconsumeTimes: reconsume, Group: group,
			TraceContext: trace, BornHost: host, Properties: map[string]string{pk: pv, pe: ""}}
		if deliverMs != 0 {
			m.DeliverAt = time.UnixMilli(deliverMs)
		}
		if bornMs != 0 {
			m.BornAt = time.UnixMilli(bornMs)
		}
		want := 0
		for k, v := range m.StoredProperties() {
			want += len(k) + len(v) + 2
		}
		if got := m.StoredPropertiesLen(); got != want {
			t.Fatalf("StoredPropertiesLen %d, the properties take %d", got, want)
		}
	})
}

func TestStoredPropertiesLenDoesNotAllocate(t *testing.T) {
	m := domain.Message{Topic: "t", ID: "0100000000000000000000000000000001", Tag: "tag", Keys: []string{"a b", "c"},
		BornHost: "10.0.0.1", BornAt: time.UnixMilli(1700000000000), Properties: map[string]string{"a": "1", "b": "2"}}
	if n := testing.AllocsPerRun(100, func() { _ = m.StoredPropertiesLen() }); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}

// TestBlankIsJavasWhiteSpace: a tag, key, message group or message id is
// blank as the Apache proxy's StringUtils.isBlank decides, by Java's
// Character.isWhitespace: the no-break spaces (U+00A0, U+2007, U+202F)
// are text, so a tag of one is stored as upstream stores it, not refused.
func TestBlankIsJavasWhiteSpace(t *testing.T) {
	for _, s := range []string{"\u00a0", "\u2007", "\u202f", " \u00a0 "} {
		if domain.IsBlank(s) {
			t.Errorf("domain.IsBlank(%q) = true; Java's isWhitespace does not count no-break spaces", s)
		}
		m := domain.Message{Topic: "T", Body: []byte("b"), ID: "id", Tag: s, Keys: []string{s}}
		if err := domain.DefaultLimits().ValidateMessage(&m, time.Now()); err != nil {
			t.Errorf("tag and key %q: %v", s, err)
		}
		m = domain.Message{Topic: "T", Body: []byte("b"), ID: "id", Group: s}
		if err := domain.DefaultLimits().ValidateMessage(&m, time.Now()); err != nil {
			t.Errorf("message group %q: %v", s, err)
		}
	}
	for _, s := range []string{"", " ", "\t\n\v\f\r", "\u2003", "\u3000", "\u2028", "\u2029", "\x1c\x1f"} {
		if !domain.IsBlank(s) {
			t.Errorf("domain.IsBlank(%q) = false, want true", s)
		}
	}
	// U+0085 is a control character to Java, not white space: refused
	// as such, with upstream's message.
	m := domain.Message{Topic: "T", Body: []byte("b"), ID: "id", Tag: "\u0085"}
	if err := domain.DefaultLimits().ValidateMessage(&m, time.Now()); err == nil || !strings.Contains(err.Error(), "control character") {
		t.Errorf("tag U+0085: %v, want the control character refusal", err)
	}
}
