package ports

import "context"

// Recaller cancels delay messages not yet delivered.
type Recaller interface {
	// Recall cancels the delay message a recall handle (from the message's
	// SendReceipt) names and returns its message id. A handle that cannot
	// be decoded is ReasonBadRequest; a message already delivered, recalled
	// or unknown, or whose delivery time has passed, is ReasonNotFound.
	Recall(ctx context.Context, topic, recallHandle string) (string, error)
}
