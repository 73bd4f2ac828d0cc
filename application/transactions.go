package application

import (
	"context"
	"log/slog"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// EndTransaction commits or rolls back a half message, as the producer
// decided (on its own or answering a check-back).
func (m *Messaging) EndTransaction(ctx context.Context, req ports.EndTransactionRequest) error {
	if err := domain.ValidateTopicName(req.Topic); err != nil {
		return err
	}
	if domain.IsBlank(req.TransactionID) {
		return domain.Errorf(domain.ReasonInvalidTransactionID, "transaction id cannot be empty")
	}
	if m.transactions == nil {
		return domain.Errorf(domain.ReasonNotImplemented, "transactions are not supported by this broker")
	}
	if req.Resolution == ports.ResolutionUnknown {
		return nil // nothing to do: the broker checks back later
	}
	return m.transactions.EndTransaction(ctx, req)
}

// relayTransactionCheck forwards a broker's check-back of an orphaned
// transaction to a producer of its topic that has a live Telemetry stream
// on this proxy; the producer answers with EndTransaction. Without such a
// producer the broker asks again after its check interval.
func (m *Messaging) relayTransactionCheck(ctx context.Context, c ports.TransactionCheck) {
	producers := m.sessions.producersOf(c.Message.Topic)
	if len(producers) == 0 {
		m.log.LogAttrs(ctx, slog.LevelDebug, "no producer connected to resolve an orphaned transaction; the broker will ask again",
			slog.String("topic", c.Message.Topic), slog.String("msg_id", c.Message.ID))
		return
	}
	ch := producers[nextTurn(&m.checkTurns, c.Message.Topic)%uint64(len(producers))]
	msg := c.Message
	if err := ch.Send(ctx, ports.ClientCommand{RecoverTransaction: &msg}); err != nil {
		m.log.LogAttrs(ctx, slog.LevelDebug, "sending a transaction check to a producer failed; the broker will ask again",
			slog.String("topic", c.Message.Topic), slog.String("msg_id", c.Message.ID), slog.Any("error", err))
	}
}

// RecallMessage cancels a delay message that has not been delivered yet.
func (m *Messaging) RecallMessage(ctx context.Context, topic, handle string) (string, error) {
	if err := domain.ValidateTopicName(topic); err != nil {
		return "", err
	}
	if m.recaller == nil {
		return "", domain.Errorf(domain.ReasonNotImplemented, "recalling messages is not supported by this broker")
	}
	if m.cfg.Limits.TopicMessageTypeCheck {
		t, err := m.meta.Topic(ctx, topic)
		if err != nil {
			return "", err
		}
		if t.Type != domain.MessageTypeDelay && t.Type != domain.MessageTypeMixed {
			return "", domain.Errorf(domain.ReasonMessageTypeConflict, "topic %q is %s; only messages of DELAY (or MIXED) topics can be recalled", topic, t.Type)
		}
	}
	if domain.IsBlank(handle) {
		return "", domain.Errorf(domain.ReasonBadRequest, "recall handle cannot be blank: pass the recall handle of the send receipt")
	}
	return m.recaller.Recall(ctx, topic, handle)
}
