package otel

import (
	"context"
	"errors"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TraceBroker returns b with a span around each call made within a
// recorded request span (calls outside one, such as background renewals,
// and calls of unsampled requests go straight to b). kind is
// trace.SpanKindClient for a broker reached over the network (cluster
// mode) and trace.SpanKindInternal for the embedded engine (local mode).
// The decorator is a [ports.Broker] only: wire it where the application
// takes its broker, not in place of the adapter's other ports.
func TraceBroker(b ports.Broker, tracer trace.Tracer, kind trace.SpanKind) ports.Broker {
	if tracer == nil {
		return b
	}
	return &tracedBroker{b: b, tracer: tracer, kind: kind}
}

type tracedBroker struct {
	b      ports.Broker
	tracer trace.Tracer
	kind   trace.SpanKind
}

func (t *tracedBroker) start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	return t.tracer.Start(ctx, name, trace.WithSpanKind(t.kind), trace.WithAttributes(append(attrs, observe.SystemRocketMQ)...))
}

func end(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, domain.ReasonOf(err).String())
		span.RecordError(err)
	}
	span.End()
}

func (t *tracedBroker) Route(ctx context.Context, topic string) (ports.Route, error) {
	ctx, span := t.start(ctx, "broker route", observe.KeyDestination.String(topic))
	r, err := t.b.Route(ctx, topic)
	end(span, err)
	return r, err
}

func (t *tracedBroker) Send(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
	ctx, span := t.start(ctx, "broker send "+q.Topic, observe.KeyDestination.String(q.Topic), observe.KeyPartition.String(itoa(q.QueueID)),
		observe.KeyBrokerName.String(q.BrokerName), observe.KeyBatchCount.Int(len(msgs)), observe.OpSend)
	r, err := t.b.Send(ctx, q, msgs)
	if span != nil && err == nil && len(r) == 1 {
		span.SetAttributes(observe.KeyMessageID.String(r[0].MessageID), attribute.Int64("messaging.rocketmq.queue_offset", r[0].QueueOffset))
	}
	end(span, err)
	return r, err
}

func (t *tracedBroker) Pop(ctx context.Context, req ports.PopRequest) ([]domain.StoredMessage, error) {
	ctx, span := t.start(ctx, "broker pop "+req.Topic, observe.KeyDestination.String(req.Topic), observe.KeyConsumerGroup.String(req.Group),
		observe.KeyBrokerName.String(req.BrokerName), observe.KeyPartition.String(itoa(req.QueueID)), observe.OpReceive,
		attribute.Int64("messaging.rocketmq.long_polling_timeout_ms", req.PollTimeout.Milliseconds()))
	msgs, err := t.b.Pop(ctx, req)
	if span != nil {
		span.SetAttributes(observe.KeyBatchCount.Int(len(msgs)))
	}
	end(span, err)
	return msgs, err
}

func (t *tracedBroker) Ack(ctx context.Context, req ports.AckRequest) error {
	ctx, span := t.start(ctx, "broker ack "+req.Topic, ackAttrs(req)...)
	err := t.b.Ack(ctx, req)
	end(span, err)
	return err
}

func (t *tracedBroker) AckBatch(ctx context.Context, reqs []ports.AckRequest) []error {
	ctx, span := t.start(ctx, "broker ack", observe.KeyBatchCount.Int(len(reqs)), observe.OpSettle)
	errs := t.b.AckBatch(ctx, reqs)
	end(span, firstError(errs))
	return errs
}

func (t *tracedBroker) ChangeInvisible(ctx context.Context, req ports.ChangeInvisibleRequest) (domain.ReceiptHandle, error) {
	ctx, span := t.start(ctx, "broker change_invisible "+req.Topic, ackAttrs(req.AckRequest)...)
	h, err := t.b.ChangeInvisible(ctx, req)
	end(span, err)
	return h, err
}

func (t *tracedBroker) ChangeInvisibleBatch(ctx context.Context, reqs []ports.ChangeInvisibleRequest) ([]domain.ReceiptHandle, []error) {
	ctx, span := t.start(ctx, "broker change_invisible", observe.KeyBatchCount.Int(len(reqs)), observe.OpSettle)
	hs, errs := t.b.ChangeInvisibleBatch(ctx, reqs)
	end(span, firstError(errs))
	return hs, errs
}

func (t *tracedBroker) ForwardToDeadLetter(ctx context.Context, req ports.AckRequest) error {
	ctx, span := t.start(ctx, "broker forward_to_dlq "+req.Topic, ackAttrs(req)...)
	err := t.b.ForwardToDeadLetter(ctx, req)
	if refused := (*ports.ForwardRefusedError)(nil); errors.As(err, &refused) {
		end(span, refused.Err) // the client's answer; the application audits the refusal
		return err
	}
	end(span, err)
	return err
}

func ackAttrs(req ports.AckRequest) []attribute.KeyValue {
	return []attribute.KeyValue{observe.KeyDestination.String(req.Topic), observe.KeyConsumerGroup.String(req.Group),
		observe.KeyMessageID.String(req.MessageID), observe.OpSettle}
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func itoa(i int32) string {
	if i < 0 {
		return "any"
	}
	return strconv.Itoa(int(i))
}
