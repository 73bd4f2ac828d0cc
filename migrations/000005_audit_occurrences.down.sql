-- Back to version 4: coalesced rows lose their counts and last times
-- (each then reads as one event). Dropping columns (and with them their
-- constraints and any index on them) does not read the table.
BEGIN;
SET LOCAL lock_timeout = '5s';
DROP INDEX IF EXISTS rmqproxy.audit_events_last_occurred;
ALTER TABLE rmqproxy.audit_events DROP COLUMN IF EXISTS last_occurred_at, DROP COLUMN IF EXISTS occurrences;
COMMIT;
