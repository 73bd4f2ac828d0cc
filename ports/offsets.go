package ports

import (
	"context"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
)

// PullRequest reads messages of one queue from an offset, without the
// invisible-time bookkeeping of pop: the consumer tracks its own position.
type PullRequest struct {
	Group     string
	Queue     domain.QueueRef
	Offset    int64
	BatchSize int32
	Filter    filter.Filter
	// PollTimeout is how long to wait when no message is at Offset yet.
	PollTimeout time.Duration
}

// PullResult is what a pull returns.
type PullResult struct {
	// Messages match the filter, in offset order.
	Messages []domain.StoredMessage
	// NextOffset is where the next pull should start (past filtered-out
	// messages too).
	NextOffset int64
	MinOffset  int64
	MaxOffset  int64
}

// OffsetPolicy selects which offset QueryOffset returns.
type OffsetPolicy uint8

// Offset policies, as apache.rocketmq.v2.QueryOffsetPolicy.
const (
	OffsetBeginning OffsetPolicy = iota // the smallest offset still stored
	OffsetEnd                           // the offset the next message will get
	OffsetTimestamp                     // the first message stored at or after a time
)

// Offsets serves pull consumers: reading a queue from an offset and keeping
// a group's committed position per queue.
type Offsets interface {
	// Pull reads up to req.BatchSize messages from req.Offset. An offset
	// below the queue's minimum or above its maximum is ReasonIllegalOffset.
	Pull(ctx context.Context, req PullRequest) (PullResult, error)
	// UpdateOffset commits a group's position in a queue (durably).
	// A negative offset or one above the queue's maximum is ReasonIllegalOffset.
	UpdateOffset(ctx context.Context, group string, q domain.QueueRef, offset int64) error
	// GetOffset returns a group's committed position in a queue, or
	// ReasonOffsetNotFound when it never committed one.
	GetOffset(ctx context.Context, group string, q domain.QueueRef) (int64, error)
	// QueryOffset finds an offset of a queue by policy (at is used with
	// OffsetTimestamp).
	QueryOffset(ctx context.Context, q domain.QueueRef, p OffsetPolicy, at time.Time) (int64, error)
}
