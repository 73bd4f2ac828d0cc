package cluster

import (
	"bytes"
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// The benchmarks below run the adapter's produce and consume calls over a
// fake broker on a loopback socket (see startFakeSocket): the allocations
// counted include the fake's own per request (reading the request, encoding
// its answer), which do not change with the adapter.

// BenchmarkSendAlone is one 1 KiB send at a time through Broker.Send (the
// send line with a free flight, as a lone sender's), answered at once.
func BenchmarkSendAlone(b *testing.B) {
	f := &fakeSendBroker{}
	br := startSendBroker(b, f, func(*Config) {})
	ctx := context.Background()
	q := domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: 1}
	msgs := []domain.Message{{Topic: "T", Body: bytes.Repeat([]byte("x"), 1024), Tag: "tag-a",
		ID: "0100155D0A1B2C3D4E5F60718293A4B5C6", BornHost: "10.0.0.7", BornAt: time.UnixMilli(1764763200123)}}
	if _, err := br.Send(ctx, q, msgs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Send(ctx, q, msgs); err != nil {
			b.Fatal(err)
		}
	}
}

// popAnswerBody is a pop answer of n 1 KiB messages of topic T, queue 0,
// offsets 100.., as a 5.5.0 broker stores a message the Go client sent
// through a proxy; message i has tag tagOf(i) (nil: "tag-a").
func popAnswerBody(tb testing.TB, n int, tagOf func(int) string) []byte {
	var body []byte
	for i := range n {
		tag := "tag-a"
		if tagOf != nil {
			tag = tagOf(i)
		}
		m := remoting.Message{MagicCode: remoting.MagicV1, QueueID: 0, QueueOffset: int64(100 + i), CommitLogOffset: int64(4096 * (i + 1)),
			BornTimestamp: 1764763200123, BornHost: netip.MustParseAddrPort("10.0.0.7:50000"), StoreTimestamp: 1764763200125,
			StoreHost: netip.MustParseAddrPort("127.0.0.1:10911"), Body: bytes.Repeat([]byte("x"), 1024), Topic: "T",
			Properties: remoting.PropertiesFromMap(map[string]string{"UNIQ_KEY": "0100155D0A1B2C3D4E5F6071829300" + strconv.Itoa(10+i),
				"TAGS": tag, "__BORNHOST": "10.0.0.7", "BORN_TIMESTAMP": "1764763200123", "CLUSTER": "DefaultCluster",
				"MIN_OFFSET": "0", "MAX_OFFSET": strconv.Itoa(100 + n)})}
		m.BodyCRC = remoting.BodyCRC(m.Body)
		var err error
		if body, err = remoting.AppendMessage(body, &m); err != nil {
			tb.Fatal(err)
		}
	}
	return body
}

// startPopBroker is a NameServer and broker b1 (topic T of 1 queue) behind
// one socket that answers every POP_MESSAGE with n messages (tagged by
// tagOf, see popAnswerBody) and every ack with SUCCESS, after passing it to
// onAck (when not nil).
func startPopBroker(tb testing.TB, n int, tagOf func(int) string, onAck func(*remoting.Command)) *Broker {
	body := popAnswerBody(tb, n, tagOf)
	offs := make([]string, n)
	for i := range offs {
		offs[i] = strconv.Itoa(100 + i)
	}
	f := startB1(tb, 1, rw, func(_ string, req, resp *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestPopMessage:
			resp.Fields = (&remoting.PopMessageResponseHeader{PopTime: time.Now().UnixMilli(), InvisibleTime: 60000, ReviveQid: 3, RestNum: 0,
				StartOffsetInfo: "0 0 100", MsgOffsetInfo: "0 0 " + strings.Join(offs, ",")}).AppendFields(nil)
			resp.Body = body
		case remoting.RequestAckMessage, remoting.RequestBatchAckMessage:
			if onAck != nil {
				onAck(req)
			}
		case remoting.RequestChangeMessageInvisibletime:
			var h remoting.ChangeInvisibleTimeRequestHeader
			_ = h.DecodeFields(req.Fields)
			resp.Fields = remoting.EncodeHeader(&remoting.ChangeInvisibleTimeResponseHeader{PopTime: time.Now().UnixMilli(), InvisibleTime: h.InvisibleTime, ReviveQid: 3})
		default:
			return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "not supported here")
		}
		return resp
	})
	cfg := DefaultConfig()
	cfg.NameServers = []string{f.addr}
	return newBroker(tb, cfg, nil)
}

var popBenchRequest = ports.PopRequest{Group: "G", Topic: "T", QueueID: -1, MaxMessages: 32, InvisibleTime: time.Minute,
	PollTimeout: time.Second, Filter: filter.All}

// BenchmarkPop is one POP_MESSAGE answered with 32 messages of 1 KiB,
// decoded into delivered messages with their receipt handles.
func BenchmarkPop(b *testing.B) {
	br := startPopBroker(b, 32, nil, nil)
	ctx := context.Background()
	if _, err := br.Pop(ctx, popBenchRequest); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		msgs, err := br.Pop(ctx, popBenchRequest)
		if err != nil || len(msgs) != 32 {
			b.Fatal(len(msgs), err)
		}
	}
}

// poppedForBench starts a fake broker of 32 messages, pops them and
// returns the broker with the first message's ack request.
func poppedForBench(b *testing.B) (*Broker, ports.AckRequest) {
	b.Helper()
	br := startPopBroker(b, 32, nil, nil)
	msgs, err := br.Pop(context.Background(), popBenchRequest)
	if err != nil {
		b.Fatal(err)
	}
	h, err := domain.ParseReceiptHandle(msgs[0].ReceiptHandle)
	if err != nil {
		b.Fatal(err)
	}
	return br, ports.AckRequest{Group: "G", Topic: "T", MessageID: msgs[0].ID, Handle: h}
}

// BenchmarkAck is one ACK_MESSAGE at a time (Broker.AckBatch of one
// delivery, as a client's AckMessage of one entry).
func BenchmarkAck(b *testing.B) {
	br, ack := poppedForBench(b)
	ctx := context.Background()
	reqs := []ports.AckRequest{ack}
	b.ReportAllocs()
	for b.Loop() {
		if errs := br.AckBatch(ctx, reqs); errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
}

// BenchmarkChangeInvisible is one CHANGE_MESSAGE_INVISIBLETIME at a time
// (Broker.ChangeInvisible, as a client's ChangeInvisibleDuration), the new
// receipt handle built from the broker's answer.
func BenchmarkChangeInvisible(b *testing.B) {
	br, ack := poppedForBench(b)
	ctx := context.Background()
	req := ports.ChangeInvisibleRequest{AckRequest: ack, InvisibleTime: 30 * time.Second}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.ChangeInvisible(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
