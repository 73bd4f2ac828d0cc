package application

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// queueCounts is a [ports.TopicQueueStats] of topics with the given queue
// counts (a topic not listed does not exist).
type queueCounts map[string]int32

func (q queueCounts) TopicQueueStats(_ context.Context, topic string) ([]ports.QueueStats, error) {
	n, ok := q[topic]
	if !ok {
		return nil, domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist", topic)
	}
	out := make([]ports.QueueStats, n)
	for i := range out {
		out[i] = ports.QueueStats{Topic: topic, QueueID: int32(i), MaxOffset: int64(i)}
	}
	return out, nil
}

// BenchmarkUnreportedQueuesManyTopics: a group that has consumed from
// 5,000 topics of 8 queues (from 7 of each) and whose consumers subscribe
// to 100 of them. The consumer gauges ask this of every group at every
// scrape, `rmqproxy group stats` once.
func BenchmarkUnreportedQueuesManyTopics(b *testing.B) {
	topics := queueCounts{}
	var stats []ports.QueueStats
	var subscribed []string
	for t := range 5000 {
		name := fmt.Sprint("topic-", t)
		topics[name] = 8
		for q := range int32(7) {
			stats = append(stats, ports.QueueStats{Topic: name, QueueID: q})
		}
		if t%50 == 0 {
			subscribed = append(subscribed, name, fmt.Sprint("other-", t))
		}
	}
	for range b.N {
		if got := UnreportedQueues(context.Background(), topics, subscribed, stats); len(got) != 5000 {
			b.Fatalf("%d queues added, want 5000", len(got))
		}
	}
}

// TestUnreportedQueuesAsBefore: UnreportedQueues adds the same queues, in
// the same order, as its first version, which looked each listed queue's
// topic up in the list of topics seen (quadratic in a group's topics), on
// random stats and subscriptions.
func TestUnreportedQueuesAsBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 7))
	for round := range 300 {
		topics := queueCounts{}
		for i := range rng.IntN(12) {
			topics[fmt.Sprint("t", i)] = int32(1 + rng.IntN(5))
		}
		var stats []ports.QueueStats
		for range rng.IntN(30) {
			stats = append(stats, ports.QueueStats{Topic: fmt.Sprint("t", rng.IntN(14)), QueueID: int32(rng.IntN(6))})
		}
		var subscribed []string
		for range rng.IntN(6) {
			subscribed = append(subscribed, fmt.Sprint("t", rng.IntN(14)))
		}
		before := slices.Clone(subscribed)
		want := unreportedQueuesBefore(t.Context(), topics, slices.Clone(subscribed), stats)
		got := UnreportedQueues(t.Context(), topics, subscribed, stats)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: stats %v, subscribed %v: added %v, before %v", round, stats, subscribed, got, want)
		}
		if !slices.Equal(subscribed, before) {
			t.Fatalf("round %d: the subscribed topics changed: %v, were %v", round, subscribed, before)
		}
	}
}

// unreportedQueuesBefore is UnreportedQueues as it was.
func unreportedQueuesBefore(ctx context.Context, topics ports.TopicQueueStats, subscribed []string, stats []ports.QueueStats) []ports.QueueStats {
	for _, q := range stats {
		if !slices.Contains(subscribed, q.Topic) {
			subscribed = append(slices.Clip(subscribed), q.Topic)
		}
	}
	if len(subscribed) == 0 {
		return nil
	}
	type queue struct {
		topic string
		id    int32
	}
	listed := make(map[queue]bool, len(stats))
	for _, q := range stats {
		listed[queue{q.Topic, q.QueueID}] = true
	}
	var out []ports.QueueStats
	for _, t := range subscribed {
		qs, err := topics.TopicQueueStats(ctx, t)
		if err != nil {
			continue
		}
		for _, q := range qs {
			if k := (queue{q.Topic, q.QueueID}); !listed[k] {
				listed[k] = true
				out = append(out, q)
			}
		}
	}
	return out
}
