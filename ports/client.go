package ports

import (
	"context"

	"github.com/rmqproxy/rmqproxy/domain"
)

// ClientChannel is a live server-to-client command stream of one client
// (a gRPC Telemetry stream). The session registry holds the latest channel
// of each client; commands such as transaction check-backs go through it.
type ClientChannel interface {
	// Done is closed when the stream ends.
	Done() <-chan struct{}
	// Send hands a command to the client; it does not wait for an answer
	// (the client answers with a separate RPC). Commands wait in a bounded
	// per-client queue: Send waits for room until ctx ends, and fails at
	// once when the stream has ended or the client does not read it, so that
	// the caller can try another client.
	Send(ctx context.Context, cmd ClientCommand) error
}

// ClientCommand is a command the proxy sends a client. Exactly one field is set.
type ClientCommand struct {
	// RecoverTransaction asks a producer to resolve an orphaned transaction;
	// it answers with EndTransaction.
	RecoverTransaction *domain.StoredMessage
	// PrintThreadStack asks a client for the stacks of its threads
	// (goroutines); it answers on its command stream with the nonce.
	PrintThreadStack *ThreadStackCommand
	// VerifyMessage asks a consumer to consume a message as a check; it
	// answers on its command stream with the nonce and its result.
	VerifyMessage *VerifyMessageCommand
}

// ThreadStackCommand is a request for a client's thread stacks.
type ThreadStackCommand struct {
	Nonce string
}

// VerifyMessageCommand is a request to consume Message as a check.
type VerifyMessageCommand struct {
	Nonce   string
	Message domain.StoredMessage
}

// MessageLookup finds a stored message by its id, for operators (it may
// scan: it is not for the hot path). A message it cannot find is a
// ReasonMessageNotFound error, a missing topic ReasonTopicNotFound.
type MessageLookup interface {
	LookupMessage(ctx context.Context, topic, messageID string) (domain.StoredMessage, error)
}
