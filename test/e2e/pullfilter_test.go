package e2e_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestPullFiltersAndLongPolls reads a queue by offset with SQL92 and
// tag-list filters, finds the offset of a time before every message, and
// pulls at the end of the queue while a message comes, in both modes: the
// filters return exactly the matching messages and next_offset passes the
// ones they skipped; the long-polling pull gets the message that came.
func TestPullFiltersAndLongPolls(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "pull-filter"), testenv.Name(t, "g-pull-filter")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	raw := testenv.NewRawClient(t, p)
	send := func(i int) {
		m := testenv.RawMessage(topic, []byte(fmt.Sprintf("m%d", i)), []string{"a", "b", "c"}[i%3])
		m.UserProperties = map[string]string{"n": fmt.Sprint(i)}
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Error(resp, err)
		}
	}
	for i := range 12 {
		send(i)
	}
	route, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic}})
	if err != nil || len(route.GetMessageQueues()) == 0 {
		t.Fatalf("route: %v %v", route, err)
	}
	mq := &v2.MessageQueue{Topic: &v2.Resource{Name: topic}, Id: 0, Broker: &v2.Broker{Name: route.GetMessageQueues()[0].GetBroker().GetName()}}
	query := func(policy v2.QueryOffsetPolicy, at time.Time) (int64, error) {
		req := &v2.QueryOffsetRequest{MessageQueue: mq, QueryOffsetPolicy: policy}
		if !at.IsZero() {
			req.Timestamp = timestamppb.New(at)
		}
		resp, err := raw.QueryOffset(raw.Ctx(t), req)
		if err == nil && resp.GetStatus().GetCode() != v2.Code_OK {
			err = fmt.Errorf("%v", resp.GetStatus())
		}
		return resp.GetOffset(), err
	}
	// A RocketMQ broker indexes a message after it answers the send.
	testenv.WaitFor(t, 30*time.Second, func() error {
		if off, err := query(v2.QueryOffsetPolicy_END, time.Time{}); off != 12 || err != nil {
			return fmt.Errorf("end: %d %v", off, err)
		}
		return nil
	})
	if off, err := query(v2.QueryOffsetPolicy_TIMESTAMP, time.Unix(1, 0)); off != 0 || err != nil {
		t.Errorf("offset of 1970, before every message: %d %v, want 0", off, err)
	}
	pull := func(offset int64, typ v2.FilterType, expr string, poll time.Duration) (*v2.Status, []int64, int64) {
		stream, err := raw.PullMessage(raw.Ctx(t), &v2.PullMessageRequest{Group: &v2.Resource{Name: group}, MessageQueue: mq, Offset: offset, BatchSize: 32,
			FilterExpression: &v2.FilterExpression{Type: typ, Expression: expr}, LongPollingTimeout: durationpb.New(poll)})
		if err != nil {
			t.Fatal(err)
		}
		st, msgs, next := testenv.ReadPull(stream)
		var offs []int64
		for _, m := range msgs {
			offs = append(offs, m.GetSystemProperties().GetQueueOffset())
		}
		return st, offs, next
	}
	if st, offs, next := pull(0, v2.FilterType_SQL, "n >= 7 AND n <> 9", 0); st.GetCode() != v2.Code_OK || !slices.Equal(offs, []int64{7, 8, 10, 11}) || next != 12 {
		t.Errorf("SQL92 pull: %v, offsets %v, next %d; want 7 8 10 11, next 12", st, offs, next)
	}
	if st, offs, next := pull(2, v2.FilterType_TAG, "a || c", 0); st.GetCode() != v2.Code_OK || !slices.Equal(offs, []int64{2, 3, 5, 6, 8, 9, 11}) || next != 12 {
		t.Errorf("tag list pull: %v, offsets %v, next %d; want 2 3 5 6 8 9 11, next 12", st, offs, next)
	}
	if st, offs, next := pull(0, v2.FilterType_TAG, "none", 0); st.GetCode() != v2.Code_MESSAGE_NOT_FOUND || len(offs) != 0 || next != 12 {
		t.Errorf("pull matching nothing: %v, offsets %v, next %d; want MESSAGE_NOT_FOUND, next 12", st, offs, next)
	}
	// A pull at the end waits for the message sent meanwhile (or finds it,
	// when the send came first).
	type pulled struct {
		st   *v2.Status
		offs []int64
		next int64
	}
	done := make(chan pulled, 1)
	go func() {
		st, offs, next := pull(12, v2.FilterType_TAG, "*", 20*time.Second)
		done <- pulled{st, offs, next}
	}()
	send(12)
	if r := <-done; r.st.GetCode() != v2.Code_OK || !slices.Equal(r.offs, []int64{12}) || r.next != 13 {
		t.Errorf("long-polling pull at the end: %v, offsets %v, next %d; want the message sent meanwhile", r.st, r.offs, r.next)
	}
}
