-- The index on the last occurrence (coalesce(last_occurred_at,
-- occurred_at)) serves time-range queries (an event counts in a range it
-- overlaps). Built concurrently, alone in its file: see version 4 (an
-- interrupted build's INVALID index is dropped and the file run again).
-- rmqproxy: rerun
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_last_occurred ON rmqproxy.audit_events ((coalesce(last_occurred_at, occurred_at)));
