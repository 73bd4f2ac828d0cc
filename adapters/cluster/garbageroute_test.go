package cluster

import (
	"math"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
)

// TestRouteWithImpossibleQueueCountsIsRefused: a NameServer (or a broker
// registered with it) answering garbage, a route whose queue counts no
// topic has, was turned into one route queue per count: with
// readQueueNums 2147483647 rmqproxy tried to build 2^31 queues and died
// out of memory on the first send, receive or route query of the topic.
// Such a route is refused as the broker's error. The test uses a count
// just above the limit first (which the unbounded code built without
// trouble, failing the test before the second count could exhaust memory).
func TestRouteWithImpossibleQueueCountsIsRefused(t *testing.T) {
	for _, queues := range []int32{maxRouteQueues + 1, math.MaxInt32} {
		b := newTestBroker(t, startB1(t, queues, rw, nil).addr, nil)
		_, err := b.Route(t.Context(), "T")
		if !domain.HasReason(err, domain.ReasonBrokerError) {
			t.Fatalf("route of T with %d queues on b1: err = %v, want a broker error", queues, err)
		}
		t.Logf("%d queues: %v", queues, err)
	}
}

// TestPopAnswerWithMoreMessagesThanAskedIsRefused: a pop answer carrying
// more messages than any POP_MESSAGE asks for (32) is garbage. Each
// message's checkpoint was looked up among the answer's other messages
// (quadratic): an answer of tens of thousands of minimal records, which a
// 16 MiB frame holds, kept a core busy for seconds per receive (20000
// records took a second). Such an answer is refused as the broker's
// error before its checkpoints are read.
func TestPopAnswerWithMoreMessagesThanAskedIsRefused(t *testing.T) {
	b := startPopBroker(t, maxPopBatch+1, nil, nil)
	msgs, err := b.Pop(t.Context(), popBenchRequest)
	if !domain.HasReason(err, domain.ReasonBrokerError) {
		t.Fatalf("pop answered with %d messages: got %d messages, err = %v; want a broker error", maxPopBatch+1, len(msgs), err)
	}
	t.Log(err)
}
