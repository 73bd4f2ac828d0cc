-- rmqproxy security schema, version 1: users and their encrypted secrets,
-- ACL 2.0 entries, the policy revision (bumped and announced with NOTIFY on
-- every change), and the append-only audit log. Everything lives in the
-- schema rmqproxy, which `rmqproxy migrate up` creates.
BEGIN;

CREATE TABLE rmqproxy.users (
  username    text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$'),
  user_type   text NOT NULL CHECK (user_type IN ('Super', 'Normal')),
  status      text NOT NULL CHECK (status IN ('enable', 'disable')),
  description text NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
  created_at  timestamptz NOT NULL DEFAULT now(),
  created_by  text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  updated_by  text NOT NULL,
  row_version bigint NOT NULL DEFAULT 1
);

-- Secrets are AES-256-GCM ciphertexts under a key from the proxy's
-- configuration (postgres.secretKeys), named by key_id so that keys can
-- rotate; the additional data binds each ciphertext to its user, slot and
-- key. Two slots let a user roll its secret without downtime.
CREATE TABLE rmqproxy.user_secrets (
  username   text NOT NULL REFERENCES rmqproxy.users ON DELETE CASCADE,
  slot       smallint NOT NULL CHECK (slot IN (1, 2)),
  key_id     text NOT NULL CHECK (key_id ~ '^[A-Za-z0-9._-]{1,64}$'),
  nonce      bytea NOT NULL CHECK (length(nonce) = 12),
  ciphertext bytea NOT NULL CHECK (length(ciphertext) BETWEEN 16 AND 2048),
  weak       boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  PRIMARY KEY (username, slot)
);

CREATE TABLE rmqproxy.acl_entries (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subject          text NOT NULL CHECK (subject ~ '^User:[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$'),
  policy_type      text NOT NULL CHECK (policy_type IN ('Custom', 'Default')),
  resource_type    text NOT NULL CHECK (resource_type IN ('Any', 'Cluster', 'Namespace', 'Topic', 'Group')),
  resource_pattern text NOT NULL CHECK (resource_pattern IN ('ANY', 'LITERAL', 'PREFIXED')),
  resource_name    text NOT NULL DEFAULT '' CHECK (length(resource_name) < 1024 AND strpos(resource_name, '*') = 0),
  actions          text[] NOT NULL CHECK (cardinality(actions) > 0
                     AND actions <@ ARRAY['All', 'Pub', 'Sub', 'Create', 'Update', 'Delete', 'Get', 'List']),
  source_cidrs     cidr[] NOT NULL DEFAULT '{}' CHECK (cardinality(source_cidrs) <= 64),
  decision         text NOT NULL CHECK (decision IN ('Allow', 'Deny')),
  description      text NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
  created_at       timestamptz NOT NULL DEFAULT now(),
  created_by       text NOT NULL,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  updated_by       text NOT NULL,
  CHECK ((resource_pattern = 'ANY') = (resource_name = '')),
  CHECK (resource_type <> 'Any' OR resource_pattern = 'ANY'),
  UNIQUE (subject, policy_type, resource_type, resource_pattern, resource_name)
);
CREATE INDEX acl_entries_subject ON rmqproxy.acl_entries (subject);

-- One row: the revision every proxy compares its loaded policy with.
CREATE TABLE rmqproxy.policy_revision (
  id         boolean PRIMARY KEY DEFAULT true CHECK (id),
  revision   bigint NOT NULL,
  changed_at timestamptz NOT NULL
);
INSERT INTO rmqproxy.policy_revision VALUES (true, 1, now());

-- Any change to users, secrets or entries bumps the revision and tells
-- every listening proxy (NOTIFY is delivered at commit, so a proxy never
-- sees a change that was rolled back).
CREATE FUNCTION rmqproxy.bump_policy_revision() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r bigint;
BEGIN
  UPDATE rmqproxy.policy_revision SET revision = revision + 1, changed_at = now() RETURNING revision INTO r;
  PERFORM pg_notify('rmqproxy_policy', r::text);
  RETURN NULL;
END $$;
CREATE TRIGGER users_policy_revision AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON rmqproxy.users
  FOR EACH STATEMENT EXECUTE FUNCTION rmqproxy.bump_policy_revision();
CREATE TRIGGER user_secrets_policy_revision AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON rmqproxy.user_secrets
  FOR EACH STATEMENT EXECUTE FUNCTION rmqproxy.bump_policy_revision();
CREATE TRIGGER acl_entries_policy_revision AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON rmqproxy.acl_entries
  FOR EACH STATEMENT EXECUTE FUNCTION rmqproxy.bump_policy_revision();

-- The audit log is append-only: a trigger refuses UPDATE, DELETE and
-- TRUNCATE for every role (grant the proxies' role INSERT and SELECT only,
-- see docs/security.md; only the schema owner can drop the trigger).
CREATE TABLE rmqproxy.audit_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  occurred_at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  proxy_id    text NOT NULL,
  seq         bigint NOT NULL,
  category    text NOT NULL CHECK (category IN ('authn', 'authz', 'admin', 'system')),
  principal   text NOT NULL DEFAULT '',
  source_ip   inet,
  protocol    text NOT NULL DEFAULT '',
  operation   text NOT NULL DEFAULT '',
  resource    text NOT NULL DEFAULT '',
  actions     text NOT NULL DEFAULT '',
  decision    text NOT NULL CHECK (decision IN ('ALLOW', 'DENY', 'ERROR')),
  reason      text NOT NULL DEFAULT '',
  policy_revision bigint NOT NULL DEFAULT 0,
  request_id  text NOT NULL DEFAULT '',
  client_id   text NOT NULL DEFAULT '',
  details     jsonb
);
CREATE INDEX audit_events_principal ON rmqproxy.audit_events (principal, occurred_at);
CREATE INDEX audit_events_occurred ON rmqproxy.audit_events (occurred_at);
CREATE INDEX audit_events_not_allowed ON rmqproxy.audit_events (decision, occurred_at) WHERE decision <> 'ALLOW';

CREATE FUNCTION rmqproxy.audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'rmqproxy.audit_events is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON rmqproxy.audit_events
  FOR EACH ROW EXECUTE FUNCTION rmqproxy.audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON rmqproxy.audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION rmqproxy.audit_events_append_only();

COMMIT;
