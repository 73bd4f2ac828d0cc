-- ACL entries belong to their user: deleting a user deletes its entries
-- (ON DELETE CASCADE), and no entry can name a user that does not exist.
-- Version 1 relied on the store alone, and a grant racing a user delete
-- could leave an entry behind that a later user of the same name
-- inherited. A subject is always "User:<username>" (its CHECK), so the
-- user's name is derived from it in a stored generated column that the
-- foreign key uses.
--
-- Entries whose user no longer exists are such leftovers: they are
-- deleted, each with an audit event (category system, operation
-- acl.delete, reason orphan_entry) naming the entry.
BEGIN;

WITH orphans AS (
  DELETE FROM rmqproxy.acl_entries e
  WHERE NOT EXISTS (SELECT 1 FROM rmqproxy.users u WHERE 'User:' || u.username = e.subject)
  RETURNING id, subject, policy_type, resource_type, resource_pattern, resource_name, actions, decision
)
INSERT INTO rmqproxy.audit_events (occurred_at, proxy_id, seq, category, principal, operation, resource, actions,
  decision, reason, details)
SELECT now(), 'migrate', 0, 'system', current_user, 'acl.delete',
  CASE WHEN resource_type = 'Any' THEN '*'
    WHEN resource_pattern = 'ANY' THEN resource_type || ':*'
    WHEN resource_pattern = 'PREFIXED' THEN resource_type || ':' || resource_name || '*'
    ELSE resource_type || ':' || resource_name END,
  array_to_string(actions, ','), 'ALLOW', 'orphan_entry',
  jsonb_build_object('id', id, 'subject', subject, 'policy_type', policy_type, 'decision', decision)
FROM orphans;

ALTER TABLE rmqproxy.acl_entries
  ADD COLUMN username text GENERATED ALWAYS AS (substr(subject, 6)) STORED,
  ADD CONSTRAINT acl_entries_user_fk FOREIGN KEY (username) REFERENCES rmqproxy.users (username) ON DELETE CASCADE;

COMMIT;
