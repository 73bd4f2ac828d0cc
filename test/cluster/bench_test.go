package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// The cluster benchmarks put three paths to the same broker side by side,
// in one run, on one box, with 1 KiB messages: rmqproxy in cluster mode
// and the Apache proxy (rocketmq-proxy, cluster mode), both through the
// official Go client, and a Remoting client straight to the broker (the
// floor any proxy adds to). Run with
//
//	go test -run '^$' -bench Cluster -benchtime 5000x ./test/cluster
//
// Everything (broker, proxies, clients) shares the machine, so compare the
// paths with each other, not with a dedicated deployment.

var benchBody = func() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}()

// benchPaths starts both proxies in front of the pass's broker once per
// benchmark and returns them with a topic of benchmark's own.
type benchPaths struct {
	ours, theirs *testenv.Proxy
	broker       *testenv.ClusterBroker
	topic        string
}

var benchSeq atomic.Int32

func startPaths(b *testing.B) *benchPaths {
	b.Helper()
	cfg, broker := testenv.ClusterConfig(b)
	cfg.Messaging = application.DefaultConfig()
	cfg.Log.Level = "warn"
	ours := testenv.Start(b, cfg)
	apache := testenv.NameServer().StartApacheProxy(b, broker.Cluster)
	topic := fmt.Sprintf("bench-%d", benchSeq.Add(1))
	ours.CreateTopic(b, topic, domain.MessageTypeNormal, 8)
	theirs := &testenv.Proxy{Addr: apache.GRPC}
	testenv.WaitForRoute(b, theirs, topic)
	return &benchPaths{ours: ours, theirs: theirs, broker: broker, topic: topic}
}

// percentiles reports p50 and p99 of ds as metrics.
func percentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
}

// runSenders runs send b.N times from senders goroutines and reports
// throughput and send latency.
func runSenders(b *testing.B, senders int, send func(ctx context.Context) error) {
	b.SetBytes(int64(len(benchBody)))
	var next atomic.Int64
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/senders+1)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := send(b.Context()); err != nil {
					b.Error(err)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.StopTimer()
	percentiles(b, lat)
}

// BenchmarkClusterProduce: 16 concurrent senders of 1 KiB messages.
func BenchmarkClusterProduce(b *testing.B) {
	paths := startPaths(b)
	const senders = 16
	for _, via := range []struct {
		name string
		p    *testenv.Proxy
	}{{"rmqproxy", paths.ours}, {"apache-proxy", paths.theirs}} {
		b.Run(via.name, func(b *testing.B) {
			pr := testenv.NewProducer(b, via.p, paths.topic)
			runSenders(b, senders, func(ctx context.Context) error {
				_, err := pr.Send(ctx, &rmq.Message{Topic: paths.topic, Body: benchBody})
				return err
			})
		})
	}
	b.Run("direct-remoting", func(b *testing.B) {
		rc := client.New(client.Config{})
		defer rc.Close()
		var seq atomic.Int64
		runSenders(b, senders, func(ctx context.Context) error {
			n := seq.Add(1)
			props, _ := remoting.FormatProperties(remoting.Properties{{Key: remoting.PropertyUniqKey, Value: fmt.Sprintf("BENCH%028X", n)}})
			h := remoting.SendMessageRequestHeader{RPC: remoting.RPC{BrokerName: paths.broker.Name}, ProducerGroup: paths.topic,
				Topic: paths.topic, DefaultTopic: "TBW102", DefaultTopicQueueNums: 4, QueueID: int32(n % 8),
				BornTimestamp: time.Now().UnixMilli(), Properties: props}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			resp, err := rc.Invoke(cctx, paths.broker.Addr, remoting.NewRequest(remoting.RequestSendMessageV2, h.AppendFieldsV2(nil), benchBody))
			if err != nil {
				return err
			}
			return remoting.Expect(resp)
		})
	})
}

// BenchmarkClusterConsume: b.N messages preloaded, then received and acked
// by 4 simple consumers (batches of 32) through each proxy, and by 4 pop
// loops (POP_MESSAGE + ACK_MESSAGE) straight to the broker.
func BenchmarkClusterConsume(b *testing.B) {
	paths := startPaths(b)
	pr := testenv.NewProducer(b, paths.ours, paths.topic)
	preload := func(b *testing.B) {
		b.Helper()
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(b.N) {
					if _, err := pr.Send(b.Context(), &rmq.Message{Topic: paths.topic, Body: benchBody}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	consumeWith := func(b *testing.B, receive func(ctx context.Context) (int, error)) {
		var got atomic.Int64
		var wg sync.WaitGroup
		b.SetBytes(int64(len(benchBody)))
		b.ResetTimer()
		start := time.Now()
		// The last message ends the other consumers' long polls.
		ctx, done := context.WithCancel(b.Context())
		defer done()
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					n, err := receive(ctx)
					if err != nil && ctx.Err() == nil && !testenv.IsNoMessage(err) {
						b.Error(err)
						return
					}
					if got.Add(int64(n)) >= int64(b.N) {
						done()
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(got.Load())/time.Since(start).Seconds(), "msgs/s")
	}
	for i, via := range []struct {
		name string
		p    *testenv.Proxy
	}{{"rmqproxy", paths.ours}, {"apache-proxy", paths.theirs}} {
		b.Run(via.name, func(b *testing.B) {
			b.StopTimer()
			preload(b)
			group := "g-bench-" + via.name + "-" + strconv.Itoa(b.N) + "-" + strconv.Itoa(i)
			// 5 s: both proxies refuse a shorter long poll (minimum 5 s).
			c := testenv.NewSimpleConsumer(b, via.p, group, 5*time.Second, map[string]*rmq.FilterExpression{paths.topic: rmq.SUB_ALL})
			b.StartTimer()
			consumeWith(b, func(ctx context.Context) (int, error) {
				ms, err := c.Receive(ctx, 32, 30*time.Second)
				for _, m := range ms {
					if err := c.Ack(ctx, m); err != nil {
						return 0, err
					}
				}
				return len(ms), err
			})
		})
	}
	b.Run("direct-remoting", func(b *testing.B) {
		b.StopTimer()
		preload(b)
		group := "g-bench-direct-" + strconv.Itoa(b.N)
		rc := client.New(client.Config{})
		defer rc.Close()
		rpc := remoting.RPC{BrokerName: paths.broker.Name}
		b.StartTimer()
		consumeWith(b, func(ctx context.Context) (int, error) {
			pop := remoting.PopMessageRequestHeader{RPC: rpc, ConsumerGroup: group, Topic: paths.topic, QueueID: -1, MaxMsgNums: 32,
				InvisibleTime: 30000, PollTime: 1000, BornTime: time.Now().UnixMilli(), InitMode: remoting.InitModeMin,
				ExpType: remoting.ExpressionTag, Exp: "*"}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			resp, err := rc.Invoke(cctx, paths.broker.Addr, remoting.NewRequest(remoting.RequestPopMessage, remoting.EncodeHeader(&pop), nil))
			if err != nil {
				return 0, err
			}
			if resp.Code != int32(remoting.ResponseSuccess) {
				return 0, nil // polled, nothing there
			}
			var ph remoting.PopMessageResponseHeader
			if err := ph.DecodeFields(resp.Fields); err != nil {
				return 0, err
			}
			msgs, err := remoting.DecodeMessages(resp.Body)
			if err != nil {
				return 0, err
			}
			if err := remoting.PopCheckpoints(paths.topic, &ph, paths.broker.Name, false, msgs); err != nil {
				return 0, err
			}
			for _, m := range msgs {
				ck, err := remoting.ParseExtraInfo(m.Properties.Value(remoting.PropertyPopCK))
				if err != nil {
					return 0, err
				}
				ack := remoting.AckMessageRequestHeader{RPC: rpc, ConsumerGroup: group, Topic: ck.RealTopic(paths.topic, group),
					QueueID: ck.QueueID, ExtraInfo: ck.String(), Offset: ck.QueueOffset}
				r, err := rc.Invoke(cctx, paths.broker.Addr, remoting.NewRequest(remoting.RequestAckMessage, remoting.EncodeHeader(&ack), nil))
				if err != nil {
					return 0, err
				}
				if err := remoting.Expect(r); err != nil {
					return 0, err
				}
			}
			return len(msgs), nil
		})
	})
}
