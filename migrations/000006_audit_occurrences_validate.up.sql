-- Validates the CHECK constraints version 5 added NOT VALID: one read of
-- the audit log under SHARE UPDATE EXCLUSIVE, which does not block inserts
-- (nor reads). Validating a valid constraint does nothing, so a failed
-- run is simply run again.
-- rmqproxy: rerun
ALTER TABLE rmqproxy.audit_events
  VALIDATE CONSTRAINT audit_events_occurrences_check,
  VALIDATE CONSTRAINT audit_events_last_occurred_at_check;
