package grpc

import (
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/proto"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func TestSendResponseCarriesEveryReceipt(t *testing.T) {
	for _, n := range []int{1, 3} {
		receipts := make([]domain.SendReceipt, n)
		for i := range receipts {
			receipts[i] = domain.SendReceipt{MessageID: string(rune('A' + i)), TransactionID: "t", QueueOffset: int64(i), RecallHandle: "r"}
		}
		resp := sendResponse(receipts)
		want := &v2.SendMessageResponse{Status: &v2.Status{Code: v2.Code_OK, Message: "OK"}}
		for _, r := range receipts {
			want.Entries = append(want.Entries, &v2.SendResultEntry{
				Status: &v2.Status{Code: v2.Code_OK, Message: "OK"}, MessageId: r.MessageID,
				TransactionId: r.TransactionID, Offset: r.QueueOffset, RecallHandle: r.RecallHandle,
			})
		}
		if !proto.Equal(resp, want) {
			t.Errorf("%d receipts: got %v, want %v", n, resp, want)
		}
	}
}

// TestSendResponseForOneMessageAllocatesOnce: the answer to a
// one-message send (the common case) is a single allocation.
func TestSendResponseForOneMessageAllocatesOnce(t *testing.T) {
	receipts := []domain.SendReceipt{{MessageID: "id", QueueOffset: 7}}
	if n := testing.AllocsPerRun(100, func() { sendResponse(receipts) }); n != 1 {
		t.Errorf("sendResponse allocates %v times for one receipt, want 1", n)
	}
}

// TestAckOfOneEntryAnswersAsTheGeneralPath: the answer to an ack of one
// entry that succeeded is what the multi-entry path builds for it, in one
// allocation.
func TestAckOfOneEntryAnswersAsTheGeneralPath(t *testing.T) {
	e := &v2.AckMessageEntry{MessageId: "01AB", ReceiptHandle: "handle"}
	ok := &v2.Status{Code: v2.Code_OK, Message: "OK"}
	want := &v2.AckMessageResponse{Status: commonStatus(map[v2.Code]bool{ok.Code: true}),
		Entries: []*v2.AckMessageResultEntry{{MessageId: e.MessageId, ReceiptHandle: e.ReceiptHandle, Status: okStatus()}}}
	if got := ackedOne(e); !proto.Equal(got, want) || !proto.Equal(want.Status, ok) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { ackedOne(e) }); n != 1 {
		t.Errorf("ackedOne allocates %v times, want 1", n)
	}
}

// TestAdmissionAllocatesNoClosure: admitting a request and ending its
// admission allocate nothing of the pipeline's own beyond what the traffic
// budgets return (the request info's context is tapHeaders's).
func TestAdmissionAllocatesNoClosure(t *testing.T) {
	s := &Service{admit: &admission{limit: 10}}
	ctx := ports.WithRequestInfo(t.Context(), ports.RequestInfo{ClientID: "c"})
	req := &v2.AckMessageRequest{}
	if n := testing.AllocsPerRun(100, func() {
		_, a, st := s.admitRequest(ctx, kindConsumer, req)
		if st != nil {
			t.Fatal(st)
		}
		a.end()
	}); n != 0 {
		t.Errorf("admission allocates %v times, want 0", n)
	}
	if s.admit.inflight[kindConsumer].Load() != 0 {
		t.Fatal("the admission was not ended")
	}
	// With traffic budgets: the client's and user's counts, a send's bytes.
	cfg := application.DefaultTrafficConfig()
	cfg.MaxInflightBytes, cfg.MaxInflightPerClient, cfg.MaxInflightPerUser = 1<<20, 10, 10
	s.traffic = application.NewTraffic(cfg, ports.SystemClock{})
	send := &v2.SendMessageRequest{Messages: []*v2.Message{{Body: []byte("hello")}}}
	if n := testing.AllocsPerRun(100, func() {
		_, a, st := s.admitRequest(ctx, kindProducer, send)
		if st != nil {
			t.Fatal(st)
		}
		a.end()
	}); n != 0 {
		t.Errorf("admission with traffic budgets allocates %v times, want 0", n)
	}
	if s.traffic.InflightBytes() != 0 || s.admit.inflight[kindProducer].Load() != 0 {
		t.Fatal("the admission was not ended")
	}
}
