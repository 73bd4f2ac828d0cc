package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestUnackedDeliveriesBoundedPerQueue: with local.maxInflightPerQueue=5,
// the official Go client's simple consumer that receives without acking
// gets 5 messages of a one-queue topic and then "no message" (however many
// more wait), and one more for each ack; the proxy logs one warning naming
// the group and the setting.
func TestUnackedDeliveriesBoundedPerQueue(t *testing.T) {
	testenv.LocalOnly(t, "the bound is the embedded broker's (an Apache broker has its own, popInflightMessageThreshold, off by default)")
	waitsInParallel(t) // its own proxy and names; long polls of 1 s, deadlines only
	c := testenv.StartChild(t, t.TempDir(), append(slices.Clip(fastConsumer), "--local.maxInflightPerQueue=5")...)
	topic, group := testenv.Name(t, "inflight"), testenv.Name(t, "g-inflight")
	createTopicVia(t, c, topic, 1)
	p := c.Proxy(t)
	testenv.Claim(t, "consumer group", group) // auto-created by the consumer
	pr := testenv.NewProducer(t, p, topic)
	for i := range 10 {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := pr.Send(ctx, &rmq.Message{Topic: topic, Body: []byte(fmt.Sprint(i))})
		cancel()
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	sc := testenv.NewSimpleConsumer(t, p, group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	var held []*rmq.MessageView
	testenv.WaitFor(t, 30*time.Second, func() error {
		held = append(held, testenv.ReceiveAnswered(t, sc, 32, time.Minute)...)
		if len(held) < 5 {
			return fmt.Errorf("received %d of the bound's 5", len(held))
		}
		return nil
	})
	if len(held) != 5 {
		t.Fatalf("received %d messages unacked, want the bound's 5", len(held))
	}
	if more := testenv.ReceiveAnswered(t, sc, 32, time.Minute); len(more) != 0 {
		t.Fatalf("a receive at the bound got %d more messages", len(more))
	}
	if err := sc.Ack(t.Context(), held[0]); err != nil {
		t.Fatalf("ack: %v", err)
	}
	var next []*rmq.MessageView
	testenv.WaitFor(t, 30*time.Second, func() error {
		next = append(next, testenv.ReceiveAnswered(t, sc, 32, time.Minute)...)
		if len(next) == 0 {
			return fmt.Errorf("nothing received after an ack made room")
		}
		return nil
	})
	if len(next) != 1 || string(next[0].GetBody()) != "5" {
		t.Fatalf("after one ack received %d messages (first %q), want message 5 alone", len(next), next[0].GetBody())
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		if out := c.Output(); !strings.Contains(out, "local.maxInflightPerQueue") || !strings.Contains(out, group) {
			return fmt.Errorf("no warning names the setting and the group")
		}
		return nil
	})
}
