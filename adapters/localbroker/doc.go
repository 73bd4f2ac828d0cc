// Package localbroker is rmqproxy's embedded, durable, single-node broker
// engine used in local mode. One [Engine] implements [ports.Broker],
// [ports.Metadata], [ports.Admin], [ports.Transactions], [ports.Recaller] and
// [ports.Offsets].
//
// Storage (see docs/storage.md for the full design note):
//   - one append-only, segmented commit log (internal/commitlog) holds every
//     message and every consumer-state change (pop, ack, change-invisible,
//     dead-letter, deletions, resolutions of delay and half messages,
//     transaction check-backs, pull offsets), written with group commit;
//   - per-queue consume-queue index files (internal/consumequeue) are derived
//     from the log: every entry carries a checksum, and recovery rebuilds a
//     damaged, short or old-format queue from the log (rebuild.go);
//   - delay messages wait in an on-disk timing wheel (internal/timerindex),
//     one file per minute of delivery time, also derived from the log; only
//     the buckets of the next seconds are loaded in memory; recovery checks
//     every bucket entry and rebuilds a missing, short or damaged bucket
//     from the retained log, which holds every pending delay message
//     (streamed to a temporary file, renamed into place; rebuild.go);
//   - consumer state (ack floor, cursor, in-flight deliveries, visible-again
//     messages, acked offsets), pending transactions and pull offsets live in
//     memory, are changed only together with a log record, and are
//     checkpointed into snapshots; recovery loads the newest valid snapshot
//     and replays the log after it;
//   - topics and groups are log records too (topic-put, group-put and the
//     deletions), applied by the same function live and in replay and kept
//     in snapshots, so the log and the snapshots define them; auto-creation
//     is one record, bounded in count and rate; the boot counter is a small
//     file under meta/ (the JSON files of older versions are imported once).
//
// Storage trouble (health.go): the commit log's unwritten bytes are bounded
// (sends wait, then get a retryable error); a full disk refuses sends with a
// retryable error while consumer-state records go on into a reserve, and
// the engine resumes by itself when space returns; an fsync error or a
// failed apply puts the engine in a failed state (writes refused with a
// retryable error until a restart). [Engine.Ready] reports all of these,
// recovery, and a disk past local.diskHighWater to the health server, and
// Close unlocks the data directory only after the log writer stopped.
//
// What it does not do (yet): re-storing far-future timers so that they do
// not keep old commit-log segments from retention; repairing a damaged
// index while running (a restart does).
//
// Invariants callers rely on:
//   - a Send that returned without error is durable per the flush policy
//     (with flush: sync it survives kill -9 and power loss), and a message is
//     never handed to a consumer before that;
//   - an Ack that returned without error is durable the same way: the
//     message is never delivered to that group again, even after a crash;
//   - receipt ids never repeat, across restarts too;
//   - a delay message is never delivered before its time and fires once,
//     across crashes too; a committed or rolled-back transaction stays so;
//   - every error is a *domain.Error; bad input or bad files never panic;
//   - every check that can refuse a change runs before its record is
//     appended: applying an appended record does no I/O and cannot fail.
package localbroker
