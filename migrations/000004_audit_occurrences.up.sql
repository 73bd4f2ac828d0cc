-- Repeated refusals are coalesced: one row stands for `occurrences`
-- refusals with the same principal (or presented AccessKey), source
-- address, protocol, operation, resource, actions and reason, the first
-- at occurred_at and the last at last_occurred_at (NULL: occurred_at).
-- Rows written before this version stand for one event each (the default
-- 1); adding a column with a constant default does not rewrite the table,
-- building the index reads it once. The index serves time-range queries
-- on the last occurrence (an event counts in a range it overlaps).
BEGIN;
ALTER TABLE rmqproxy.audit_events
  ADD COLUMN occurrences bigint NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
  ADD COLUMN last_occurred_at timestamptz CHECK (last_occurred_at >= occurred_at);
CREATE INDEX audit_events_last_occurred ON rmqproxy.audit_events ((coalesce(last_occurred_at, occurred_at)));
COMMIT;
