package localbroker

import (
	"context"
	"time"
)

// Hooks let an observer see the engine's storage work without the engine
// knowing what observes it: adapters/otel turns them into spans and a
// histogram, and the composition root wires them (see [Engine.SetHooks]).
// Every field may be nil, and a nil field costs one comparison. Hooks run
// on the caller's goroutine (Fsync on the commit log's writer) and must not
// block.
type Hooks struct {
	// Send is called when a send enters the engine with its number of
	// messages; it returns the context the send continues with (carrying
	// the observer's span) and the function called with the send's outcome,
	// or a nil function to observe nothing.
	Send func(ctx context.Context, messages int) (context.Context, func(error))
	// Durable is called when a request starts waiting for its record to be
	// as durable as the flush policy promises (with group commit, the fsync
	// it waits for is shared); the returned function, if not nil, is called
	// with the wait's outcome.
	Durable func(ctx context.Context) func(error)
	// Fsync is told the duration and outcome of each fdatasync of the
	// commit log.
	Fsync func(d time.Duration, err error)
	// DeadLetter is told each message the engine moves to a dead-letter
	// queue, once, with the topic and group it left: moved by the reviver
	// because its delivery used the group's last attempt, or by
	// ForwardToDeadLetter (a consumer's forward, or a receive finding it
	// past a lowered maximum); a message retention removed is consumed
	// instead of moved and is told all the same. A repeated
	// ForwardToDeadLetter of a message already gone is not told. It runs
	// under the engine's lock, when the record is appended (a crash before
	// it is durable may undo a move that was told).
	DeadLetter func(topic, group string)
	// Ack is told each delivery the engine acks, once, with its topic and
	// group, when the ack's record is appended (under the engine's lock); a
	// repeated ack of a delivery already acked (a consumer's retry) is
	// not told.
	Ack func(topic, group string)
	// TimerAdded is told each delay message a send stored for later
	// delivery (a delivery time past the timer's precision), or a commit
	// of a transactional one put in the timing wheel, with its topic and
	// its delay (delivery time less born time), once its record is
	// appended; TimerDone each timer that left
	// the timing wheel, fired into its queue or dropped (its topic or
	// queue deleted, its message removed), when its record is appended
	// (under the engine's lock). A recalled timer is not told, and
	// neither is the replay of either at a restart.
	TimerAdded func(topic string, delay time.Duration)
	TimerDone  func(topic string)
}

// SetHooks installs the storage hooks; call it before Start.
func (e *Engine) SetHooks(h Hooks) { e.hooks = h }

// DiskUsage returns the bytes used and the size of the file system holding
// local.dataDir, as df counts them.
func (e *Engine) DiskUsage() (used, size uint64, err error) { return diskUsage(e.cfg.DataDir) }
