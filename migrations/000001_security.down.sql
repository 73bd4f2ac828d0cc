-- Drops the security schema of version 1 (development only: the audit log
-- goes with it).
BEGIN;
DROP TABLE IF EXISTS rmqproxy.audit_events;
DROP FUNCTION IF EXISTS rmqproxy.audit_events_append_only();
DROP TABLE IF EXISTS rmqproxy.acl_entries;
DROP TABLE IF EXISTS rmqproxy.user_secrets;
DROP TABLE IF EXISTS rmqproxy.users;
DROP FUNCTION IF EXISTS rmqproxy.bump_policy_revision();
DROP TABLE IF EXISTS rmqproxy.policy_revision;
COMMIT;
