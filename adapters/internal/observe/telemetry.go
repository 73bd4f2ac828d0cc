package observe

import (
	"context"
	"encoding/hex"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.30.0"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry is what an inbound adapter traces, measures and logs with. A
// nil *Telemetry, like one with a nil Tracer and nil Metrics, records
// nothing.
type Telemetry struct {
	// Tracer starts request spans; nil when tracing is off.
	Tracer trace.Tracer
	// Metrics records the proxy's metrics; nil when metrics are off.
	Metrics *Metrics
	// AccessLog logs one line per request.
	AccessLog bool
	// LogBodies lets access log lines show message bodies (cut short);
	// a debugging switch, off by default.
	LogBodies bool
}

// Tracing reports whether requests are traced.
func (t *Telemetry) Tracing() bool { return t != nil && t.Tracer != nil }

// Measuring reports whether metrics are recorded.
func (t *Telemetry) Measuring() bool { return t != nil && t.Metrics != nil }

// Active reports whether anything is traced, measured or logged per
// request.
func (t *Telemetry) Active() bool {
	return t != nil && (t.Tracer != nil || t.Metrics != nil || t.AccessLog)
}

// Span attributes: OpenTelemetry's messaging conventions (semconv 1.30),
// plus the RocketMQ keys the official C++ client sets on its spans, so that
// a backend can join client and proxy spans on either.
var (
	SystemRocketMQ     = semconv.MessagingSystemRocketmq
	KeyOperationType   = semconv.MessagingOperationTypeKey
	KeyOperationName   = semconv.MessagingOperationNameKey
	KeyDestination     = semconv.MessagingDestinationNameKey
	KeyConsumerGroup   = semconv.MessagingConsumerGroupNameKey
	KeyClientID        = semconv.MessagingClientIDKey
	KeyMessageID       = semconv.MessagingMessageIDKey
	KeyBodySize        = semconv.MessagingMessageBodySizeKey
	KeyBatchCount      = semconv.MessagingBatchMessageCountKey
	KeyPartition       = semconv.MessagingDestinationPartitionIDKey
	KeyNamespace       = semconv.MessagingRocketmqNamespaceKey
	KeyMessageType     = semconv.MessagingRocketmqMessageTypeKey
	KeyMessageTag      = semconv.MessagingRocketmqMessageTagKey
	KeyMessageKeys     = semconv.MessagingRocketmqMessageKeysKey
	KeyMessageGroup    = semconv.MessagingRocketmqMessageGroupKey
	KeyDeliveryTime    = semconv.MessagingRocketmqMessageDeliveryTimestampKey
	KeyRPCSystem       = semconv.RPCSystemKey
	KeyRPCService      = semconv.RPCServiceKey
	KeyRPCMethod       = semconv.RPCMethodKey
	KeyGRPCStatusCode  = semconv.RPCGRPCStatusCodeKey
	KeyLegacyGroup     = attribute.Key("messaging.rocketmq.client_group")
	KeyLegacyClientID  = attribute.Key("messaging.rocketmq.client_id")
	KeyStatusCode      = attribute.Key("rocketmq.status.code")
	KeyStatusMessage   = attribute.Key("rocketmq.status.message")
	KeyDeliveryAttempt = attribute.Key("messaging.rocketmq.message.delivery_attempt")
	KeyBrokerName      = attribute.Key("messaging.rocketmq.broker.name")
)

// Operation types of the messaging conventions.
var (
	OpSend    = semconv.MessagingOperationTypeSend
	OpReceive = semconv.MessagingOperationTypeReceive
	OpSettle  = semconv.MessagingOperationTypeSettle
)

var traceContext = propagation.TraceContext{}

// TraceParent formats sc as a W3C traceparent header value
// (00-<trace id>-<span id>-<flags>), the form RocketMQ clients put in a
// message's trace_context system property; "" for an invalid context.
func TraceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	copy(b[:], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

// ParseTraceParent parses a W3C traceparent value (and an optional
// tracestate); ok is false when it is not one.
func ParseTraceParent(traceparent, tracestate string) (sc trace.SpanContext, ok bool) {
	if traceparent == "" {
		return trace.SpanContext{}, false
	}
	c := propagation.MapCarrier{"traceparent": traceparent}
	if tracestate != "" {
		c["tracestate"] = tracestate
	}
	sc = trace.SpanContextFromContext(traceContext.Extract(context.Background(), c))
	return sc, sc.IsValid()
}
