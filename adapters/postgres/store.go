package postgres

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Store is the administrative side of the security state
// (ports.SecurityStore) and the loader of policy snapshots.
type Store struct {
	pool    *pgxpool.Pool
	keys    *Keyring // nil: secrets can be neither written nor read
	proxyID string
}

// NewStore returns a store over pool. keys may be nil for a process that
// only reads the audit log.
func NewStore(pool *pgxpool.Pool, keys *Keyring, proxyID string) *Store {
	return &Store{pool: pool, keys: keys, proxyID: proxyID}
}

var _ ports.SecurityStore = (*Store)(nil)

// maxList bounds list answers.
const maxList = 10000

// txFunc runs fn in a transaction; user changes lock the users table so
// that the last-super-user rule cannot race.
func (s *Store) txFunc(ctx context.Context, op string, lockUsers bool, fn func(pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if lockUsers {
			if _, err := tx.Exec(ctx, `LOCK TABLE rmqproxy.users IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		return fn(tx)
	})
	return storeError(op, err)
}

// insertAudit writes an event of a change in the change's transaction. It
// has seq 0: its id identifies it. The principal is what the CLI claims
// (its OS user), so the event also names what the database authenticated:
// the login role that made the change (details dbUser, session_user) and,
// when the actor has no address, the client address PostgreSQL saw.
func (s *Store) insertAudit(ctx context.Context, tx pgx.Tx, e domain.AuditEvent) error {
	_, err := tx.Exec(ctx, insertAdminAuditSQL, auditArgs(newEventID(time.Now()), s.proxyID, 0, e)...)
	return err
}

// insertAdminAuditSQL is insertAuditSQL for admin changes (see insertAudit).
const insertAdminAuditSQL = `INSERT INTO rmqproxy.audit_events (event_id, occurred_at, proxy_id, seq, category, principal, source_ip, protocol,
  operation, resource, actions, decision, reason, policy_revision, request_id, client_id, details)
  VALUES ($1, $2, $3, $4, $5, $6, coalesce($7::inet, inet_client_addr()), $8, $9, $10, $11, $12, $13, $14, $15, $16,
  coalesce($17::jsonb, '{}'::jsonb) || jsonb_build_object('dbUser', session_user::text))`

const insertAuditSQL = `INSERT INTO rmqproxy.audit_events (event_id, occurred_at, proxy_id, seq, category, principal, source_ip, protocol,
  operation, resource, actions, decision, reason, policy_revision, request_id, client_id, details)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`

// auditArgs returns the values of insertAuditSQL.
func auditArgs(id pgtype.UUID, proxyID string, seq int64, e domain.AuditEvent) []any {
	r := newAuditRow(id, proxyID, seq, e)
	var ip, details any
	if r.ip != nil {
		ip = *r.ip
	}
	if r.details != nil {
		details = *r.details
	}
	return []any{r.id, r.time, r.proxyID, r.seq, r.category, r.principal, ip, r.protocol,
		r.operation, r.resource, r.actions, r.decision, r.reason, r.revision, r.requestID, r.clientID, details}
}

// auditRow is an audit event as stored: client-supplied text made
// storable and bounded.
type auditRow struct {
	id                                               pgtype.UUID
	time                                             time.Time
	proxyID                                          string
	seq                                              int64
	category, principal                              string
	ip                                               *netip.Addr
	protocol, operation, resource, actions, decision string
	reason                                           string
	revision                                         int64
	requestID, clientID                              string
	details                                          *string
	occurrences                                      int64      // at least 1
	last                                             *time.Time // nil: time
	refusal                                          bool       // domain.AuditEvent.Refusal
}

func newAuditRow(id pgtype.UUID, proxyID string, seq int64, e domain.AuditEvent) auditRow {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	r := auditRow{id: id, time: e.Time, proxyID: proxyID, seq: seq, category: e.Category, principal: clean(e.Principal, 256),
		protocol: clean(e.Protocol, 32), operation: clean(e.Operation, 128), resource: clean(e.Resource, 1100),
		actions: clean(e.Actions, 128), decision: e.Decision, reason: clean(e.Reason, 512), revision: e.Revision,
		requestID: clean(e.RequestID, 128), clientID: clean(e.ClientID, 256), occurrences: e.Count(), refusal: e.Refusal()}
	// Compared as stored, by the wall clock: a time read from time.Now
	// compares by its monotonic reading, and after the wall clock was
	// stepped back a later repeat has an earlier wall time, which the
	// table's CHECK (last_occurred_at >= occurred_at) refuses.
	if last := e.LastTime.Round(0); !last.IsZero() && !last.Before(e.Time.Round(0)) {
		r.last = &last
	}
	if e.SourceIP.IsValid() {
		ip := e.SourceIP.Unmap()
		r.ip = &ip
	}
	if e.Details != "" && json.Valid([]byte(e.Details)) {
		r.details = &e.Details
	}
	return r
}

// newEventID returns a UUID of version 7: the millisecond of t, then 74
// random bits.
func newEventID(t time.Time) pgtype.UUID {
	var b [16]byte
	_, _ = rand.Read(b[6:]) // never fails (crypto/rand)
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return pgtype.UUID{Bytes: b, Valid: true}
}

// clean makes client-supplied text storable: valid UTF-8 without NUL
// (PostgreSQL text refuses both), at most n bytes.
func clean(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}

func adminEvent(by ports.Actor, op, resource string, details map[string]any) domain.AuditEvent {
	e := domain.AuditEvent{
		Time: time.Now(), Category: domain.AuditAdmin, Principal: by.Principal, SourceIP: by.SourceIP,
		Protocol: by.Protocol, Operation: op, Resource: resource, Decision: domain.AuditAllow, RequestID: by.RequestID,
	}
	if len(details) > 0 {
		b, _ := json.Marshal(details)
		e.Details = string(b)
	}
	return e
}

func (s *Store) sealInto(ctx context.Context, tx pgx.Tx, user string, secret domain.Secret) error {
	if s.keys == nil {
		return domain.Errorf(domain.ReasonBadRequest, "no key to encrypt secrets with: set postgres.secretKeys")
	}
	keyID, nonce, ct, err := s.keys.Seal(user, 1, secret)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO rmqproxy.user_secrets (username, slot, key_id, nonce, ciphertext, weak)
  VALUES ($1, 1, $2, $3, $4, $5)
  ON CONFLICT (username, slot) DO UPDATE SET key_id = $2, nonce = $3, ciphertext = $4, weak = $5, created_at = now(), expires_at = NULL`,
		user, keyID, nonce, ct, len(secret) < 32)
	return err
}

// CreateUser implements ports.SecurityStore.
func (s *Store) CreateUser(ctx context.Context, by ports.Actor, u domain.User, secret domain.Secret) error {
	return s.txFunc(ctx, "create user", true, func(tx pgx.Tx) error {
		return s.createUser(ctx, tx, by, u, secret)
	})
}

// createUser inserts u with its secret and writes the user.create audit
// event, in tx.
func (s *Store) createUser(ctx context.Context, tx pgx.Tx, by ports.Actor, u domain.User, secret domain.Secret) error {
	tag, err := tx.Exec(ctx, `INSERT INTO rmqproxy.users (username, user_type, status, description, created_by, updated_by)
  VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (username) DO NOTHING`,
		u.Name, u.Type.String(), u.Status.String(), u.Description, by.Principal)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return domain.Errorf(domain.ReasonAlreadyExists, "user %q already exists; use user update", u.Name)
	}
	if err := s.sealInto(ctx, tx, u.Name, secret); err != nil {
		return err
	}
	return s.insertAudit(ctx, tx, adminEvent(by, "user.create", domain.SubjectOf(u.Name),
		map[string]any{"type": u.Type.String(), "status": u.Status.String()}))
}

func scanUser(row pgx.Row) (domain.User, error) {
	var u domain.User
	var typ, status string
	if err := row.Scan(&u.Name, &typ, &status, &u.Description); err != nil {
		return u, err
	}
	var err error
	if u.Type, err = domain.ParseUserType(typ); err != nil {
		return u, err
	}
	u.Status, err = domain.ParseUserStatus(status)
	return u, err
}

// lastEnabledSuper reports whether name is the only enabled super user.
func lastEnabledSuper(ctx context.Context, tx pgx.Tx, name string) (bool, error) {
	var others int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM rmqproxy.users WHERE user_type = 'Super' AND status = 'enable' AND username <> $1`, name).Scan(&others)
	return others == 0, err
}

// UpdateUser implements ports.SecurityStore.
func (s *Store) UpdateUser(ctx context.Context, by ports.Actor, name string, upd ports.UserUpdate) (domain.User, error) {
	var out domain.User
	err := s.txFunc(ctx, "update user", true, func(tx pgx.Tx) error {
		u, _, demoted, err := s.updateUser(ctx, tx, by, name, upd, false)
		if err != nil {
			return err
		}
		if demoted {
			last, err := lastEnabledSuper(ctx, tx, name)
			if err != nil {
				return err
			}
			if last {
				return domain.Errorf(domain.ReasonBadRequest, "user %q is the last enabled super user; create or enable another super user first", name)
			}
		}
		out = u
		return nil
	})
	return out, err
}

// updateUser changes the user name as upd says and writes the
// user.update audit event (naming the changed fields), in tx; with
// onlyChanges, a user upd does not change is left alone, unaudited. It
// returns the user as changed, whether upd changed anything, and whether
// it took away an enabled super user's rights: the caller applies the
// last-super-user rule, before its transaction commits.
func (s *Store) updateUser(ctx context.Context, tx pgx.Tx, by ports.Actor, name string, upd ports.UserUpdate, onlyChanges bool) (u domain.User, changes, demoted bool, err error) {
	u, err = scanUser(tx.QueryRow(ctx, `SELECT username, user_type, status, description FROM rmqproxy.users WHERE username = $1 FOR UPDATE`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, false, false, domain.Errorf(domain.ReasonNotFound, "user %q does not exist", name)
	}
	if err != nil {
		return u, false, false, err
	}
	wasSuper := u.Type == domain.UserSuper && u.Status == domain.UserEnabled
	changed := map[string]any{}
	if upd.Type != nil && *upd.Type != u.Type {
		u.Type, changed["type"] = *upd.Type, upd.Type.String()
	}
	if upd.Status != nil && *upd.Status != u.Status {
		u.Status, changed["status"] = *upd.Status, upd.Status.String()
	}
	if upd.Description != nil && *upd.Description != u.Description {
		u.Description, changed["description"] = *upd.Description, true
	}
	if upd.Secret != nil {
		changed["secret"] = "changed"
	}
	if onlyChanges && len(changed) == 0 {
		return u, false, false, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE rmqproxy.users SET user_type = $2, status = $3, description = $4,
  updated_at = now(), updated_by = $5, row_version = row_version + 1 WHERE username = $1`,
		name, u.Type.String(), u.Status.String(), u.Description, by.Principal); err != nil {
		return u, false, false, err
	}
	if upd.Secret != nil {
		if err := s.sealInto(ctx, tx, name, upd.Secret); err != nil {
			return u, false, false, err
		}
	}
	demoted = wasSuper && (u.Type != domain.UserSuper || u.Status != domain.UserEnabled)
	return u, len(changed) > 0, demoted, s.insertAudit(ctx, tx, adminEvent(by, "user.update", domain.SubjectOf(name), changed))
}

// DeleteUser implements ports.SecurityStore.
func (s *Store) DeleteUser(ctx context.Context, by ports.Actor, name string) error {
	return s.txFunc(ctx, "delete user", true, func(tx pgx.Tx) error {
		u, err := scanUser(tx.QueryRow(ctx, `SELECT username, user_type, status, description FROM rmqproxy.users WHERE username = $1 FOR UPDATE`, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Errorf(domain.ReasonNotFound, "user %q does not exist", name)
		}
		if err != nil {
			return err
		}
		if u.Type == domain.UserSuper && u.Status == domain.UserEnabled {
			last, err := lastEnabledSuper(ctx, tx, name)
			if err != nil {
				return err
			}
			if last {
				return domain.Errorf(domain.ReasonBadRequest, "user %q is the last enabled super user; create or enable another super user first", name)
			}
		}
		// The user's row is locked (FOR UPDATE, above) before its entries
		// are deleted: a grant that locked the row first has committed by
		// now, and this statement, with a snapshot of its own under READ
		// COMMITTED, sees and deletes its entry; a later grant waits for
		// the row and finds no user. Deleting the entries first would miss
		// the entry of a grant still in flight.
		n, err := s.deleteEntries(ctx, tx, by, ` WHERE subject = $1`, domain.SubjectOf(name))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rmqproxy.users WHERE username = $1`, name); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, adminEvent(by, "user.delete", domain.SubjectOf(name),
			map[string]any{"entries_deleted": n}))
	})
}

// GetUser implements ports.SecurityStore.
func (s *Store) GetUser(ctx context.Context, name string) (domain.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT username, user_type, status, description FROM rmqproxy.users WHERE username = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, domain.Errorf(domain.ReasonNotFound, "user %q does not exist", name)
	}
	return u, storeError("get user", err)
}

// ListUsers implements ports.SecurityStore; filter is matched literally.
func (s *Store) ListUsers(ctx context.Context, filter string) ([]domain.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT username, user_type, status, description FROM rmqproxy.users
  WHERE $1 = '' OR strpos(username, $1) > 0 ORDER BY username LIMIT $2`, clean(filter, 256), maxList)
	if err != nil {
		return nil, storeError("list users", err)
	}
	defer rows.Close()
	var out []domain.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, storeError("list users", err)
		}
		out = append(out, u)
	}
	return out, storeError("list users", rows.Err())
}

func entryArgs(e domain.ACLEntry) []any {
	ips := e.SourceIPs
	if ips == nil {
		ips = []netip.Prefix{}
	}
	return []any{e.Subject, e.PolicyType.String(), e.Resource.Type.String(), e.Resource.Pattern.String(), e.Resource.Name,
		e.Actions.Names(), ips, e.Decision.String(), e.Description}
}

// createEntrySQL inserts nothing (and returns no row) when the key
// exists, committed or not: an INSERT that meets an uncommitted row with
// its key waits for that transaction, so of two concurrent creates exactly
// one inserts.
const createEntrySQL = `INSERT INTO rmqproxy.acl_entries (subject, policy_type, resource_type, resource_pattern, resource_name,
  actions, source_cidrs, decision, description, created_by, updated_by)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
  ON CONFLICT (subject, policy_type, resource_type, resource_pattern, resource_name) DO NOTHING
  RETURNING id`

// replaceEntrySQL changes the entry with the key only, and returns what it
// replaced (for the audit event): the row it locks is the one it updates,
// and one deleted by a transaction it waited for is neither locked nor
// updated (no row).
const replaceEntrySQL = `WITH old AS (
    SELECT id, actions, source_cidrs, decision, description FROM rmqproxy.acl_entries
    WHERE subject = $1 AND policy_type = $2 AND resource_type = $3 AND resource_pattern = $4 AND resource_name = $5
    FOR UPDATE)
  UPDATE rmqproxy.acl_entries e SET actions = $6, source_cidrs = $7, decision = $8, description = $9,
    updated_at = now(), updated_by = $10
  FROM old WHERE e.id = old.id
  RETURNING old.actions, old.source_cidrs::text[], old.decision, old.description`

// upsertTries bounds how often an upsert alternates between creating and
// replacing an entry that concurrent changes create and delete meanwhile.
const upsertTries = 8

// writeEntry writes one entry as mode says and reports whether it created
// it, and what it replaced otherwise; ok is false when the entry was not
// written (it exists for PutCreate, it does not for PutReplace). An
// upsert creates the entry or replaces it, whichever the statement that
// writes it finds possible (never an earlier read).
func writeEntry(ctx context.Context, tx pgx.Tx, args []any, mode ports.PutMode) (created bool, prev map[string]any, ok bool, err error) {
	for range upsertTries {
		if mode != ports.PutReplace {
			var id int64
			err := tx.QueryRow(ctx, createEntrySQL, args...).Scan(&id)
			if err == nil {
				return true, nil, true, nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return false, nil, false, err
			}
			if mode == ports.PutCreate {
				return false, nil, false, nil
			}
		}
		var actions, cidrs []string
		var decision, description string
		err := tx.QueryRow(ctx, replaceEntrySQL, args...).Scan(&actions, &cidrs, &decision, &description)
		if err == nil {
			return false, map[string]any{"actions": strings.Join(actions, ","), "decision": decision, "source_ips": cidrs,
				"description": description}, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return false, nil, false, err
		}
		if mode == ports.PutReplace {
			return false, nil, false, nil
		}
		// Deleted between the two statements: create it after all.
	}
	return false, nil, false, domain.Errorf(domain.ReasonTooManyRequests, "the entry %s changed %d times while being written; try again", args[0], upsertTries)
}

// putEntries writes entries whose users exist, as mode says, each with its
// acl.put audit event. The existence of an entry is decided by the
// statement that writes it (see createEntrySQL, replaceEntrySQL), never by
// an earlier read. It locks each user's row
// (FOR KEY SHARE) until the transaction ends: a DeleteUser of that user
// either finished before (the entry is refused) or waits for this
// transaction at its own FOR UPDATE and then deletes the entry with the
// user. Without the lock, a delete committed between the check and the
// INSERT left an entry that a later user of the same name inherited.
func (s *Store) putEntries(ctx context.Context, tx pgx.Tx, by ports.Actor, entries []domain.ACLEntry, mode ports.PutMode) error {
	for _, e := range entries {
		name, err := domain.ParseSubject(e.Subject)
		if err != nil {
			return err
		}
		var one int
		err = tx.QueryRow(ctx, `SELECT 1 FROM rmqproxy.users WHERE username = $1 FOR KEY SHARE`, name).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Errorf(domain.ReasonNotFound, "user %q does not exist; create it before granting it access", name)
		}
		if err != nil {
			return err
		}
		created, prev, ok, err := writeEntry(ctx, tx, append(entryArgs(e), by.Principal), mode)
		if err != nil {
			return err
		}
		if !ok {
			if mode == ports.PutCreate {
				return domain.Errorf(domain.ReasonAlreadyExists, "%s already has a %s entry for %s; use acl update", e.Subject, e.PolicyType, e.Resource.Key())
			}
			return domain.Errorf(domain.ReasonNotFound, "%s has no %s entry for %s; use acl create", e.Subject, e.PolicyType, e.Resource.Key())
		}
		ips := make([]string, len(e.SourceIPs))
		for i, p := range e.SourceIPs {
			ips[i] = p.String()
		}
		details := map[string]any{"subject": e.Subject, "policy_type": e.PolicyType.String(), "decision": e.Decision.String(), "source_ips": ips,
			"change": "created"}
		if !created {
			details["change"], details["previous"] = "replaced", prev
		}
		ev := adminEvent(by, "acl.put", e.Resource.Key(), details)
		ev.Actions = e.Actions.String()
		if err := s.insertAudit(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// PutEntries implements ports.SecurityStore.
func (s *Store) PutEntries(ctx context.Context, by ports.Actor, entries []domain.ACLEntry, mode ports.PutMode) error {
	return s.txFunc(ctx, "put ACL entries", false, func(tx pgx.Tx) error {
		return s.putEntries(ctx, tx, by, entries, mode)
	})
}

const entryFilterSQL = ` WHERE ($1 = '' OR subject = $1)
  AND ($2 = '' OR (resource_type = $2 AND resource_pattern = $3 AND resource_name = $4))
  AND ($5 = '' OR policy_type = $5)`

func filterArgs(f ports.EntryFilter) ([]any, error) {
	args := []any{f.Subject, "", "", "", ""}
	if f.Resource != "" {
		r, err := domain.ParseResource(f.Resource)
		if err != nil {
			return nil, err
		}
		args[1], args[2], args[3] = r.Type.String(), r.Pattern.String(), r.Name
	}
	if f.PolicyType != nil {
		args[4] = f.PolicyType.String()
	}
	return args, nil
}

// DeleteEntries implements ports.SecurityStore.
func (s *Store) DeleteEntries(ctx context.Context, by ports.Actor, f ports.EntryFilter) (int, error) {
	if f.Subject == "" {
		return 0, domain.Errorf(domain.ReasonBadRequest, "name the subject whose entries to delete")
	}
	args, err := filterArgs(f)
	if err != nil {
		return 0, err
	}
	var n int
	err = s.txFunc(ctx, "delete ACL entries", false, func(tx pgx.Tx) error {
		var err error
		if n, err = s.deleteEntries(ctx, tx, by, entryFilterSQL, args...); err != nil {
			return err
		}
		if n == 0 {
			return domain.Errorf(domain.ReasonNotFound, "no ACL entry of %s matches", f.Subject)
		}
		return nil
	})
	return n, err
}

// deleteEntries deletes the entries where (a WHERE clause of
// selectEntriesSQL's columns) selects, and audits each as an acl.delete
// event naming its resource and actions, with its subject, id, policy
// type, decision, source addresses and description in the details: what
// the entry granted or denied, as an acl.put event records what it
// replaced.
func (s *Store) deleteEntries(ctx context.Context, tx pgx.Tx, by ports.Actor, where string, args ...any) (int, error) {
	rows, err := tx.Query(ctx, `DELETE FROM rmqproxy.acl_entries`+where+` RETURNING id, subject, policy_type, resource_type,
  resource_pattern, resource_name, actions, source_cidrs, decision, description`, args...)
	if err != nil {
		return 0, err
	}
	var deleted []domain.ACLEntry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		deleted = append(deleted, e)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	sort.Slice(deleted, func(i, j int) bool { return deleted[i].ID < deleted[j].ID })
	for _, e := range deleted {
		ips := make([]string, len(e.SourceIPs))
		for i, p := range e.SourceIPs {
			ips[i] = p.String()
		}
		ev := adminEvent(by, "acl.delete", e.Resource.Key(), map[string]any{"subject": e.Subject, "id": e.ID,
			"policy_type": e.PolicyType.String(), "decision": e.Decision.String(), "source_ips": ips, "description": e.Description})
		ev.Actions = e.Actions.String()
		if err := s.insertAudit(ctx, tx, ev); err != nil {
			return 0, err
		}
	}
	return len(deleted), nil
}

const selectEntriesSQL = `SELECT id, subject, policy_type, resource_type, resource_pattern, resource_name, actions,
  source_cidrs, decision, description FROM rmqproxy.acl_entries`

func scanEntry(row pgx.Row) (domain.ACLEntry, error) {
	var e domain.ACLEntry
	var ptype, rtype, pattern, decision string
	var actions []string
	if err := row.Scan(&e.ID, &e.Subject, &ptype, &rtype, &pattern, &e.Resource.Name, &actions, &e.SourceIPs, &decision, &e.Description); err != nil {
		return e, err
	}
	var ok1, ok2 bool
	e.Resource.Type, ok1 = domain.ParseResourceType(rtype)
	e.Resource.Pattern, ok2 = domain.ParsePattern(pattern)
	if !ok1 || !ok2 {
		return e, fmt.Errorf("entry %d: unknown resource type %q or pattern %q", e.ID, rtype, pattern)
	}
	var err error
	if e.PolicyType, err = domain.ParsePolicyType(ptype); err != nil {
		return e, err
	}
	if e.Decision, err = domain.ParseDecision(decision); err != nil {
		return e, err
	}
	if e.Actions, err = domain.ParseActions(strings.Join(actions, ",")); err != nil {
		return e, err
	}
	if len(e.SourceIPs) == 0 {
		e.SourceIPs = nil
	}
	for i, p := range e.SourceIPs {
		if p.Addr().Is4In6() {
			e.SourceIPs[i] = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
	}
	return e, e.Validate()
}

// ListEntries implements ports.SecurityStore.
func (s *Store) ListEntries(ctx context.Context, f ports.EntryFilter) ([]domain.ACLEntry, error) {
	args, err := filterArgs(f)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, selectEntriesSQL+entryFilterSQL+` ORDER BY subject, policy_type, id LIMIT $6`, append(args, maxList)...)
	if err != nil {
		return nil, storeError("list ACL entries", err)
	}
	defer rows.Close()
	var out []domain.ACLEntry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, storeError("list ACL entries", err)
		}
		out = append(out, e)
	}
	return out, storeError("list ACL entries", rows.Err())
}

// Import implements ports.SecurityStore. Each user is created or updated
// as CreateUser and UpdateUser do it (with their audit events), fields
// the import leaves out keep their stored value, and the last-super-user
// rule holds for the import as a whole: it may demote a super user that
// it promotes another to replace, in any order.
func (s *Store) Import(ctx context.Context, by ports.Actor, users []ports.ImportUser, entries []domain.ACLEntry) error {
	return s.txFunc(ctx, "import", true, func(tx pgx.Tx) error {
		created, updated := 0, 0
		var demoted []string
		for _, u := range users {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rmqproxy.users WHERE username = $1)`, u.Name).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				if u.Secret == nil {
					return domain.Errorf(domain.ReasonBadRequest, "user %q is new and has no secret in the import", u.Name)
				}
				nu := domain.User{Name: u.Name}
				if u.Type != nil {
					nu.Type = *u.Type
				}
				if u.Status != nil {
					nu.Status = *u.Status
				}
				nu.Description = u.DescriptionIfNew
				if u.Description != nil {
					nu.Description = *u.Description
				}
				if err := s.createUser(ctx, tx, by, nu, u.Secret); err != nil {
					return err
				}
				created++
				continue
			}
			_, changes, lost, err := s.updateUser(ctx, tx, by, u.Name, u.UserUpdate, true)
			if err != nil {
				return err
			}
			if lost {
				demoted = append(demoted, u.Name)
			}
			if changes {
				updated++
			}
		}
		if len(demoted) > 0 {
			var supers int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM rmqproxy.users WHERE user_type = 'Super' AND status = 'enable'`).Scan(&supers); err != nil {
				return err
			}
			if supers == 0 {
				return domain.Errorf(domain.ReasonBadRequest, "the import demotes or disables %s and leaves no enabled super user; "+
					"give one user userType Super and userStatus enable in the file, or create or enable another super user first (nothing was imported)",
					strings.Join(demoted, ", "))
			}
		}
		if err := s.putEntries(ctx, tx, by, entries, ports.PutUpsert); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, adminEvent(by, "import", "", map[string]any{
			"users_created": created, "users_updated": updated, "entries": len(entries)}))
	})
}

// RecordAdmin implements ports.SecurityStore.
func (s *Store) RecordAdmin(ctx context.Context, e domain.AuditEvent) error {
	_, err := s.pool.Exec(ctx, insertAuditSQL, auditArgs(newEventID(time.Now()), s.proxyID, 0, e)...)
	return storeError("record audit event", err)
}

// QueryAudit implements ports.SecurityStore: newest first.
func (s *Store) QueryAudit(ctx context.Context, q domain.AuditQuery) ([]domain.AuditEvent, error) {
	if q.Limit <= 0 || q.Limit > maxList {
		q.Limit = 1000
	}
	var since, until any
	if !q.Since.IsZero() {
		since = q.Since
	}
	if !q.Until.IsZero() {
		until = q.Until
	}
	var source any
	if q.Source.IsValid() {
		source = q.Source.Masked().String()
	}
	// An event counts in the range it overlaps: a coalesced one from its
	// first (occurred_at) to its last occurrence (last_occurred_at).
	rows, err := s.pool.Query(ctx, `SELECT coalesce(event_id::text, ''), proxy_id, seq, occurred_at, category, principal, source_ip, protocol, operation, resource, actions,
  decision, reason, policy_revision, request_id, client_id, coalesce(details::text, ''), occurrences, last_occurred_at
  FROM rmqproxy.audit_events
  WHERE ($1 = '' OR principal = $1) AND ($2 = '' OR decision = $2) AND ($3 = '' OR category = $3)
  AND ($4::timestamptz IS NULL OR coalesce(last_occurred_at, occurred_at) >= $4) AND ($5::timestamptz IS NULL OR occurred_at < $5)
  AND ($7 = '' OR resource = $7) AND ($8 = '' OR operation = $8) AND ($9 = '' OR request_id = $9) AND ($10 = '' OR client_id = $10)
  AND ($11::inet IS NULL OR source_ip <<= $11::inet)
  ORDER BY occurred_at DESC, id DESC LIMIT $6`, clean(q.Principal, 256), q.Decision, q.Category, since, until, q.Limit,
		clean(q.Resource, 1100), clean(q.Operation, 128), clean(q.RequestID, 128), clean(q.ClientID, 256), source)
	if err != nil {
		return nil, storeError("query audit log", err)
	}
	defer rows.Close()
	var out []domain.AuditEvent
	for rows.Next() {
		var e domain.AuditEvent
		var ip *netip.Addr
		var last *time.Time
		if err := rows.Scan(&e.ID, &e.ProxyID, &e.Seq, &e.Time, &e.Category, &e.Principal, &ip, &e.Protocol, &e.Operation, &e.Resource, &e.Actions,
			&e.Decision, &e.Reason, &e.Revision, &e.RequestID, &e.ClientID, &e.Details, &e.Occurrences, &last); err != nil {
			return nil, storeError("query audit log", err)
		}
		if last != nil {
			e.LastTime = *last
		}
		if ip != nil {
			e.SourceIP = *ip
		}
		out = append(out, e)
	}
	return out, storeError("query audit log", rows.Err())
}

// Revision returns the current policy revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	v, err := s.version(ctx)
	return v.revision, err
}

// policyVersion identifies one state of the policy: its revision and the
// time of the change that set it (policy_revision.changed_at). The
// revision alone does not: a database that went back (a restore, a
// failover to a standby that missed the last commits) and then took as
// many changes as it lost is at a revision a proxy already enforces, with
// another policy; those changes were made at other times.
type policyVersion struct {
	revision  int64
	changedAt time.Time
}

func (v policyVersion) same(o policyVersion) bool {
	return v.revision == o.revision && v.changedAt.Equal(o.changedAt)
}

// version returns the current policy version.
func (s *Store) version(ctx context.Context) (policyVersion, error) {
	var v policyVersion
	err := s.pool.QueryRow(ctx, `SELECT revision, changed_at FROM rmqproxy.policy_revision`).Scan(&v.revision, &v.changedAt)
	return v, err
}

// LoadSnapshot reads users, their secrets and every ACL entry in one
// REPEATABLE READ transaction, so the snapshot is consistent with exactly
// one revision. Secrets expired by then are left out; the others carry
// their expiry, which the security use case checks at each
// authentication. A secret that cannot be
// decrypted fails the whole load (the previous snapshot stays in force).
func (s *Store) LoadSnapshot(ctx context.Context) (domain.PolicySnapshot, error) {
	snap, _, err := s.loadSnapshot(ctx)
	return snap, err
}

// loadSnapshot is LoadSnapshot, also returning the snapshot's version.
func (s *Store) loadSnapshot(ctx context.Context) (domain.PolicySnapshot, policyVersion, error) {
	var snap domain.PolicySnapshot
	var changedAt time.Time
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT revision, changed_at FROM rmqproxy.policy_revision`).Scan(&snap.Revision, &changedAt); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT username, user_type, status, description FROM rmqproxy.users ORDER BY username`)
		if err != nil {
			return err
		}
		index := map[string]int{}
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				rows.Close()
				return err
			}
			index[u.Name] = len(snap.Users)
			snap.Users = append(snap.Users, domain.UserRecord{User: u})
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// Expired secrets are loaded too, with their expiry: a request
		// signed with one is then refused as secret_expired (and a stream
		// signed with one revoked as such), not as a wrong signature.
		rows, err = tx.Query(ctx, `SELECT username, slot, key_id, nonce, ciphertext, expires_at FROM rmqproxy.user_secrets
  ORDER BY username, slot`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var name, keyID string
			var slot int
			var nonce, ct []byte
			var expires *time.Time
			if err := rows.Scan(&name, &slot, &keyID, &nonce, &ct, &expires); err != nil {
				rows.Close()
				return err
			}
			if s.keys == nil {
				rows.Close()
				return errors.New("user secrets are stored but postgres.secretKeys is not set")
			}
			plain, err := s.keys.Open(name, slot, keyID, nonce, ct)
			if err != nil {
				rows.Close()
				return err
			}
			if i, ok := index[name]; ok {
				u := &snap.Users[i]
				u.Secrets = append(u.Secrets, domain.Secret(plain))
				if expires != nil {
					for len(u.SecretExpiry) < len(u.Secrets)-1 {
						u.SecretExpiry = append(u.SecretExpiry, time.Time{})
					}
					u.SecretExpiry = append(u.SecretExpiry, *expires)
				}
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, selectEntriesSQL+` ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				return err
			}
			snap.Entries = append(snap.Entries, e)
		}
		return rows.Err()
	})
	if err != nil {
		return domain.PolicySnapshot{}, policyVersion{}, fmt.Errorf("load the policy: %w", redact(err))
	}
	return snap, policyVersion{revision: snap.Revision, changedAt: changedAt}, nil
}
