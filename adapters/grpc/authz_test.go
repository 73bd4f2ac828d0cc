package grpc

import (
	"slices"
	"strings"
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/ports"
)

// TestRetryAndDeadLetterTopicAccess: a retry topic needs its group's Sub
// and the topic itself (a pop retry topic %RETRY%G_T holds topic T's
// messages, so the group "G_T" alone must not open it); a dead-letter
// topic is read as its group, but a send to it needs Pub on it too.
func TestRetryAndDeadLetterTopicAccess(t *testing.T) {
	res := func(n string) *v2.Resource { return &v2.Resource{Name: n} }
	send := func(topic string) any {
		return &v2.SendMessageRequest{Messages: []*v2.Message{{Topic: res(topic)}}}
	}
	receive := func(group, topic string) any {
		return &v2.ReceiveMessageRequest{Group: res(group), MessageQueue: &v2.MessageQueue{Topic: res(topic)}}
	}
	for _, tc := range []struct {
		what string
		req  any
		want []string
	}{
		{"receive from a pop retry topic", receive("g", "%RETRY%g_t"), []string{"Group:g Sub", "Group:g_t Sub", "Topic:%RETRY%g_t Sub"}},
		{"send to a pop retry topic", send("%RETRY%g_t"), []string{"Group:g_t Sub", "Topic:%RETRY%g_t Pub"}},
		{"send to a retry topic", send("%RETRY%g"), []string{"Group:g Sub", "Topic:%RETRY%g Pub"}},
		{"route of a retry topic", &v2.QueryRouteRequest{Topic: res("%RETRY%g")}, []string{"Group:g Sub", "Topic:%RETRY%g Pub,Sub"}},
		{"receive from a dead-letter topic", receive("g", "%DLQ%g"), []string{"Group:g Sub"}},
		{"route of a dead-letter topic", &v2.QueryRouteRequest{Topic: res("%DLQ%g")}, []string{"Group:g Sub"}},
		{"send to a dead-letter topic", send("%DLQ%g"), []string{"Group:g Sub", "Topic:%DLQ%g Pub"}},
		{"send to a topic", send("t"), []string{"Topic:t Pub"}},
	} {
		got := accessKeys(tc.req)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: needs %s, want %s", tc.what, strings.Join(got, "; "), strings.Join(tc.want, "; "))
		}
	}
}

// TestImplicitResourceAccess pins what the RPCs whose resources a client
// might hope to leave out need: the request's own group and topic, never
// nothing (a handle, a transaction id or a recall handle names no
// resource the proxy would authorize instead).
func TestImplicitResourceAccess(t *testing.T) {
	res := func(n string) *v2.Resource { return &v2.Resource{Name: n} }
	mq := &v2.MessageQueue{Topic: res("t")}
	consumer, producer := v2.ClientType_SIMPLE_CONSUMER, v2.ClientType_PRODUCER
	for _, tc := range []struct {
		what string
		req  any
		want []string
	}{
		{"ack", &v2.AckMessageRequest{Group: res("g"), Topic: res("t")}, []string{"Group:g Sub", "Topic:t Sub"}},
		{"change", &v2.ChangeInvisibleDurationRequest{Group: res("g"), Topic: res("t")}, []string{"Group:g Sub", "Topic:t Sub"}},
		{"forward", &v2.ForwardMessageToDeadLetterQueueRequest{Group: res("g"), Topic: res("t")}, []string{"Group:g Sub", "Topic:t Sub"}},
		{"assignment", &v2.QueryAssignmentRequest{Group: res("g"), Topic: res("t")}, []string{"Group:g Sub", "Topic:t Sub"}},
		{"end transaction", &v2.EndTransactionRequest{Topic: res("t")}, []string{"Topic:t Pub"}},
		{"recall", &v2.RecallMessageRequest{Topic: res("t")}, []string{"Topic:t Pub"}},
		{"pull", &v2.PullMessageRequest{Group: res("g"), MessageQueue: mq}, []string{"Group:g Sub", "Topic:t Sub"}},
		{"update offset", &v2.UpdateOffsetRequest{Group: res("g"), MessageQueue: mq}, []string{"Group:g Sub,Update", "Topic:t Sub,Update"}},
		{"get offset", &v2.GetOffsetRequest{Group: res("g"), MessageQueue: mq}, []string{"Group:g Sub,Get", "Topic:t Sub,Get"}},
		{"query offset", &v2.QueryOffsetRequest{MessageQueue: mq}, []string{"Topic:t Sub,Get"}},
		{"consumer heartbeat", &v2.HeartbeatRequest{ClientType: consumer, Group: res("g")}, []string{"Group:g Sub"}},
		{"producer heartbeat", &v2.HeartbeatRequest{ClientType: producer, Group: res("g")}, nil},
		{"termination naming a group", &v2.NotifyClientTerminationRequest{Group: res("g")}, []string{"Group:g Sub"}},
		{"termination naming none", &v2.NotifyClientTerminationRequest{}, nil},
		{"consumer settings", &v2.Settings{PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{Group: res("g"),
			Subscriptions: []*v2.SubscriptionEntry{{Topic: res("t")}, {Topic: res("u")}}}}}, []string{"Group:g Sub", "Topic:t Sub", "Topic:u Sub"}},
		{"producer settings", &v2.Settings{PubSub: &v2.Settings_Publishing{Publishing: &v2.Publishing{Topics: []*v2.Resource{res("t"), res("u")}}}}, []string{"Topic:t Pub", "Topic:u Pub"}},
	} {
		got := accessKeys(tc.req)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: needs %s, want %s", tc.what, strings.Join(got, "; "), strings.Join(tc.want, "; "))
		}
	}
}

// accessKeys returns what req needs, as sorted "resource actions" strings.
func accessKeys(req any) []string {
	_, reqs := accessOf(req, ports.RequestInfo{})
	var got []string
	for _, r := range reqs {
		got = append(got, r.Resource.Key()+" "+r.Actions.String())
	}
	slices.Sort(got)
	return got
}
