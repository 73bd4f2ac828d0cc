-- Repeated refusals are coalesced: one row stands for `occurrences`
-- refusals with the same principal (or presented AccessKey), source
-- address, protocol, operation, resource, actions and reason, the first
-- at occurred_at and the last at last_occurred_at (NULL: occurred_at).
-- Rows written before this version stand for one event each (the default
-- 1).
--
-- Online: adding a column with a constant default neither rewrites nor
-- reads the table, and the CHECK constraints are added NOT VALID (new
-- rows are checked, existing ones are not read): the ACCESS EXCLUSIVE
-- lock is held for milliseconds. Version 6 validates the constraints and
-- version 7 builds the index, both without blocking inserts.
-- lock_timeout: waiting for the lock behind a long query (a big audit
-- export) would queue every insert behind this statement; it gives up
-- after 5 s instead (rmqproxy migrate up runs it again).
-- rmqproxy: rerun
BEGIN;
SET LOCAL lock_timeout = '5s';
ALTER TABLE rmqproxy.audit_events
  ADD COLUMN occurrences bigint NOT NULL DEFAULT 1,
  ADD COLUMN last_occurred_at timestamptz,
  ADD CONSTRAINT audit_events_occurrences_check CHECK (occurrences >= 1) NOT VALID,
  ADD CONSTRAINT audit_events_last_occurred_at_check CHECK (last_occurred_at >= occurred_at) NOT VALID;
COMMIT;
