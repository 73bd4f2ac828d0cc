package cluster_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestClientsOutliveARealBrokerRestart: the only broker of a cluster is
// killed (SIGKILL: the NameServer drops it, and with it every route
// through it) and restarted under an official Go producer and push
// consumer. Every lookup of the topic from the broker's first failed call
// on (a receive, a send, a route query) read the route again, found none,
// and was answered TOPIC_NOT_FOUND until the broker was back: the push
// consumer received again every 20 ms, an error line each time, and the
// clients were told that a topic they used a moment ago does not exist.
// The route read before is served now: sends fail as to a broker that
// cannot be reached (retryable), receives wait for it, a route query
// answers the route; nothing is answered TOPIC_NOT_FOUND, and every send
// acknowledged is consumed once the broker is back.
func TestClientsOutliveARealBrokerRestart(t *testing.T) {
	brokers := testenv.AddClusterBrokers(t, 1)
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	testenv.ShortPushInvisible(&cfg)
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "outage-orders"), testenv.Name(t, "outage-group")
	createTopicAndGroup(t, p, topic, group)

	var gotMu sync.Mutex
	got := map[string]bool{}
	pc := testenv.StartPushConsumer(t, p, group, topic, func(m *rmq.MessageView) rmq.ConsumerResult {
		gotMu.Lock()
		got[m.GetMessageId()] = true
		gotMu.Unlock()
		return rmq.SUCCESS
	})
	missing := func(ids []string) []string {
		gotMu.Lock()
		defer gotMu.Unlock()
		var out []string
		for _, id := range ids {
			if !got[id] {
				out = append(out, id)
			}
		}
		return out
	}
	t.Cleanup(func() { _ = pc.GracefulStop() })
	pr := testenv.NewProducer(t, p, topic)

	// The producer sends one message after the other until stopped,
	// recording the ids of those acknowledged and the sends that failed.
	var mu sync.Mutex
	var acked []string
	var failed []error
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	failedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(failed) }
	ctx, stop := context.WithCancel(t.Context())
	var sender sync.WaitGroup
	sender.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			r, err := pr.Send(sctx, &rmq.Message{Topic: topic, Body: []byte(fmt.Sprint("m", i))})
			cancel()
			mu.Lock()
			if err != nil {
				failed = append(failed, err)
			} else {
				acked = append(acked, r[0].MessageID)
			}
			mu.Unlock()
			if err != nil {
				// A failed send is retried by the client already; pace
				// the next so the outage costs few of them.
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	})
	t.Cleanup(func() { stop(); sender.Wait() })

	testenv.WaitFor(t, time.Minute, func() error {
		mu.Lock()
		ids := append([]string(nil), acked...)
		mu.Unlock()
		if len(ids) < 5 {
			return fmt.Errorf("%d sends acknowledged", len(ids))
		}
		if m := missing(ids); len(m) > 0 {
			return fmt.Errorf("%d of %d acknowledged sends not consumed yet", len(m), len(ids))
		}
		return nil
	})
	if err := brokers[0].Kill(); err != nil {
		t.Fatal(err)
	}
	// The proxy has found the broker gone: a send failed since the kill.
	before := failedCount()
	testenv.WaitFor(t, time.Minute, func() error {
		if failedCount() == before {
			return fmt.Errorf("no send failed since the broker was killed")
		}
		return nil
	})
	raw := testenv.NewRawClient(t, p)
	route, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic}})
	if err != nil || route.GetStatus().GetCode() != v2.Code_OK || len(route.GetMessageQueues()) == 0 {
		t.Errorf("route query while the topic's broker is down: %v, %v; want the route read before", route.GetStatus(), err)
	}
	if err := brokers[0].Restart(); err != nil {
		t.Fatal(err)
	}
	// A send acknowledged after the restart, then all of them consumed.
	after := ackedCount()
	testenv.WaitFor(t, 2*time.Minute, func() error {
		if n := ackedCount(); n <= after {
			return fmt.Errorf("no send acknowledged since the restart")
		}
		return nil
	})
	stop()
	sender.Wait()
	mu.Lock()
	want := append([]string(nil), acked...)
	t.Logf("%d sends acknowledged, %d failed (first: %v)", len(want), len(failed), firstErr(failed))
	mu.Unlock()
	testenv.WaitFor(t, 2*time.Minute, func() error {
		if m := missing(want); len(m) > 0 {
			return fmt.Errorf("%d of %d acknowledged sends not consumed, e.g. %s", len(m), len(want), m[0])
		}
		return nil
	})

	codes := rpcCodes(t, p)
	t.Logf("answers by RPC and code: %v", codes)
	for k, n := range codes {
		if strings.HasSuffix(k, " TOPIC_NOT_FOUND") {
			t.Errorf("%s answered %s times across the broker's restart", k, n)
		}
	}
}

func firstErr(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// rpcCodes returns the proxy's RPC count by "request_code response_code"
// (rocketmq_rpc_latency's count, rocketmq_rpc_latency_milliseconds_count on
// /metrics as the Apache proxy names it). A scrape without it fails the
// test, so that a renamed series cannot make its checks pass unseen.
func rpcCodes(t *testing.T, p *testenv.Proxy) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + p.HealthAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rocketmq_rpc_latency_milliseconds_count{") {
			continue
		}
		label := func(name string) string {
			_, v, ok := strings.Cut(line, name+`="`)
			if !ok {
				return ""
			}
			v, _, _ = strings.Cut(v, `"`)
			return v
		}
		out[label("request_code")+" "+label("response_code")] = line[strings.LastIndexByte(line, ' ')+1:]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("/metrics has no rocketmq_rpc_latency_milliseconds_count series")
	}
	return out
}
