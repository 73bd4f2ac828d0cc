package ports

import (
	"context"

	"github.com/rmqproxy/rmqproxy/domain"
)

// Resolution is a producer's verdict on a transaction.
type Resolution uint8

// Resolutions, as apache.rocketmq.v2.TransactionResolution.
const (
	ResolutionUnknown Resolution = iota // undecided: the broker asks again later
	ResolutionCommit
	ResolutionRollback
)

func (r Resolution) String() string {
	switch r {
	case ResolutionCommit:
		return "COMMIT"
	case ResolutionRollback:
		return "ROLLBACK"
	default:
		return "UNKNOWN"
	}
}

// EndTransactionRequest resolves a half message.
type EndTransactionRequest struct {
	Topic string
	// MessageID is the message id the client names; informational (logs,
	// the broker's END_TRANSACTION header): TransactionID alone names the
	// transaction, as with the Apache proxy.
	MessageID     string
	TransactionID string
	Resolution    Resolution
	// FromCheck says the producer answers a transaction check-back.
	FromCheck bool
}

// Transactions stores transactional (half) messages and resolves them.
// Half messages are sent with [Broker.Send] (Message.Transactional set); the
// receipt's TransactionID names the transaction. They stay invisible to
// consumers until committed.
type Transactions interface {
	// EndTransaction commits or rolls back a half message. An unknown or
	// already resolved transaction is a ReasonInvalidTransactionID error;
	// ResolutionUnknown changes nothing.
	EndTransaction(ctx context.Context, req EndTransactionRequest) error

	// SetTransactionCheckHandler registers the function the broker calls to
	// check back an orphaned half message (one neither committed nor rolled
	// back in time). The handler must return quickly; the broker calls it
	// again after its check interval until it gets an answer or gives up.
	SetTransactionCheckHandler(h TransactionCheckHandler)
}

// TransactionCheck asks the producers of a topic to resolve a half message.
type TransactionCheck struct {
	// Message is the half message; Message.TransactionID names it.
	Message domain.StoredMessage
	// Checks is the number of this check-back if it reaches a producer: the
	// check-backs that reached one before, plus one.
	Checks int32
	// Handed, when not nil, is to be called once the check-back has been
	// written to a producer's command stream, and not at all when it was
	// not (no producer connected, a full dispatch queue, every channel
	// refusing, or the stream ending before it was written).
	// A broker that sets it counts only the check-backs handed to a
	// producer towards its maximum and asks again after its check interval
	// otherwise. It may be called from any goroutine, within the handler
	// call too (the broker calls the handler without holding its locks);
	// calls after the first do nothing.
	Handed func()
}

// TransactionCheckHandler relays a check-back to a producer.
type TransactionCheckHandler func(ctx context.Context, check TransactionCheck)
