package cluster_test

import (
	"fmt"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestTransactionEndsOnce: a broker ends a half message again whenever it
// is asked to (END_TRANSACTION finds the half message in its commit log
// whether or not it was resolved), so a second commit stored the message
// a second time, and a commit after a rollback delivered a message the
// application had rolled back, both answered OK. Through the instance that
// ended it, a transaction is now ended once: a second EndTransaction, with
// either resolution, is INVALID_TRANSACTION_ID, and consumers get the
// committed message once and the rolled-back one never.
func TestTransactionEndsOnce(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "tx-once"), testenv.Name(t, "g-tx-once")
	p.CreateTopic(t, topic, domain.MessageTypeTransaction, 1)
	pr, err := rmq.NewProducer(p.ClientConfig(""), rmq.WithTopics(topic),
		rmq.WithTransactionChecker(&rmq.TransactionChecker{Check: func(*rmq.MessageView) rmq.TransactionResolution { return rmq.UNKNOWN }}))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Start(); err != nil {
		t.Fatal(err)
	}
	defer pr.GracefulStop()
	raw := testenv.NewRawClient(t, p)
	send := func(body string) *rmq.SendReceipt {
		t.Helper()
		r, err := pr.SendWithTransaction(t.Context(), &rmq.Message{Topic: topic, Body: []byte(body)}, pr.BeginTransaction())
		if err != nil {
			t.Fatal(err)
		}
		return r[0]
	}
	end := func(r *rmq.SendReceipt, res v2.TransactionResolution) *v2.Status {
		t.Helper()
		resp, err := raw.EndTransaction(raw.Ctx(t), &v2.EndTransactionRequest{Topic: &v2.Resource{Name: topic},
			MessageId: r.MessageID, TransactionId: r.TransactionId, Resolution: res, Source: v2.TransactionSource_SOURCE_CLIENT})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}

	committed, rolledBack := send("committed"), send("rolled back")
	if st := end(committed, v2.TransactionResolution_COMMIT); st.GetCode() != v2.Code_OK {
		t.Fatalf("commit: %v", st)
	}
	if st := end(rolledBack, v2.TransactionResolution_ROLLBACK); st.GetCode() != v2.Code_OK {
		t.Fatalf("rollback: %v", st)
	}
	for _, again := range []struct {
		r   *rmq.SendReceipt
		res v2.TransactionResolution
	}{{committed, v2.TransactionResolution_COMMIT}, {committed, v2.TransactionResolution_ROLLBACK}, {rolledBack, v2.TransactionResolution_COMMIT}} {
		if st := end(again.r, again.res); st.GetCode() != v2.Code_INVALID_TRANSACTION_ID {
			t.Errorf("%v of a transaction ended already: %v, want INVALID_TRANSACTION_ID", again.res, st)
		}
	}

	// Each message received is counted and acked, the ack checked (the
	// consumer reports a refused ack, see testenv.NewSimpleConsumer): one
	// lost would come back as a second delivery.
	c := testenv.NewSimpleConsumer(t, p, group, 5*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	seen := map[string]int{}
	receive := func() error {
		ms, err := c.Receive(t.Context(), 16, 20*time.Second)
		if err != nil && !testenv.IsNoMessage(err) {
			return fmt.Errorf("receive: %w", err)
		}
		for _, m := range ms {
			seen[m.GetMessageId()]++
			if err := c.Ack(t.Context(), m); err != nil {
				t.Fatalf("ack of %s: %v", m.GetMessageId(), err)
			}
		}
		return nil
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		if err := receive(); err != nil {
			return err
		}
		if seen[committed.MessageID] == 0 {
			return fmt.Errorf("the committed message is not delivered yet")
		}
		return nil
	})
	// Whatever else was stored comes within a few more receives (that were
	// answered: a failed one saw nothing).
	answered := 0
	testenv.WaitFor(t, time.Minute, func() error {
		if err := receive(); err != nil {
			return err
		}
		if answered++; answered < 3 {
			return fmt.Errorf("%d of 3 more receives answered", answered)
		}
		return nil
	})
	if seen[committed.MessageID] != 1 || seen[rolledBack.MessageID] != 0 {
		t.Fatalf("delivered: the committed message %d times, the rolled-back one %d times", seen[committed.MessageID], seen[rolledBack.MessageID])
	}
}
