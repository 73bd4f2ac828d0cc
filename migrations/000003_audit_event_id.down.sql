-- Back to version 2: audit events lose their ids (retried batches may
-- then be stored twice again).
BEGIN;
DROP INDEX IF EXISTS rmqproxy.audit_events_event_id;
ALTER TABLE rmqproxy.audit_events DROP COLUMN IF EXISTS event_id;
COMMIT;
