package ports

import (
	"context"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// ClientChannel is a live server-to-client command stream of one client
// (a gRPC Telemetry stream). The session registry holds the open channels
// of each client id; commands such as transaction check-backs go through
// the one that last carried the client's settings.
type ClientChannel interface {
	// Done is closed when the stream ends.
	Done() <-chan struct{}
	// Send hands a command to the client; it does not wait for an answer
	// (the client answers with a separate RPC). Commands wait in a bounded
	// per-client queue: Send waits for room until ctx ends, and fails at
	// once when the stream has ended or the client does not read it, so that
	// the caller can try another client. A nil error means queued, not
	// written: a command still queued when the stream ends is dropped, and
	// only a written one has its Written called.
	Send(ctx context.Context, cmd ClientCommand) error
	// TrySend is Send without waiting: it fails at once when the client's
	// queue has no room, so that the caller can offer the command to
	// another client first.
	TrySend(cmd ClientCommand) error
	// End completes the stream from the proxy's side because the client
	// said goodbye (NotifyClientTermination): the official Go client keeps
	// its connection, and the stream, open long after it stopped. Commands
	// not yet written are dropped. End does not wait.
	End()
}

// ClientCommand is a command the proxy sends a client. Exactly one of the
// command fields is set.
type ClientCommand struct {
	// Written, when not nil, is called once the command has been written
	// to the client's stream, from the channel's writer goroutine, and not
	// at all when the command is dropped unwritten (the stream ended first).
	// It must not block.
	Written func()

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

// ConsumerRunningInfo is what this proxy knows of the connected consumers
// of one group, for a broker's GET_CONSUMER_RUNNING_INFO (mqadmin
// consumerStatus).
type ConsumerRunningInfo struct {
	// Clients are the group's consumers connected to this proxy, and
	// Versions their languages and versions ("GO 5.1.4"), in the same order.
	Clients  []string
	Versions []string
	// Since is when the first of them connected.
	Since time.Time
	// Push says whether one of them is a push consumer (it runs a
	// listener, which consumes a message on request: ConsumeDirectlyHandler).
	Push bool
	// Subscriptions are the topics and filters they subscribe to, one per
	// topic.
	Subscriptions []Subscription
	// Stacks, when asked for, are the clients' thread stacks, each under a
	// line naming the client (or saying why it has none).
	Stacks string
}

// ConsumerRunningInfoHandler answers what the proxy knows of a consumer
// group's connected clients; withStacks asks each for its thread stacks.
// A group without connected consumers is a ReasonNotFound error.
type ConsumerRunningInfoHandler func(ctx context.Context, group string, withStacks bool) (ConsumerRunningInfo, error)

// ConsumeDirectlyAnswer is a consumer's answer to a request to consume a
// message as a check (a broker's CONSUME_MESSAGE_DIRECTLY relayed as a
// VerifyMessageCommand).
type ConsumeDirectlyAnswer struct {
	// ClientID is the consumer that answered.
	ClientID string
	// Code is the name of the client's status code (apache.rocketmq.v2.Code:
	// OK, FAILED_TO_CONSUME_MESSAGE, NOT_IMPLEMENTED, ...), Message its text.
	Code    string
	Message string
	// Asked is how many of the group's consumers were asked: a consumer
	// that answers NOT_IMPLEMENTED hands the request to the next one.
	Asked int
}

// ConsumeDirectlyHandler has a connected consumer of group that subscribes
// to the message's topic consume msg as a check, and returns its answer. No
// such consumer is a ReasonNotFound error; none that answers in time (ctx)
// a ReasonTimeout error or ctx's cause.
type ConsumeDirectlyHandler func(ctx context.Context, group string, msg domain.StoredMessage) (ConsumeDirectlyAnswer, error)

// ConsumerRelay is a broker side whose brokers ask the proxy about its
// consumers, or have one consume a message (cluster mode); the application
// registers the handlers once, before serving.
type ConsumerRelay interface {
	SetConsumerRunningInfoHandler(h ConsumerRunningInfoHandler)
	SetConsumeDirectlyHandler(h ConsumeDirectlyHandler)
}
