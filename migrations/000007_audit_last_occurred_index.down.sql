-- Back to version 6: the index goes, without blocking inserts.
DROP INDEX CONCURRENTLY IF EXISTS rmqproxy.audit_events_last_occurred;
