package grpc

import (
	"crypto/md5"
	"net/netip"
	"time"
	"unsafe"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// resourceName qualifies a Resource with its namespace (or the request's
// namespace header when the resource carries none).
func resourceName(r *v2.Resource, info ports.RequestInfo) string {
	ns := r.GetResourceNamespace()
	if ns == "" {
		ns = info.Namespace
	}
	return domain.WrapNamespace(ns, r.GetName())
}

// sameTopicResource refuses a batch whose messages name their topic with
// different Resources, as the Apache proxy compares them: {"", "ns%T"}
// and {"ns", "T"} qualify to one topic, but the request is corrupt all the
// same. (Upstream compares while it validates each message in turn; here
// the comparison comes first, so a batch with both a mismatch and an
// earlier invalid message gets MESSAGE_CORRUPTED.)
func sameTopicResource(msgs []*v2.Message) error {
	for i := 1; i < len(msgs); i++ {
		a, b := msgs[0].GetTopic(), msgs[i].GetTopic()
		if a.GetResourceNamespace() != b.GetResourceNamespace() || a.GetName() != b.GetName() {
			return domain.Errorf(domain.ReasonMessageCorrupted, "topic in message is not same")
		}
	}
	return nil
}

// toResource splits a qualified name back into a Resource.
func toResource(name string) *v2.Resource {
	ns, bare := domain.SplitNamespace(name)
	return &v2.Resource{ResourceNamespace: ns, Name: bare}
}

func toDomainMessage(m *v2.Message, info ports.RequestInfo) domain.Message {
	sp := m.GetSystemProperties()
	out := domain.Message{
		Topic:          resourceName(m.GetTopic(), info),
		Body:           m.GetBody(),
		Compressed:     sp.GetBodyEncoding() == v2.Encoding_GZIP,
		Tag:            sp.GetTag(),
		Keys:           sp.GetKeys(),
		ID:             sp.GetMessageId(),
		Group:          sp.GetMessageGroup(),
		Transactional:  sp.GetMessageType() == v2.MessageType_TRANSACTION,
		TraceContext:   sp.GetTraceContext(),
		BornHost:       sp.GetBornHost(),
		ReconsumeTimes: sp.GetDeliveryAttempt(),
		Properties:     m.GetUserProperties(),
		LiteTopic:      sp.GetLiteTopic(),
		Priority:       sp.Priority,
	}
	out.DeliverAt = messageTime(sp.GetDeliveryTimestamp())
	if sp.GetOrphanedTransactionRecoveryDuration() != nil {
		out.TransactionRecovery = sp.GetOrphanedTransactionRecoveryDuration().AsDuration()
	}
	out.BornAt = messageTime(sp.GetBornTimestamp())
	if domain.IsBlank(out.BornHost) && info.RemoteAddr.IsValid() {
		// The client's address and port, as the Apache proxy writes it
		// (Guava's HostAndPort of the connection's remote address).
		out.BornHost = netip.AddrPortFrom(info.RemoteAddr.Addr().Unmap(), info.RemoteAddr.Port()).String()
	}
	return out
}

// messageTime converts a message's born or delivery timestamp: zero when
// absent; a set one that is not a valid instant, or that time.Time would
// read as "not set" (0001-01-01T00:00:00Z), is [domain.UnrepresentableTime],
// which validation refuses with the code of its field.
func messageTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	if ts.CheckValid() != nil {
		return domain.UnrepresentableTime
	}
	if t := ts.AsTime(); !t.IsZero() {
		return t
	}
	return domain.UnrepresentableTime
}

var messageTypes = map[domain.MessageType]v2.MessageType{
	domain.MessageTypeNormal:      v2.MessageType_NORMAL,
	domain.MessageTypeFIFO:        v2.MessageType_FIFO,
	domain.MessageTypeDelay:       v2.MessageType_DELAY,
	domain.MessageTypeTransaction: v2.MessageType_TRANSACTION,
}

func toProtoMessageType(t domain.MessageType) v2.MessageType {
	if p, ok := messageTypes[t]; ok {
		return p
	}
	return v2.MessageType_MESSAGE_TYPE_UNSPECIFIED
}

// protoMessage is what toProtoMessage builds for one message, in one
// allocation: the message, its parts, the values its optional fields point
// to (but the delivery time, which only delay messages have) and the text
// of its body's checksum.
type protoMessage struct {
	msg                v2.Message
	sp                 v2.SystemProperties
	digest             v2.Digest
	topic              v2.Resource
	born, stored       timestamppb.Timestamp
	queueOffset        int64
	attempt            int32
	tag, handle, group string
	trace              string
	// checksum holds the bytes of digest.Checksum: written once, before
	// the string is made, and never again.
	checksum [2 * md5.Size]byte
}

// toProtoMessage renders a delivered message as the Apache proxy does.
func toProtoMessage(m *domain.StoredMessage) *v2.Message {
	pm := new(protoMessage)
	fillProtoMessage(pm, m)
	return &pm.msg
}

// fillProtoMessage renders m into pm, which must be zero (see
// toProtoMessage).
func fillProtoMessage(pm *protoMessage, m *domain.StoredMessage) {
	pm.queueOffset, pm.attempt = m.QueueOffset, m.DeliveryAttempt
	sp := &pm.sp
	pm.digest.Type, pm.digest.Checksum = v2.DigestType_MD5, hexChecksum(&pm.checksum, m.Body)
	sp.Keys, sp.MessageId, sp.BodyDigest, sp.BodyEncoding = m.Keys, m.ID, &pm.digest, v2.Encoding_IDENTITY
	sp.MessageType, sp.BornHost, sp.StoreHost, sp.QueueId = toProtoMessageType(m.Type()), m.BornHost, m.StoreHost, m.QueueID
	sp.QueueOffset, sp.DeliveryAttempt = &pm.queueOffset, &pm.attempt
	if m.Compressed {
		sp.BodyEncoding = v2.Encoding_GZIP
	}
	if m.Tag != "" {
		pm.tag = m.Tag
		sp.Tag = &pm.tag
	}
	if !m.BornAt.IsZero() {
		sp.BornTimestamp = setMillis(&pm.born, m.BornAt)
	}
	if !m.StoredAt.IsZero() {
		sp.StoreTimestamp = setMillis(&pm.stored, m.StoredAt)
	}
	if !m.DeliverAt.IsZero() {
		sp.DeliveryTimestamp = millis(m.DeliverAt)
	}
	if m.ReceiptHandle != "" {
		pm.handle = m.ReceiptHandle
		sp.ReceiptHandle = &pm.handle
	}
	if m.Group != "" {
		pm.group = m.Group
		sp.MessageGroup = &pm.group
	}
	if m.TraceContext != "" {
		pm.trace = m.TraceContext
		sp.TraceContext = &pm.trace
	}
	if m.DeadLetter != nil {
		sp.DeadLetterQueue = &v2.DeadLetterQueue{Topic: m.DeadLetter.Topic, MessageId: m.DeadLetter.MessageID}
	}
	pm.topic.ResourceNamespace, pm.topic.Name = domain.SplitNamespace(m.Topic) // as toResource
	pm.msg.Topic, pm.msg.UserProperties, pm.msg.SystemProperties, pm.msg.Body = &pm.topic, m.Properties, sp, m.Body
}

// hexChecksum writes body's MD5 in upper-case hex (the clients verify it
// case-sensitively) into
// text and returns it as a string that shares text's memory: text must not
// change afterwards.
func hexChecksum(text *[2 * md5.Size]byte, body []byte) string {
	const upperHex = "0123456789ABCDEF"
	sum := md5.Sum(body)
	for i, c := range sum {
		text[2*i], text[2*i+1] = upperHex[c>>4], upperHex[c&0x0f]
	}
	return unsafe.String(&text[0], len(text))
}

func ptr[T any](v T) *T { return &v }

// millis is t to the millisecond, as RocketMQ keeps message times (born,
// store and delivery timestamps are Java longs of milliseconds): local
// mode stores the nanoseconds a client sent, and its consumers must see
// what those of cluster mode and the Apache proxy see.
func millis(t time.Time) *timestamppb.Timestamp {
	return timestamppb.New(t.Truncate(time.Millisecond))
}

// setMillis sets ts to millis(t) and returns it.
func setMillis(ts *timestamppb.Timestamp, t time.Time) *timestamppb.Timestamp {
	t = t.Truncate(time.Millisecond)
	ts.Seconds, ts.Nanos = t.Unix(), int32(t.Nanosecond())
	return ts
}

func toPermission(p domain.Permission) v2.Permission {
	switch {
	case p.Readable() && p.Writable():
		return v2.Permission_READ_WRITE
	case p.Readable():
		return v2.Permission_READ
	case p.Writable():
		return v2.Permission_WRITE
	default:
		return v2.Permission_NONE
	}
}

// advertisedEndpoints is what routes tell clients to dial: the addresses the
// client used (port replaced by ours unless configured otherwise), or this
// connection's local address when the client sent none.
func advertisedEndpoints(req *v2.Endpoints, local netip.AddrPort, port int, keepPort bool) *v2.Endpoints {
	if len(req.GetAddresses()) == 0 {
		scheme := v2.AddressScheme_IPv4
		if local.Addr().Unmap().Is6() {
			scheme = v2.AddressScheme_IPv6
		}
		return &v2.Endpoints{Scheme: scheme, Addresses: []*v2.Address{{Host: local.Addr().Unmap().String(), Port: int32(port)}}}
	}
	out := &v2.Endpoints{Scheme: req.GetScheme()}
	for _, a := range req.GetAddresses() {
		p := int32(port)
		if keepPort {
			p = a.GetPort()
		}
		out.Addresses = append(out.Addresses, &v2.Address{Host: a.GetHost(), Port: p})
	}
	return out
}

func toFilterExpression(f *v2.FilterExpression) filter.Expression {
	t := filter.TypeTag
	if f.GetType() == v2.FilterType_SQL {
		t = filter.TypeSQL92
	}
	return filter.Expression{Type: t, Text: f.GetExpression()}
}

var clientTypes = map[v2.ClientType]application.ClientType{
	v2.ClientType_PRODUCER:             application.ClientTypeProducer,
	v2.ClientType_PUSH_CONSUMER:        application.ClientTypePushConsumer,
	v2.ClientType_SIMPLE_CONSUMER:      application.ClientTypeSimpleConsumer,
	v2.ClientType_PULL_CONSUMER:        application.ClientTypePullConsumer,
	v2.ClientType_LITE_PUSH_CONSUMER:   application.ClientTypeLitePushConsumer,
	v2.ClientType_LITE_SIMPLE_CONSUMER: application.ClientTypeLiteSimpleConsumer,
}

// toClientSettings converts a client's settings. A client type the
// protocol does not define is refused (the Apache proxy fails on it:
// protobuf-java cannot number an unrecognized enum value), not taken for
// an unspecified one.
func toClientSettings(s *v2.Settings, info ports.RequestInfo) (application.ClientSettings, error) {
	if _, ok := v2.ClientType_name[int32(s.GetClientType())]; !ok {
		return application.ClientSettings{}, domain.Errorf(domain.ReasonUnrecognizedClientType,
			"client type %d is not one the protocol defines; use PRODUCER, PUSH_CONSUMER or SIMPLE_CONSUMER", s.GetClientType())
	}
	out := application.ClientSettings{ClientType: clientTypes[s.GetClientType()]}
	if s.GetRequestTimeout() != nil {
		out.RequestTimeout = s.GetRequestTimeout().AsDuration()
	}
	if p := s.GetPublishing(); p != nil {
		ps := &application.PublishingSettings{}
		for _, t := range p.GetTopics() {
			ps.Topics = append(ps.Topics, resourceName(t, info))
		}
		out.Publishing = ps
	}
	if sub := s.GetSubscription(); sub != nil {
		ss := &application.SubscriptionSettings{Group: resourceName(sub.GetGroup(), info)}
		for _, e := range sub.GetSubscriptions() {
			ss.Entries = append(ss.Entries, application.SubscriptionEntry{
				Topic:  resourceName(e.GetTopic(), info),
				Filter: toFilterExpression(e.GetExpression()),
			})
		}
		out.Subscription = ss
	}
	return out, nil
}

// mergeSettings overlays the server's values on the client's settings, as
// the Apache proxy's settings reply does.
func mergeSettings(client *v2.Settings, s application.ServerSettings) *v2.Settings {
	out := cloneSettings(client)
	bp := &v2.RetryPolicy{MaxAttempts: s.MaxAttempts}
	if len(s.Backoff.Delays) > 0 {
		next := make([]*durationpb.Duration, len(s.Backoff.Delays))
		for i, d := range s.Backoff.Delays {
			next[i] = durationpb.New(d)
		}
		bp.Strategy = &v2.RetryPolicy_CustomizedBackoff{CustomizedBackoff: &v2.CustomizedBackoff{Next: next}}
	} else {
		bp.Strategy = &v2.RetryPolicy_ExponentialBackoff{ExponentialBackoff: &v2.ExponentialBackoff{
			Initial:    durationpb.New(s.Backoff.Initial),
			Max:        durationpb.New(s.Backoff.Max),
			Multiplier: float32(s.Backoff.Multiplier),
		}}
	}
	out.BackoffPolicy = bp
	if p := out.GetPublishing(); p != nil {
		p.MaxBodySize = int32(min(s.MaxBodySize, 1<<31-1))
		p.ValidateMessageType = s.ValidateMessageType
	}
	if sub := out.GetSubscription(); sub != nil {
		sub.Fifo = ptr(s.FIFO)
		if s.GroupKnown || sub.ReceiveBatchSize == nil || sub.GetReceiveBatchSize() == 0 {
			sub.ReceiveBatchSize = ptr(s.ReceiveBatchSize)
		}
		if s.GroupKnown || sub.LongPollingTimeout == nil || sub.GetLongPollingTimeout().AsDuration() == 0 {
			sub.LongPollingTimeout = durationpb.New(s.LongPollingTimeout)
		}
	}
	out.Metric = &v2.Metric{On: false}
	return out
}

func cloneSettings(s *v2.Settings) *v2.Settings {
	return proto.Clone(s).(*v2.Settings)
}

// durationField converts the Duration field a request names field (nil
// is 0). One that is no valid protobuf Duration (seconds beyond ±10,000
// years, nanos beyond a second or of the other sign than the seconds) is
// refused with reason: read as it stands it would be another duration
// (30 s and -1 ns is 30 s minus a nanosecond) than the client meant, and
// the Apache proxy fails converting it (INTERNAL_SERVER_ERROR).
func durationField(d *durationpb.Duration, reason domain.Reason, field string) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, domain.Errorf(reason, "%s {seconds: %d, nanos: %d} is no valid Duration: %v", field, d.GetSeconds(), d.GetNanos(), err)
	}
	return d.AsDuration(), nil
}
