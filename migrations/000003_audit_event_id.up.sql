-- Every audit event gets an id of its own (a UUID, version 7: it starts
-- with the millisecond the event was recorded), unique in the table. The
-- writer chooses it when the event is recorded and keeps it when it
-- retries a batch, and inserts with ON CONFLICT DO NOTHING: a
-- batch that committed although the writer saw an error (a timeout after
-- the commit) is not stored twice. Events written before this version
-- have no id (NULL; the index allows any number of them). The column is
-- added without a default, so the table is not rewritten; building the
-- index reads it once.
BEGIN;
ALTER TABLE rmqproxy.audit_events ADD COLUMN event_id uuid;
CREATE UNIQUE INDEX audit_events_event_id ON rmqproxy.audit_events (event_id);
COMMIT;
