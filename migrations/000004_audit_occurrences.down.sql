-- Back to version 3: coalesced rows lose their counts and last times
-- (each then reads as one event).
BEGIN;
DROP INDEX IF EXISTS rmqproxy.audit_events_last_occurred;
ALTER TABLE rmqproxy.audit_events DROP COLUMN IF EXISTS last_occurred_at, DROP COLUMN IF EXISTS occurrences;
COMMIT;
