package grpc

import (
	"net/netip"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func TestMergeSettings(t *testing.T) {
	consumer := v2.ClientType_PUSH_CONSUMER
	client := &v2.Settings{
		ClientType: &consumer,
		PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{
			Group:              &v2.Resource{Name: "g"},
			ReceiveBatchSize:   ptr(int32(16)),
			LongPollingTimeout: durationpb.New(30 * time.Second),
		}},
	}
	server := application.ServerSettings{MaxAttempts: 17, Backoff: domain.RetryPolicy{Delays: []time.Duration{time.Second, 5 * time.Second}},
		FIFO: true, ReceiveBatchSize: 32, LongPollingTimeout: 20 * time.Second}

	t.Run("unknown group keeps the client's values", func(t *testing.T) {
		got := mergeSettings(client, server)
		sub := got.GetSubscription()
		if sub.GetReceiveBatchSize() != 16 || sub.GetLongPollingTimeout().AsDuration() != 30*time.Second || !sub.GetFifo() {
			t.Fatalf("subscription %v", sub)
		}
		if got.GetBackoffPolicy().GetMaxAttempts() != 17 || len(got.GetBackoffPolicy().GetCustomizedBackoff().GetNext()) != 2 {
			t.Fatalf("backoff %v", got.GetBackoffPolicy())
		}
		if client.GetBackoffPolicy() != nil {
			t.Fatal("the client's settings were modified")
		}
	})
	t.Run("known group imposes the server's", func(t *testing.T) {
		server.GroupKnown = true
		sub := mergeSettings(client, server).GetSubscription()
		if sub.GetReceiveBatchSize() != 32 || sub.GetLongPollingTimeout().AsDuration() != 20*time.Second {
			t.Fatalf("subscription %v", sub)
		}
	})
	t.Run("producers get an exponential policy and limits", func(t *testing.T) {
		producer := v2.ClientType_PRODUCER
		p := &v2.Settings{ClientType: &producer, PubSub: &v2.Settings_Publishing{Publishing: &v2.Publishing{}}}
		got := mergeSettings(p, application.ServerSettings{MaxAttempts: 3, Backoff: domain.RetryPolicy{Initial: 10 * time.Millisecond, Max: time.Second, Multiplier: 2},
			MaxBodySize: 4 << 20, ValidateMessageType: true})
		e := got.GetBackoffPolicy().GetExponentialBackoff()
		if e.GetInitial().AsDuration() != 10*time.Millisecond || e.GetMultiplier() != 2 || got.GetPublishing().GetMaxBodySize() != 4<<20 || !got.GetPublishing().GetValidateMessageType() {
			t.Fatalf("producer settings %v", got)
		}
		if got.GetMetric() == nil || got.GetMetric().GetOn() {
			t.Fatal("metric must be present and off")
		}
	})
}

func TestToProtoMessageDigestAndEncoding(t *testing.T) {
	m := &domain.StoredMessage{Message: domain.Message{Topic: "ns%t", Body: []byte("hello"), Compressed: true, Group: "g"}, DeliveryAttempt: 2, QueueOffset: 7}
	p := toProtoMessage(m)
	if p.GetSystemProperties().GetBodyDigest().GetChecksum() != "5D41402ABC4B2A76B9719D911017C592" {
		t.Fatalf("digest %s", p.GetSystemProperties().GetBodyDigest().GetChecksum())
	}
	if p.GetSystemProperties().GetBodyEncoding() != v2.Encoding_GZIP || p.GetSystemProperties().GetMessageType() != v2.MessageType_FIFO {
		t.Fatalf("encoding/type %v", p.GetSystemProperties())
	}
	if p.GetTopic().GetName() != "t" || p.GetTopic().GetResourceNamespace() != "ns" {
		t.Fatalf("topic %v", p.GetTopic())
	}
}

// Message times reach consumers to the millisecond, as RocketMQ keeps them:
// local mode stores the nanoseconds a producer sent.
func TestToProtoMessageTimesInMilliseconds(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 10, 11, 123_456_789, time.UTC)
	m := &domain.StoredMessage{Message: domain.Message{Topic: "t", BornAt: at, DeliverAt: at.Add(time.Hour)}, StoredAt: at.Add(time.Second)}
	sp := toProtoMessage(m).GetSystemProperties()
	want := func(name string, got, exp time.Time) {
		t.Helper()
		if !got.Equal(exp) {
			t.Errorf("%s %v, want %v", name, got, exp)
		}
	}
	ms := at.Truncate(time.Millisecond)
	want("born", sp.GetBornTimestamp().AsTime(), ms)
	want("store", sp.GetStoreTimestamp().AsTime(), ms.Add(time.Second))
	want("delivery", sp.GetDeliveryTimestamp().AsTime(), ms.Add(time.Hour))
}

// TestMessageTimesSetButZero: a set born or delivery timestamp is never
// read as absent, and one that is no instant is refused, with the code of
// its field; an absent one stays absent.
func TestMessageTimesSetButZero(t *testing.T) {
	now := time.Now()
	limits := domain.DefaultLimits()
	cases := []struct {
		name     string
		delivery *timestamppb.Timestamp
		born     *timestamppb.Timestamp
		want     domain.Reason // 0: valid
		typ      domain.MessageType
	}{
		{"absent", nil, nil, 0, domain.MessageTypeNormal},
		{"delivery 0001-01-01", timestamppb.New(time.Time{}), nil, domain.ReasonIllegalDeliveryTime, domain.MessageTypeDelay},
		{"delivery nanos invalid", &timestamppb.Timestamp{Seconds: now.Unix(), Nanos: -1}, nil, domain.ReasonIllegalDeliveryTime, domain.MessageTypeDelay},
		{"delivery past protobuf", &timestamppb.Timestamp{Seconds: 1 << 60}, nil, domain.ReasonIllegalDeliveryTime, domain.MessageTypeDelay},
		{"delivery 1969", &timestamppb.Timestamp{Seconds: -1}, nil, domain.ReasonIllegalDeliveryTime, domain.MessageTypeDelay},
		{"delivery epoch", &timestamppb.Timestamp{}, nil, 0, domain.MessageTypeDelay},
		{"delivery past", timestamppb.New(now.Add(-time.Hour)), nil, 0, domain.MessageTypeDelay},
		{"born 0001-01-01", nil, timestamppb.New(time.Time{}), domain.ReasonBadRequest, domain.MessageTypeNormal},
		{"born 1878", nil, timestamppb.New(time.Date(1878, 1, 1, 0, 0, 0, 0, time.UTC)), domain.ReasonBadRequest, domain.MessageTypeNormal},
		{"born nanos invalid", nil, &timestamppb.Timestamp{Seconds: now.Unix(), Nanos: 1e9}, domain.ReasonBadRequest, domain.MessageTypeNormal},
		{"born past protobuf", nil, &timestamppb.Timestamp{Seconds: -1 << 60}, domain.ReasonBadRequest, domain.MessageTypeNormal},
		{"born 9999", nil, timestamppb.New(time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)), 0, domain.MessageTypeNormal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pm := &v2.Message{Topic: &v2.Resource{Name: "T"}, Body: []byte("b"), SystemProperties: &v2.SystemProperties{
				MessageId: "01AB", DeliveryTimestamp: c.delivery, BornTimestamp: c.born}}
			m := toDomainMessage(pm, ports.RequestInfo{})
			if m.Type() != c.typ {
				t.Errorf("type %v, want %v", m.Type(), c.typ)
			}
			err := limits.ValidateMessage(&m, now)
			if c.want == 0 && err != nil || c.want != 0 && !domain.HasReason(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestBornHostOfTheConnection: a message sent without a born host gets
// the client's address and port, as the Apache proxy writes it (Guava's
// HostAndPort of the connection's remote address).
func TestBornHostOfTheConnection(t *testing.T) {
	for addr, want := range map[string]string{
		"10.1.2.3:35182":          "10.1.2.3:35182",
		"[::ffff:10.1.2.3]:35182": "10.1.2.3:35182",
		"[::1]:35182":             "[::1]:35182",
	} {
		info := ports.RequestInfo{RemoteAddr: netip.MustParseAddrPort(addr)}
		m := toDomainMessage(&v2.Message{SystemProperties: &v2.SystemProperties{}}, info)
		if m.BornHost != want {
			t.Errorf("from %s: born host %q, want %q", addr, m.BornHost, want)
		}
		if blank := toDomainMessage(&v2.Message{SystemProperties: &v2.SystemProperties{BornHost: " "}}, info); blank.BornHost != want {
			t.Errorf("from %s with a blank born host: %q, want %q", addr, blank.BornHost, want)
		}
		sent := toDomainMessage(&v2.Message{SystemProperties: &v2.SystemProperties{BornHost: "client-host"}}, info)
		if sent.BornHost != "client-host" {
			t.Errorf("from %s: the client's born host became %q", addr, sent.BornHost)
		}
	}
}

// TestToProtoMessageRendersEveryField: every field a delivered message
// carries reaches the client's message, the optional ones only when set,
// and the whole message is one allocation beside its digest's text.
func TestToProtoMessageRendersEveryField(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 10, 11, 123_456_789, time.UTC)
	full := &domain.StoredMessage{Message: domain.Message{Topic: "ns%t", Body: []byte("hello"), Tag: "tag", Keys: []string{"k1", "k2"},
		ID: "01AB", Group: "g", DeliverAt: at.Add(time.Hour), TraceContext: "00-trace", BornHost: "10.0.0.1", BornAt: at,
		Properties: map[string]string{"a": "1"}}, QueueID: 3, QueueOffset: 7, StoredAt: at.Add(time.Second), StoreHost: "10.0.0.2:10911",
		ReceiptHandle: "handle", DeliveryAttempt: 2, DeadLetter: &domain.DeadLetterOrigin{Topic: "t", MessageID: "01CD"}}
	ms := at.Truncate(time.Millisecond)
	want := &v2.Message{Topic: &v2.Resource{ResourceNamespace: "ns", Name: "t"}, UserProperties: map[string]string{"a": "1"},
		Body: []byte("hello"), SystemProperties: &v2.SystemProperties{Tag: ptr("tag"), Keys: []string{"k1", "k2"}, MessageId: "01AB",
			BodyDigest: &v2.Digest{Type: v2.DigestType_MD5, Checksum: "5D41402ABC4B2A76B9719D911017C592"}, BodyEncoding: v2.Encoding_IDENTITY,
			MessageType: v2.MessageType_DELAY, BornTimestamp: timestamppb.New(ms), BornHost: "10.0.0.1",
			StoreTimestamp: timestamppb.New(ms.Add(time.Second)), StoreHost: "10.0.0.2:10911", DeliveryTimestamp: timestamppb.New(ms.Add(time.Hour)),
			ReceiptHandle: ptr("handle"), QueueId: 3, QueueOffset: ptr(int64(7)), DeliveryAttempt: ptr(int32(2)), MessageGroup: ptr("g"),
			TraceContext: ptr("00-trace"), DeadLetterQueue: &v2.DeadLetterQueue{Topic: "t", MessageId: "01CD"}}}
	if got := toProtoMessage(full); !proto.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	bare := &domain.StoredMessage{Message: domain.Message{Topic: "t", Body: []byte("hello"), ID: "01AB"}}
	want = &v2.Message{Topic: &v2.Resource{Name: "t"}, Body: []byte("hello"), SystemProperties: &v2.SystemProperties{MessageId: "01AB",
		BodyDigest: &v2.Digest{Type: v2.DigestType_MD5, Checksum: "5D41402ABC4B2A76B9719D911017C592"}, BodyEncoding: v2.Encoding_IDENTITY,
		MessageType: v2.MessageType_NORMAL, QueueOffset: ptr(int64(0)), DeliveryAttempt: ptr(int32(0))}}
	if got := toProtoMessage(bare); !proto.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	full.DeadLetter, full.DeliverAt = nil, time.Time{}
	if n := testing.AllocsPerRun(100, func() { toProtoMessage(full) }); n != 1 {
		t.Errorf("toProtoMessage allocates %v times, want 1 (the message with its digest's text)", n)
	}
	if n := testing.AllocsPerRun(100, func() { messageFrame(full) }); n != 1 {
		t.Errorf("messageFrame allocates %v times, want 1 (the frame with its message)", n)
	}
}

func TestMessageFrameCarriesTheMessage(t *testing.T) {
	m := &domain.StoredMessage{Message: domain.Message{Topic: "t", Body: []byte("hello"), ID: "01AB"}, ReceiptHandle: "h"}
	want := &v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_Message{Message: toProtoMessage(m)}}
	if got := messageFrame(m); !proto.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Each frame has its own checksum text.
	other := &domain.StoredMessage{Message: domain.Message{Topic: "t", Body: []byte("world"), ID: "01AC"}}
	a, b := messageFrame(m).GetMessage(), messageFrame(other).GetMessage()
	if got, want := a.GetSystemProperties().GetBodyDigest().GetChecksum(), "5D41402ABC4B2A76B9719D911017C592"; got != want {
		t.Errorf("first frame's checksum %s after a second frame, want %s", got, want)
	}
	if got, want := b.GetSystemProperties().GetBodyDigest().GetChecksum(), "7D793037A0760186574B0282F2F435E7"; got != want {
		t.Errorf("second frame's checksum %s, want %s", got, want)
	}
}
