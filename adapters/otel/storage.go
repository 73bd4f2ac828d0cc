package otel

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
)

// StorageHooks turn the local broker's storage events into spans and a
// histogram; the composition root copies them into the engine's hooks
// (localbroker.Hooks has the same fields). A nil field observes nothing:
// Send and Durable are nil with tracing off, Fsync and DeadLetter with
// metrics off.
type StorageHooks struct {
	// Send starts the span of a send in the engine (check, encode, append
	// to the commit log, wait for durability); it returns the context the
	// send continues with and the function that ends the span.
	Send func(ctx context.Context, messages int) (context.Context, func(error))
	// Durable starts the span of waiting for an appended record to be as
	// durable as the flush policy promises (group commit: the fsync is
	// shared with other requests).
	Durable func(ctx context.Context) func(error)
	// Fsync records one fdatasync of the commit log.
	Fsync func(d time.Duration, err error)
	// DeadLetter counts a message the engine moved to a dead-letter queue
	// (or consumed instead, its body removed by retention), whatever asked
	// for the move (rocketmq_send_to_dlq_messages_total).
	DeadLetter func(topic, group string)
	// Ack counts a delivery the engine acked, once however often its ack
	// is repeated (rmqproxy_messages_acked_total); with it installed the
	// gRPC adapter no longer counts the ack entries it answers OK.
	Ack func(topic, group string)
	// TimerAdded and TimerDone count delay messages entering and leaving
	// the timing wheel (rocketmq_timer_enqueue_total, _dequeue_total);
	// TimerAdded records the delay (rocketmq_delay_message_latency).
	TimerAdded func(topic string, delay time.Duration)
	TimerDone  func(topic string)
}

// StorageHooks returns the hooks for the local broker's storage engine.
// Spans are made only within a recorded span (a sampled request).
func (p *Provider) StorageHooks() StorageHooks {
	var h StorageHooks
	if tr := p.tel.Tracer; tr != nil {
		h.Send = func(ctx context.Context, messages int) (context.Context, func(error)) {
			if !trace.SpanFromContext(ctx).IsRecording() {
				// Before the attributes: their slice escapes, one
				// allocation per send even when no span is made.
				return ctx, nil
			}
			return storeSpan(ctx, tr, "store send", attribute.Int("messaging.batch.message_count", messages))
		}
		h.Durable = func(ctx context.Context) func(error) {
			_, done := storeSpan(ctx, tr, "store wait durable")
			return done
		}
	}
	if m := p.tel.Metrics; m != nil {
		h.Fsync = func(d time.Duration, _ error) { m.Fsync(d) }
		h.DeadLetter = func(topic, group string) { m.Settle(context.Background(), observe.SettledDLQ, topic, group, 1) }
		h.Ack = func(topic, group string) { m.Settle(context.Background(), observe.SettledAck, topic, group, 1) }
		h.TimerAdded = func(topic string, delay time.Duration) { m.Timer(topic, false, delay) }
		h.TimerDone = func(topic string) { m.Timer(topic, true, 0) }
		m.CountAcksAtBroker()
	}
	return h
}

func storeSpan(ctx context.Context, tr trace.Tracer, name string, attrs ...attribute.KeyValue) (context.Context, func(error)) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	ctx, span := tr.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	return ctx, func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
