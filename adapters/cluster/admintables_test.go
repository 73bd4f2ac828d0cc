package cluster

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestTopicCreateReadsNoWholeTopicTable: to learn whether a topic existed,
// topic create (and update) read every master's whole topic table
// (GET_ALL_TOPIC_CONFIG): each command cost time in proportion to the
// topics of the cluster (5,000 topics: about 1.1 MB to decode per master),
// and creating thousands of topics one after the other took time growing
// with the square of their number. They now ask each master for the one
// topic (GET_TOPIC_CONFIG). Counted on two masters with 2,000 topics each.
func TestTopicCreateReadsNoWholeTopicTable(t *testing.T) {
	const topics = 2000
	table := map[string]remoting.TopicConfig{}
	for i := range topics {
		name := fmt.Sprintf("orders-%05d", i)
		table[name] = remoting.TopicConfig{TopicName: name, ReadQueueNums: 8, WriteQueueNums: 8, Perm: rw}
	}
	wholeTable, err := remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: table})
	if err != nil {
		t.Fatal(err)
	}
	var tableReads, created atomic.Int32
	b := newTestBroker(t, startTwoMasters(t, func(broker string, req, resp *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetAllTopicConfig:
			tableReads.Add(1)
			resp.Body = wholeTable
		case remoting.RequestGetTopicConfig:
			tc, ok := table[req.Fields.Value("topic")]
			if !ok || broker == "b1" && tc.TopicName == "orders-00007" {
				return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "No topic in this broker")
			}
			resp.Body, _ = remoting.EncodeJSONBody(tc)
		case remoting.RequestUpdateAndCreateTopic:
			created.Add(1)
			return remoting.NewResponse(req, remoting.ResponseSystemError, "disk full")
		}
		return resp
	}), nil)
	topic := func(name string) domain.Topic {
		return domain.Topic{Name: name, Type: domain.MessageTypeNormal, QueueCount: 1, Permission: domain.PermReadWrite}
	}

	// A topic one of the two masters has exists.
	if _, err := b.CreateTopic(t.Context(), topic("orders-00007")); domain.ReasonOf(err) != domain.ReasonAlreadyExists {
		t.Fatalf("create of a topic master b2 has: %v; want ALREADY_EXISTS", err)
	}
	if n := created.Load(); n != 0 {
		t.Fatalf("create of an existing topic asked %d masters to create it", n)
	}
	// A new one is created on every master (both refuse it here, to end
	// the command before it waits for the route).
	if _, err := b.CreateTopic(t.Context(), topic("payments")); domain.ReasonOf(err) != domain.ReasonBrokerError {
		t.Fatalf("create of a new topic both masters refuse: %v", err)
	}
	if n := created.Load(); n != 2 {
		t.Fatalf("create of a new topic asked %d masters to create it, want 2", n)
	}
	if n := tableReads.Load(); n != 0 {
		t.Errorf("two topic creates read a master's whole topic table %d times (%d bytes each); want none", n, len(wholeTable))
	}
}
