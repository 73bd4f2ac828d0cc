// Package localbroker is rmqproxy's embedded, durable, single-node broker
// engine used in local mode. One [Engine] implements [ports.Broker],
// [ports.Metadata] and [ports.Admin].
//
// Storage (see docs/storage.md for the full design note):
//   - one append-only, segmented commit log (internal/commitlog) holds every
//     message and every consumer-state change (pop, ack, change-invisible,
//     dead-letter, deletions), written with group commit;
//   - per-queue consume-queue index files (internal/consumequeue) are derived
//     from the log and rebuilt from it at recovery;
//   - consumer state (ack floor, cursor, in-flight deliveries, visible-again
//     messages, acked offsets) lives in memory, is changed only together with
//     a log record, and is checkpointed into snapshots; recovery loads the
//     newest valid snapshot and replays the log after it;
//   - topics, groups and the boot counter live in small files under meta/,
//     replaced atomically.
//
// What it does not do (yet): delay/timer and transactional messages (Send
// rejects them with ReasonNotImplemented; the record format already has the
// deferred-dispatch record they need), pull with offsets, SQL92 filters.
//
// Invariants callers rely on:
//   - a Send that returned without error is durable per the flush policy
//     (with flush: sync it survives kill -9 and power loss), and a message is
//     never handed to a consumer before that;
//   - an Ack that returned without error is durable the same way: the
//     message is never delivered to that group again, even after a crash;
//   - receipt ids never repeat, across restarts too;
//   - every error is a *domain.Error; bad input or bad files never panic.
package localbroker
