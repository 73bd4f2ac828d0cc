package cluster_test

import (
	"strconv"
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestTopicUsableAsSoonAsTheCommandReturns walks what an operator and a
// client do against a real broker through one rmqproxy instance, with no
// wait of the test's own between the steps: a client asks for a topic
// before it exists (TOPIC_NOT_FOUND), `rmqproxy topic create` makes it,
// and the next route and send succeed with the queues asked for;
// `rmqproxy topic update --queues` grows it, and the next route has the
// new count; `rmqproxy topic delete` removes it, and the next route and
// send answer TOPIC_NOT_FOUND. The admin commands return once the
// NameServers route the change (see awaitRoute in adapters/cluster).
func TestTopicUsableAsSoonAsTheCommandReturns(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "routable")
	testenv.Claim(t, "topic", topic)
	raw := testenv.NewRawClient(t, p)
	route := func(when string) (v2.Code, map[string]int) {
		t.Helper()
		resp, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic}})
		if err != nil {
			t.Fatalf("route %s: %v", when, err)
		}
		queues := map[string]int{}
		for _, q := range resp.GetMessageQueues() {
			queues[q.GetBroker().GetName()]++
		}
		return resp.GetStatus().GetCode(), queues
	}
	send := func(when string, want v2.Code) {
		t.Helper()
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, []byte(when), "")}})
		if err != nil || resp.GetStatus().GetCode() != want {
			t.Fatalf("send %s: %v %v, want %v", when, resp.GetStatus(), err, want)
		}
	}
	cli := func(args ...string) {
		t.Helper()
		if code, out := testenv.CLI(t, append(args, "--admin.address="+p.AdminAddr())...); code != 0 {
			t.Fatalf("%v: exit %d:\n%s", args, code, out)
		}
	}
	perBroker := func(queues map[string]int, want int) bool {
		for _, n := range queues {
			if n != want {
				return false
			}
		}
		return len(queues) > 0
	}

	if code, _ := route("before the create"); code != v2.Code_TOPIC_NOT_FOUND {
		t.Fatalf("route before the create: %v, want TOPIC_NOT_FOUND", code)
	}
	cli("topic", "create", topic, "--queues", "2")
	if code, queues := route("right after the create"); code != v2.Code_OK || !perBroker(queues, 2) {
		t.Fatalf("route right after the create: %v, queues per broker %v, want OK with 2 on each", code, queues)
	}
	send("right after the create", v2.Code_OK)

	cli("topic", "update", topic, "--queues", strconv.Itoa(4))
	if code, queues := route("right after the update"); code != v2.Code_OK || !perBroker(queues, 4) {
		t.Fatalf("route right after the update to 4 queues: %v, queues per broker %v, want OK with 4 on each", code, queues)
	}
	send("right after the update", v2.Code_OK)

	cli("topic", "delete", topic)
	if code, queues := route("right after the delete"); code != v2.Code_TOPIC_NOT_FOUND {
		t.Fatalf("route right after the delete: %v %v, want TOPIC_NOT_FOUND", code, queues)
	}
	send("right after the delete", v2.Code_TOPIC_NOT_FOUND)
}
