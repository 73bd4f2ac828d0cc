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
		_, reqs := accessOf(tc.req, ports.RequestInfo{})
		var got []string
		for _, r := range reqs {
			got = append(got, r.Resource.Key()+" "+r.Actions.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: needs %s, want %s", tc.what, strings.Join(got, "; "), strings.Join(tc.want, "; "))
		}
	}
}
