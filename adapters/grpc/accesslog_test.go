package grpc

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	grpclib "google.golang.org/grpc"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
)

// TestAccessLogNamesTheMessagesAndGroups: an auditor reading the access
// log can tell which messages a client acked, received, forwarded,
// changed or ended, and which entries of a batch failed, and for which
// group a client ended its session or moved an offset. The ack line had
// only a count of entries, a receive only a count of messages, and
// NotifyClientTermination, Heartbeat, QueryAssignment and the offset
// requests named no topic or group.
func TestAccessLogNamesTheMessagesAndGroups(t *testing.T) {
	var logs logbuf.Buffer
	o := newObserver(&observe.Telemetry{AccessLog: true}, slog.New(slog.NewJSONHandler(&logs, nil)), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	unary := func(method string, req, resp any) {
		t.Helper()
		info := &grpclib.UnaryServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/" + method}
		if _, err := o.unary(ctx, req, info, func(context.Context, any) (any, error) { return resp, nil }); err != nil {
			t.Fatal(err)
		}
	}
	st := func(c v2.Code) *v2.Status { return &v2.Status{Code: c, Message: c.String()} }
	topic, group := &v2.Resource{Name: "t"}, &v2.Resource{Name: "g"}

	unary("AckMessage", &v2.AckMessageRequest{Topic: topic, Group: group, Entries: []*v2.AckMessageEntry{{MessageId: "a1", ReceiptHandle: "h1"}}},
		&v2.AckMessageResponse{Status: st(v2.Code_OK), Entries: []*v2.AckMessageResultEntry{{MessageId: "a1", Status: st(v2.Code_OK)}}})
	unary("AckMessage", &v2.AckMessageRequest{Topic: topic, Group: group, Entries: []*v2.AckMessageEntry{{MessageId: "b1", ReceiptHandle: "h1"}, {MessageId: "b2", ReceiptHandle: "h2"}}},
		&v2.AckMessageResponse{Status: st(v2.Code_MULTIPLE_RESULTS), Entries: []*v2.AckMessageResultEntry{
			{MessageId: "b1", Status: st(v2.Code_OK)}, {MessageId: "b2", Status: st(v2.Code_INVALID_RECEIPT_HANDLE)}}})
	unary("SendMessage", &v2.SendMessageRequest{Messages: []*v2.Message{
		{Topic: topic, SystemProperties: &v2.SystemProperties{MessageId: "s1"}}, {Topic: topic, SystemProperties: &v2.SystemProperties{MessageId: "s2"}}}},
		&v2.SendMessageResponse{Status: st(v2.Code_MULTIPLE_RESULTS), Entries: []*v2.SendResultEntry{
			{MessageId: "s1", Status: st(v2.Code_OK)}, {MessageId: "s2", Status: st(v2.Code_MESSAGE_BODY_TOO_LARGE)}}})
	unary("NotifyClientTermination", &v2.NotifyClientTerminationRequest{Group: group}, &v2.NotifyClientTerminationResponse{Status: st(v2.Code_OK)})
	unary("Heartbeat", &v2.HeartbeatRequest{Group: group, ClientType: v2.ClientType_SIMPLE_CONSUMER}, &v2.HeartbeatResponse{Status: st(v2.Code_OK)})
	unary("QueryAssignment", &v2.QueryAssignmentRequest{Topic: topic, Group: group}, &v2.QueryAssignmentResponse{Status: st(v2.Code_OK)})
	unary("UpdateOffset", &v2.UpdateOffsetRequest{Group: group, MessageQueue: &v2.MessageQueue{Topic: topic, Id: 3}, Offset: 42}, &v2.UpdateOffsetResponse{Status: st(v2.Code_OK)})
	unary("GetOffset", &v2.GetOffsetRequest{Group: group, MessageQueue: &v2.MessageQueue{Topic: topic, Id: 3}}, &v2.GetOffsetResponse{Status: st(v2.Code_OK), Offset: 42})
	unary("EndTransaction", &v2.EndTransactionRequest{Topic: topic, MessageId: "e1", TransactionId: "tx1", Resolution: v2.TransactionResolution_COMMIT},
		&v2.EndTransactionResponse{Status: st(v2.Code_OK)})

	info := &grpclib.StreamServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/ReceiveMessage"}
	req := &v2.ReceiveMessageRequest{Group: group, MessageQueue: &v2.MessageQueue{Topic: topic}}
	_ = o.stream(nil, &recvStream{ctxStream: ctxStream{ctx: ctx}, req: req}, info, func(_ any, ss grpclib.ServerStream) error {
		var r v2.ReceiveMessageRequest
		_ = ss.RecvMsg(&r)
		_ = ss.SendMsg(&v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_Status{Status: st(v2.Code_OK)}})
		for _, id := range []string{"r1", "r2"} {
			_ = ss.SendMsg(&v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_Message{Message: &v2.Message{Topic: topic,
				SystemProperties: &v2.SystemProperties{MessageId: id}}}})
		}
		return nil
	})

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		lines = append(lines, m)
	}
	for i, want := range []map[string]any{
		{"rpc": "AckMessage", "topic": "t", "group": "g", "message_ids": []any{"a1"}, "entry_codes": nil},
		{"rpc": "AckMessage", "code": "MULTIPLE_RESULTS", "message_ids": []any{"b1", "b2"}, "entry_codes": []any{"OK", "INVALID_RECEIPT_HANDLE"}},
		{"rpc": "SendMessage", "message_ids": []any{"s1", "s2"}, "entry_codes": []any{"OK", "MESSAGE_BODY_TOO_LARGE"}},
		{"rpc": "NotifyClientTermination", "group": "g"},
		{"rpc": "Heartbeat", "group": "g"},
		{"rpc": "QueryAssignment", "topic": "t", "group": "g"},
		{"rpc": "UpdateOffset", "topic": "t", "group": "g", "queue_id": float64(3), "offset": float64(42)},
		{"rpc": "GetOffset", "topic": "t", "group": "g", "queue_id": float64(3)},
		{"rpc": "EndTransaction", "topic": "t", "message_id": "e1", "transaction_id": "tx1", "resolution": "COMMIT"},
		{"rpc": "ReceiveMessage", "topic": "t", "group": "g", "messages": float64(2), "message_ids": []any{"r1", "r2"}},
	} {
		if i >= len(lines) {
			t.Fatalf("%d access lines, want %d:\n%s", len(lines), i+1, logs.String())
		}
		for k, v := range want {
			if got := lines[i][k]; !reflect.DeepEqual(got, v) {
				t.Errorf("%s line: %s = %v, want %v", want["rpc"], k, got, v)
			}
		}
	}
}

// TestAccessLogLeavesOutAnEmptyGroup: a producer's NotifyClientTermination
// (or Heartbeat) with a Group Resource of no name was logged with
// group="", as if a group of that name existed; a group is named only
// when the request names one.
func TestAccessLogLeavesOutAnEmptyGroup(t *testing.T) {
	var logs logbuf.Buffer
	o := newObserver(&observe.Telemetry{AccessLog: true}, slog.New(slog.NewJSONHandler(&logs, nil)), slog.New(slog.DiscardHandler))
	ok := &v2.Status{Code: v2.Code_OK}
	for method, req := range map[string]any{
		"NotifyClientTermination": &v2.NotifyClientTerminationRequest{Group: &v2.Resource{}},
		"Heartbeat":               &v2.HeartbeatRequest{Group: &v2.Resource{ResourceNamespace: "ns"}, ClientType: v2.ClientType_PRODUCER},
	} {
		info := &grpclib.UnaryServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/" + method}
		if _, err := o.unary(context.Background(), req, info, func(context.Context, any) (any, error) {
			return &v2.HeartbeatResponse{Status: ok}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if g, ok := m["group"]; ok {
			t.Errorf("%s line has group=%q for a Resource with no name: %s", m["rpc"], g, l)
		}
	}
	if n := strings.Count(logs.String(), "\n"); n != 2 {
		t.Fatalf("%d access lines, want 2:\n%s", n, logs.String())
	}
}
