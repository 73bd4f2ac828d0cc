package remoting_test

import (
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

func TestExtraInfo(t *testing.T) {
	tests := []struct {
		in   string
		want remoting.ExtraInfo
	}{
		{"100 1700000000000 60000 3 0 broker-a 2 105", remoting.ExtraInfo{CkQueueOffset: 100, PopTime: 1700000000000,
			InvisibleTime: 60000, ReviveQid: 3, RetryFlag: "0", BrokerName: "broker-a", QueueID: 2, QueueOffset: 105, CommitLogOffset: -1}},
		{"1 2 3 999 2 b 0", remoting.ExtraInfo{CkQueueOffset: 1, PopTime: 2, InvisibleTime: 3, ReviveQid: 999, RetryFlag: "2",
			BrokerName: "b", QueueOffset: -1, CommitLogOffset: -1}},
		{"1 2 3 4 1 b 0 5 6789", remoting.ExtraInfo{CkQueueOffset: 1, PopTime: 2, InvisibleTime: 3, ReviveQid: 4, RetryFlag: "1",
			BrokerName: "b", QueueOffset: 5, CommitLogOffset: 6789}},
	}
	for _, tt := range tests {
		got, err := remoting.ParseExtraInfo(tt.in)
		if err != nil || got != tt.want || got.String() != tt.in {
			t.Fatalf("%q: %+v %v (%q)", tt.in, got, err, got.String())
		}
	}
	if e := tests[1].want; !e.Orderly() || e.RealTopic("T", "G") != "%RETRY%G+T" || e.NextVisibleTime() != 5 {
		t.Fatal("helpers")
	}
	if tests[2].want.RealTopic("T", "G") != "%RETRY%G_T" || tests[0].want.RealTopic("T", "G") != "T" {
		t.Fatal("real topic")
	}
	for _, bad := range []string{"", "1 2 3 4 0 b", "1 2 3 4 0 b 0 5 6 7", "x 2 3 4 0 b 0", "1 2 3 4 9 b 0", "1 2 3 4 0  0",
		"1 2 3 4 0 b 0 -5", "1  2 3 4 0 b 0"} {
		if _, err := remoting.ParseExtraInfo(bad); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
	if remoting.RetryFlagOf("%RETRY%G+T") != "2" || remoting.RetryFlagOf("%RETRY%G_T") != "1" || remoting.RetryFlagOf("T+x") != "0" {
		t.Fatal("retry flags")
	}
	for retry, want := range map[string]string{"%RETRY%G+T": "T", "%RETRY%G_T": "T", "%RETRY%G+T_x": "T_x", "%RETRY%G_T+x": "T+x",
		"%RETRY%G": "", "%RETRY%G+": "", "%RETRY%GH+T": "", "%RETRY%H+T": "", "G+T": "", "%RETRY%G_%DLQ%x": "", "%RETRY%G+%RETRY%x": ""} {
		if got, ok := remoting.PopRetryTopicOf(retry, "G"); got != want || ok != (want != "") {
			t.Errorf("PopRetryTopicOf(%q, G) = %q %v, want %q", retry, got, ok, want)
		}
	}
	req := remoting.ChangeInvisibleTimeRequestHeader{Topic: "%RETRY%G+T", QueueID: 2, Offset: 7}
	resp := remoting.ChangeInvisibleTimeResponseHeader{PopTime: 10, InvisibleTime: 20, ReviveQid: 1}
	if got := remoting.ChangedExtraInfo(&req, &resp, "b").String(); got != "7 10 20 1 2 b 2 7" {
		t.Fatal(got)
	}
}

func TestOffsetInfos(t *testing.T) {
	s, err := remoting.ParseStartOffsetInfo("0 1 100;1 1 5")
	if err != nil || !reflect.DeepEqual(s, map[string]int64{"0@1": 100, "1@1": 5}) {
		t.Fatalf("%v %v", s, err)
	}
	m, err := remoting.ParseMsgOffsetInfo("0 1 100,101,103")
	if err != nil || !reflect.DeepEqual(m, map[string][]int64{"0@1": {100, 101, 103}}) {
		t.Fatalf("%v %v", m, err)
	}
	c, err := remoting.ParseOrderCountInfo("0 qo1%100 2;0 1 0")
	if err != nil || !reflect.DeepEqual(c, map[string]int32{"0@qo1%100": 2, "0@1": 0}) {
		t.Fatalf("%v %v", c, err)
	}
	for _, bad := range []string{"0 1", "0 1 x", "0 1 1;0 1 2", "0 1 2 3", ";"} {
		if _, err := remoting.ParseStartOffsetInfo(bad); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

func TestPopCheckpoints(t *testing.T) {
	msg := func(topic string, q int32, off int64, props ...remoting.Field) remoting.Message {
		return remoting.Message{Topic: topic, QueueID: q, QueueOffset: off, StoreHost: netip.MustParseAddrPort("1.2.3.4:5"),
			Properties: append(remoting.Properties{{"UNIQ_KEY", "u"}}, props...)}
	}
	resp := remoting.PopMessageResponseHeader{PopTime: 1000, InvisibleTime: 60000, ReviveQid: 3, RestNum: 0,
		StartOffsetInfo: "0 1 100;2 0 7", MsgOffsetInfo: "0 1 100,102;2 0 7", OrderCountInfo: "0 qo1%102 4;0 1 1;2 0 0"}
	msgs := []remoting.Message{
		msg("T", 1, 100), msg("T", 1, 102),
		msg("%RETRY%G+T", 0, 7),
		msg("%RETRY%G+T", 0, 9, remoting.Field{Key: "POP_CK", Value: "9 1 2 3 2 b 0 9"}, remoting.Field{Key: "1ST_POP_TIME", Value: "5"}),
	}
	if err := remoting.PopCheckpoints("T", &resp, "broker-a", true, msgs); err != nil {
		t.Fatal(err)
	}
	want := []string{"100 1000 60000 3 0 broker-a 1 100", "100 1000 60000 3 0 broker-a 1 102",
		"7 1000 60000 3 2 broker-a 0 7", "9 1 2 3 2 b 0 9"}
	for i, m := range msgs {
		if got := m.Properties.Value("POP_CK"); got != want[i] {
			t.Fatalf("msg %d: POP_CK %q want %q", i, got, want[i])
		}
	}
	if msgs[0].Properties.Value("1ST_POP_TIME") != "1000" || msgs[3].Properties.Value("1ST_POP_TIME") != "5" {
		t.Fatal("first pop time")
	}
	if msgs[0].ReconsumeTimes != 1 || msgs[1].ReconsumeTimes != 4 {
		t.Fatalf("order counts %d %d", msgs[0].ReconsumeTimes, msgs[1].ReconsumeTimes)
	}
	// Without offset infos (old brokers): start offset = first message of the queue.
	old := []remoting.Message{msg("T", 1, 5), msg("T", 1, 6)}
	resp2 := remoting.PopMessageResponseHeader{PopTime: 1, InvisibleTime: 2, ReviveQid: 0}
	if err := remoting.PopCheckpoints("T", &resp2, "b", false, old); err != nil {
		t.Fatal(err)
	}
	if got := old[1].Properties.Value("POP_CK"); got != "5 1 2 0 0 b 1 6" {
		t.Fatal(got)
	}
	// A message the offset infos do not cover is an error, not a wrong handle.
	bad := []remoting.Message{msg("T", 2, 1)}
	if err := remoting.PopCheckpoints("T", &resp, "b", false, bad); err == nil {
		t.Fatal("uncovered message accepted")
	}
}

// TestParseExtraInfoAllocatesNothing: a checkpoint is read in place (its
// broker name and retry flag are substrings of it), once per popped
// message.
func TestParseExtraInfoAllocatesNothing(t *testing.T) {
	s := "100 1700000000000 60000 3 0 broker-a 2 105 987654"
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := remoting.ParseExtraInfo(s); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("ParseExtraInfo allocates %.0f objects, want 0", allocs)
	}
}

// TestPopExtraInfos: the checkpoints PopExtraInfos returns are what
// PopCheckpoints writes as POP_CK (a message's own one parsed, a message
// whose own one does not parse the zero ExtraInfo), and the properties are
// left alone. For an answer of 32 messages of one queue the only
// allocations are the offset infos' parsing and the result.
func TestPopExtraInfos(t *testing.T) {
	msg := func(topic string, q int32, off int64, props ...remoting.Field) remoting.Message {
		return remoting.Message{Topic: topic, QueueID: q, QueueOffset: off,
			Properties: append(remoting.Properties{{Key: "UNIQ_KEY", Value: "u"}}, props...)}
	}
	resp := remoting.PopMessageResponseHeader{PopTime: 1000, InvisibleTime: 60000, ReviveQid: 3,
		StartOffsetInfo: "0 1 100;2 0 7", MsgOffsetInfo: "0 1 100,102,102;2 0 7", OrderCountInfo: "0 qo1%102 4;0 1 1;2 0 0"}
	msgs := func() []remoting.Message {
		return []remoting.Message{
			msg("T", 1, 100), msg("T", 1, 102), msg("T", 1, 102), // the same offset twice: the first's place
			msg("%RETRY%G+T", 0, 7),
			msg("%RETRY%G+T", 0, 9, remoting.Field{Key: "POP_CK", Value: "9 1 2 3 2 b 0 9"}),
			msg("%RETRY%G+T", 0, 8, remoting.Field{Key: "POP_CK", Value: "not a checkpoint"}),
		}
	}
	got, withProps := msgs(), msgs()
	cks, err := remoting.PopExtraInfos("T", &resp, "broker-a", true, got, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := remoting.PopCheckpoints("T", &resp, "broker-a", true, withProps); err != nil {
		t.Fatal(err)
	}
	if len(cks) != len(got) {
		t.Fatalf("%d checkpoints for %d messages", len(cks), len(got))
	}
	for i := range got {
		want, err := remoting.ParseExtraInfo(withProps[i].Properties.Value("POP_CK"))
		if err != nil {
			want = remoting.ExtraInfo{}
		}
		if cks[i] != want {
			t.Fatalf("message %d: %+v, want %+v", i, cks[i], want)
		}
		if len(got[i].Properties) != len(msgs()[i].Properties) || got[i].ReconsumeTimes != withProps[i].ReconsumeTimes {
			t.Fatalf("message %d: properties %v, reconsume times %d (%d)", i, got[i].Properties, got[i].ReconsumeTimes, withProps[i].ReconsumeTimes)
		}
	}
	if cks[1].QueueOffset != 102 || cks[2].QueueOffset != 102 || got[1].ReconsumeTimes != 4 || cks[5].BrokerName != "" {
		t.Fatalf("%+v", cks)
	}

	offs := make([]string, 32)
	many := make([]remoting.Message, 32)
	for i := range many {
		offs[i] = strconv.Itoa(100 + i)
		many[i] = msg("T", 1, int64(100+i))
	}
	resp = remoting.PopMessageResponseHeader{PopTime: 1000, InvisibleTime: 60000, ReviveQid: 3,
		StartOffsetInfo: "0 1 100", MsgOffsetInfo: "0 1 " + strings.Join(offs, ",")}
	dst := make([]remoting.ExtraInfo, 0, 32)
	n := testing.AllocsPerRun(20, func() {
		if _, err := remoting.PopExtraInfos("T", &resp, "broker-a", false, many, dst); err != nil {
			t.Fatal(err)
		}
	})
	if n > 7 {
		t.Errorf("%v allocations for 32 messages, want at most 7 (the offset infos' parsing)", n)
	}
}
