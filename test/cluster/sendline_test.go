package cluster_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestCoalescedSendsKeepEveryMessage: 32 concurrent senders send 400
// messages through rmqproxy to a one-queue topic of the real broker, each
// with its own tag, keys, user property and born time (a second apart, so
// that the broker's stored born time tells which were coalesced). On the
// broker, pulled straight: every message once, each with its own
// properties, and some sent in batches (their stored born time is their
// batch's first, not theirs). Received through rmqproxy: every message
// with its own body, tag, keys, property and born time.
func TestCoalescedSendsKeepEveryMessage(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, broker := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	const n = 400
	topic, group := testenv.Name(t, "coalesced-sends"), testenv.Name(t, "g-coalesced-sends")
	raw := p.Subscriber(t, topic, group, 1)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	born := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	ids := make([]string, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				m := testenv.RawMessage(topic, []byte("body-"+strconv.Itoa(i)), "tag-"+strconv.Itoa(i))
				m.SystemProperties.Keys = []string{"key-" + strconv.Itoa(i)}
				m.SystemProperties.BornTimestamp = timestamppb.New(born(i))
				m.UserProperties["n"] = strconv.Itoa(i)
				ids[i] = m.SystemProperties.MessageId
				resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
				if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
					t.Errorf("send %d: %v %v", i, resp, err)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	index := map[string]int{}
	for i, id := range ids {
		index[id] = i
	}
	check := func(where string, id, body, tag, keys, prop string, bornAt time.Time) int {
		t.Helper()
		i, ok := index[id]
		if !ok {
			t.Fatalf("%s: a message %s that was not sent", where, id)
		}
		s := strconv.Itoa(i)
		if body != "body-"+s || tag != "tag-"+s || keys != "key-"+s || prop != s || !bornAt.Equal(born(i)) {
			t.Fatalf("%s: message %d: body %q, tag %q, keys %q, property n %q, born %v (sent born %v)", where, i, body, tag, keys, prop, bornAt, born(i))
		}
		return i
	}

	// On the broker.
	bc := newBrokerClient(t, broker.Addr)
	seen, coalesced := map[int]bool{}, 0
	for off := int64(0); off < n; {
		resp := bc.do(remoting.RequestPullMessage, &remoting.PullMessageRequestHeader{RPC: remoting.RPC{BrokerName: broker.Name},
			ConsumerGroup: group + "-pull", Topic: topic, QueueOffset: off, MaxMsgNums: 32, SysFlag: remoting.PullSubscription,
			SuspendTimeoutMillis: 1000, Subscription: "*", SubVersion: time.Now().UnixMilli(), ExpressionType: remoting.ExpressionTag})
		msgs, err := remoting.DecodeMessages(resp.Body)
		if resp.Code != int32(remoting.ResponseSuccess) || err != nil || len(msgs) == 0 {
			t.Fatalf("pull at %d: %d %s, %v", off, resp.Code, resp.Remark, err)
		}
		for _, m := range msgs {
			pr := m.Properties
			prop, _ := strconv.ParseInt(pr.Value(remoting.PropertyBornTimestamp), 10, 64)
			i := check("pulled from the broker", m.MsgID(), string(m.Body), pr.Value(remoting.PropertyTags), pr.Value(remoting.PropertyKeys), pr.Value("n"), time.UnixMilli(prop))
			if seen[i] {
				t.Fatalf("message %d stored twice", i)
			}
			seen[i] = true
			if m.BornTimestamp != prop {
				coalesced++
			}
		}
		off += int64(len(msgs))
	}
	if coalesced == 0 {
		t.Fatal("no message was sent in a batch with others (the stored born time is each message's own)")
	}
	t.Logf("%d of %d messages were sent in batches with others", coalesced, n)

	// Through rmqproxy.
	got := raw.ReceiveN(t, group, topic, n, time.Minute, 2*time.Minute)
	delivered := map[int]bool{}
	for _, m := range got {
		sp := m.GetSystemProperties()
		keys := ""
		if len(sp.GetKeys()) == 1 {
			keys = sp.GetKeys()[0]
		}
		delivered[check("received", sp.GetMessageId(), string(m.GetBody()), sp.GetTag(), keys, m.GetUserProperties()["n"], sp.GetBornTimestamp().AsTime())] = true
	}
	if len(delivered) != n {
		t.Fatalf("%d distinct messages received, want %d", len(delivered), n)
	}
}
