package ports

import "context"

// Recaller cancels delay messages not yet delivered.
type Recaller interface {
	// Recall cancels the delay message a recall handle (from the message's
	// SendReceipt) names and returns its message id. A handle that cannot
	// be decoded is ReasonBadRequest; one whose delivery time has passed
	// (the message is delivered) is ReasonNotFound. Before that, a message
	// recalled already, or not held, is answered with the handle's message
	// id, as a RocketMQ broker answers (it stores a delete marker for every
	// recall): a retried recall succeeds.
	Recall(ctx context.Context, topic, recallHandle string) (string, error)
}
