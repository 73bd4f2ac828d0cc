-- Back to version 1: entries no longer reference their user (the store's
-- row locks alone keep a grant from outliving its user).
BEGIN;
ALTER TABLE rmqproxy.acl_entries DROP CONSTRAINT IF EXISTS acl_entries_user_fk;
ALTER TABLE rmqproxy.acl_entries DROP COLUMN IF EXISTS username;
COMMIT;
