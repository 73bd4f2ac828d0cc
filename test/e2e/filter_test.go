package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// longExpression joins parts with sep until the result is at least n bytes.
func longExpression(n int, sep string, part func(i int) string) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(part(i))
	}
	return b.String()
}

// TestLongFilterExpressions subscribes with 10 KiB tag and SQL92
// expressions, which the Apache proxy accepts: they receive their messages
// and only those. An expression beyond messaging.limits.maxFilterExpressionLength
// is refused with ILLEGAL_FILTER_EXPRESSION naming the setting.
func TestLongFilterExpressions(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	topic := testenv.Name(t, "long-filter")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	pr := testenv.NewProducer(t, p, topic)
	wantTag, wantSQL := map[string]bool{}, map[string]bool{}
	for i := range 12 {
		m := &rmq.Message{Topic: topic, Body: []byte(fmt.Sprint(i))}
		m.SetTag([]string{"hit", "miss", "other"}[i%3])
		m.AddProperty("code", fmt.Sprintf("c%d", i%4))
		r, err := pr.Send(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			wantTag[r[0].MessageID] = true
		}
		if i%4 == 1 {
			wantSQL[r[0].MessageID] = true
		}
	}
	// 10 KiB: hundreds of tags that never occur, and "hit" at the end.
	tags := longExpression(10<<10, "||", func(i int) string { return fmt.Sprintf("absent-tag-%05d", i) }) + "||hit"
	sql := longExpression(10<<10, " OR ", func(i int) string { return fmt.Sprintf("code = 'absent-%05d'", i) }) + " OR code = 'c1'"
	for _, c := range []struct {
		name, group string
		expr        *rmq.FilterExpression
		want        map[string]bool
	}{
		{"tag", testenv.Name(t, "g-long-tag"), rmq.NewFilterExpression(tags), wantTag},
		{"sql92", testenv.Name(t, "g-long-sql"), rmq.NewFilterExpressionWithType(sql, rmq.SQL92), wantSQL},
	} {
		t.Run(c.name, func(t *testing.T) {
			cons := testenv.NewSimpleConsumer(t, p, c.group, time.Second, map[string]*rmq.FilterExpression{topic: c.expr})
			got := receiveAll(t, cons, len(c.want), 30*time.Second)
			for id := range got {
				if !c.want[id] {
					t.Errorf("message %s does not match the filter", id)
				}
			}
			if ms := testenv.ReceiveAnswered(t, cons, 16, 2*time.Second); len(ms) != 0 {
				t.Fatalf("non-matching message delivered: %v", ms[0].GetTag())
			}
		})
	}

	rawGroup := testenv.Name(t, "g-long-raw")
	t.Run("beyond the limit", func(t *testing.T) {
		raw := testenv.NewRawClient(t, p)
		raw.Subscribe(t, rawGroup, topic)
		req := testenv.ReceiveRequest(rawGroup, topic, 1, 10*time.Second)
		req.FilterExpression.Expression = longExpression(64<<10+1, "||", func(i int) string { return "t" })
		st, _ := raw.Receive(t, req)
		if st.GetCode() != v2.Code_ILLEGAL_FILTER_EXPRESSION || !strings.Contains(st.GetMessage(), "messaging.limits.maxFilterExpressionLength") {
			t.Fatalf("%v", st)
		}
	})
}

// TestTagExpressionsTrimAsJava subscribes with tag expressions whose tags
// end in a no-break space (U+00A0) or an ideographic space (U+3000), which
// are valid in message tags. The Apache proxy and broker trim a tag of an
// expression as Java's String.trim does (characters up to U+0020 only), so
// such a tag is subscribed to as written: the consumer receives the
// messages with exactly that tag, and not those with the tag without the
// space. rmqproxy trimmed Unicode spaces too: local mode delivered the
// other tag's messages and consumed the subscribed ones unseen, cluster
// mode acked and dropped the messages the broker delivered.
func TestTagExpressionsTrimAsJava(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	topic := testenv.Name(t, "tag-trim")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	pr := testenv.NewProducer(t, p, topic)
	ids := map[string]string{}
	for _, tag := range []string{"x", "x\u00a0", "y\u3000", "y"} {
		m := &rmq.Message{Topic: topic, Body: []byte(tag)}
		m.SetTag(tag)
		r, err := pr.Send(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		ids[r[0].MessageID] = tag
	}
	cons := testenv.NewSimpleConsumer(t, p, testenv.Name(t, "g-tag-trim"), time.Second,
		map[string]*rmq.FilterExpression{topic: rmq.NewFilterExpression(" x\u00a0 || y\u3000\t")})
	got := receiveAll(t, cons, 2, 30*time.Second)
	for id := range got {
		if tag := ids[id]; tag != "x\u00a0" && tag != "y\u3000" {
			t.Errorf("message tagged %q delivered", tag)
		}
	}
	if ms := testenv.ReceiveAnswered(t, cons, 16, 2*time.Second); len(ms) != 0 {
		t.Fatalf("message tagged %q delivered", *ms[0].GetTag())
	}
}

// TestTagExpressionWithoutATagIsRefused subscribes with a tag expression
// of separators and white space only (" || "). The Apache proxy refuses
// "||" but takes this one, which names no tag: the broker delivers none of
// the topic's messages to it, and since a pop consumes what its filter
// skips, every message of the topic was consumed for the group unseen (in
// both modes). It is refused as "||" is (the consumer's settings, and a
// receive with ILLEGAL_FILTER_EXPRESSION), and the group's messages stay
// for a consumer with a usable filter.
func TestTagExpressionWithoutATagIsRefused(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "no-tag"), testenv.Name(t, "g-no-tag")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	pr := testenv.NewProducer(t, p, topic)
	for _, tag := range []string{"a", ""} {
		m := &rmq.Message{Topic: topic, Body: []byte("tag " + tag)}
		if tag != "" {
			m.SetTag(tag)
		}
		if _, err := pr.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	bad, err := rmq.NewSimpleConsumer(p.ClientConfig(group), rmq.WithSimpleAwaitDuration(time.Second),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.NewFilterExpression(" || \t")}))
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Start(); err == nil {
		ms, err := bad.Receive(t.Context(), 16, 20*time.Second)
		_ = bad.GracefulStop()
		if err == nil || !strings.Contains(err.Error(), v2.Code_ILLEGAL_FILTER_EXPRESSION.String()) {
			t.Fatalf("receive with a tag expression without a tag: %d messages, %v; want ILLEGAL_FILTER_EXPRESSION", len(ms), err)
		}
	} else if !strings.Contains(err.Error(), "expression format is not correct") {
		// The settings are refused as upstream refuses "||" in them.
		t.Fatalf("start with a tag expression without a tag: %v; want the settings refused", err)
	}
	good := testenv.NewSimpleConsumer(t, p, group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	receiveAll(t, good, 2, 30*time.Second)
}
