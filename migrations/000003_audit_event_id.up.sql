-- Every audit event gets an id of its own (a UUID, version 7: it starts
-- with the millisecond the event was recorded), unique in the table. The
-- writer chooses it when the event is recorded and keeps it when it
-- retries a batch, and inserts with ON CONFLICT DO NOTHING: a
-- batch that committed although the writer saw an error (a timeout after
-- the commit) is not stored twice. Events written before this version
-- have no id (NULL; the index allows any number of them). The column is
-- added without a default, so the table is neither rewritten nor read:
-- the ACCESS EXCLUSIVE lock is held for milliseconds.
--
-- The unique index is built by version 4, concurrently. Releases before
-- that built it here, in this transaction, blocking inserts into the
-- audit log for the whole build; databases they migrated have it already
-- (version 4 then finds it and does nothing). lock_timeout: see
-- version 5.
-- rmqproxy: rerun
BEGIN;
SET LOCAL lock_timeout = '5s';
ALTER TABLE rmqproxy.audit_events ADD COLUMN event_id uuid;
COMMIT;
