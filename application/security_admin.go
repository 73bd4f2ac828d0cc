package application

import (
	"context"
	"crypto/rand"
	"encoding/base64"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// SecurityAdmin manages users and ACL entries in the policy store and
// queries the audit log. Every change is validated here before it reaches
// the store, which writes it with its audit record in one transaction;
// running proxies pick it up from the store.
type SecurityAdmin struct {
	store ports.SecurityStore
}

// NewSecurityAdmin returns the use case over store.
func NewSecurityAdmin(store ports.SecurityStore) *SecurityAdmin {
	return &SecurityAdmin{store: store}
}

// GenerateSecret returns 32 random bytes in unpadded base64url: 43
// printable characters.
func GenerateSecret() (domain.Secret, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return domain.Secret(base64.RawURLEncoding.EncodeToString(b[:])), nil
}

// CreateUser creates a user. With a nil secret it generates one and
// returns it: the only time it is ever shown.
func (a *SecurityAdmin) CreateUser(ctx context.Context, by ports.Actor, u domain.User, secret domain.Secret) (domain.Secret, error) {
	if err := domain.ValidateUserName(u.Name); err != nil {
		return nil, err
	}
	if err := domain.ValidateDescription(u.Description); err != nil {
		return nil, err
	}
	generated := secret == nil
	if generated {
		var err error
		if secret, err = GenerateSecret(); err != nil {
			return nil, err
		}
	} else if err := domain.ValidateSecret(secret); err != nil {
		return nil, err
	}
	if err := a.store.CreateUser(ctx, by, u, secret); err != nil {
		return nil, err
	}
	if generated {
		return secret, nil
	}
	return nil, nil
}

// UpdateUser changes a user; a non-nil upd.Secret replaces its secret
// (GenerateSecret makes one).
func (a *SecurityAdmin) UpdateUser(ctx context.Context, by ports.Actor, name string, upd ports.UserUpdate) (domain.User, error) {
	if err := domain.ValidateUserName(name); err != nil {
		return domain.User{}, err
	}
	if upd.Description != nil {
		if err := domain.ValidateDescription(*upd.Description); err != nil {
			return domain.User{}, err
		}
	}
	if upd.Secret != nil {
		if err := domain.ValidateSecret(upd.Secret); err != nil {
			return domain.User{}, err
		}
	}
	return a.store.UpdateUser(ctx, by, name, upd)
}

// DeleteUser deletes a user and its ACL entries.
func (a *SecurityAdmin) DeleteUser(ctx context.Context, by ports.Actor, name string) error {
	if err := domain.ValidateUserName(name); err != nil {
		return err
	}
	return a.store.DeleteUser(ctx, by, name)
}

// GetUser returns a user (never its secret).
func (a *SecurityAdmin) GetUser(ctx context.Context, name string) (domain.User, error) {
	if err := domain.ValidateUserName(name); err != nil {
		return domain.User{}, err
	}
	return a.store.GetUser(ctx, name)
}

// ListUsers lists users whose name contains filter (literally, at most
// 128 bytes).
func (a *SecurityAdmin) ListUsers(ctx context.Context, filter string) ([]domain.User, error) {
	if len(filter) > 128 {
		return nil, domain.Errorf(domain.ReasonBadRequest, "filter is longer than 128 bytes")
	}
	return a.store.ListUsers(ctx, filter)
}

// MaxEntriesPerChange bounds one ACL change.
const MaxEntriesPerChange = 1000

// PutEntries creates or replaces ACL entries (by subject, policy type and
// resource). With mustExist set (an update), every entry must exist
// already (ReasonNotFound otherwise); with mustNotExist (a create), none
// may (ReasonAlreadyExists). The store checks that in the transaction that
// writes the entries: a check made here, before it, would let two
// concurrent creates of one entry both pass, the second overwriting the
// first, and an update re-create an entry deleted meanwhile.
func (a *SecurityAdmin) PutEntries(ctx context.Context, by ports.Actor, entries []domain.ACLEntry, mustExist, mustNotExist bool) error {
	if len(entries) == 0 || len(entries) > MaxEntriesPerChange {
		return domain.Errorf(domain.ReasonBadRequest, "give 1 to %d entries", MaxEntriesPerChange)
	}
	entries = canonicalSubjects(entries)
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	mode := ports.PutUpsert
	switch {
	case mustExist && mustNotExist:
		return domain.Errorf(domain.ReasonBadRequest, "an entry cannot both exist and not exist")
	case mustExist:
		mode = ports.PutReplace
	case mustNotExist:
		mode = ports.PutCreate
	}
	return a.store.PutEntries(ctx, by, entries, mode)
}

// DeleteEntries deletes the entries of a subject (those for one resource,
// and of one policy type, when given).
func (a *SecurityAdmin) DeleteEntries(ctx context.Context, by ports.Actor, f ports.EntryFilter) (int, error) {
	if _, err := domain.ParseSubject(f.Subject); err != nil {
		return 0, err
	}
	f, err := canonicalFilter(f)
	if err != nil {
		return 0, err
	}
	return a.store.DeleteEntries(ctx, by, f)
}

// ListEntries lists entries (of one subject when given).
func (a *SecurityAdmin) ListEntries(ctx context.Context, f ports.EntryFilter) ([]domain.ACLEntry, error) {
	f, err := canonicalFilter(f)
	if err != nil {
		return nil, err
	}
	return a.store.ListEntries(ctx, f)
}

// canonicalFilter checks f's subject and resource and writes them as
// entries store and audit events name them (User:NAME, Topic:NAME): an
// administrator may type the types in any case.
func canonicalFilter(f ports.EntryFilter) (ports.EntryFilter, error) {
	if f.Subject != "" {
		name, err := domain.ParseSubject(f.Subject)
		if err != nil {
			return f, err
		}
		f.Subject = domain.SubjectOf(name)
	}
	if f.Resource != "" {
		r, err := domain.ParseResource(f.Resource)
		if err != nil {
			return f, err
		}
		f.Resource = r.Key()
	}
	return f, nil
}

// canonicalSubjects returns entries with their subjects written
// User:NAME (ParseSubject accepts the type in any case; the store, and
// the policy's matching, know only that form). Invalid subjects are left
// for Validate to report.
func canonicalSubjects(entries []domain.ACLEntry) []domain.ACLEntry {
	out := make([]domain.ACLEntry, len(entries))
	for i, e := range entries {
		if name, err := domain.ParseSubject(e.Subject); err == nil {
			e.Subject = domain.SubjectOf(name)
		}
		out[i] = e
	}
	return out
}

// Import creates or updates users and entries in one transaction.
func (a *SecurityAdmin) Import(ctx context.Context, by ports.Actor, users []ports.ImportUser, entries []domain.ACLEntry) error {
	for _, u := range users {
		if err := domain.ValidateUserName(u.Name); err != nil {
			return err
		}
		if u.Secret != nil {
			if err := domain.ValidateImportedSecret(u.Secret); err != nil {
				return domain.Errorf(domain.ReasonBadRequest, "user %q: %s", u.Name, domain.MessageOf(err))
			}
		}
		if u.Description != nil {
			if err := domain.ValidateDescription(*u.Description); err != nil {
				return err
			}
		}
		if err := domain.ValidateDescription(u.DescriptionIfNew); err != nil {
			return err
		}
	}
	entries = canonicalSubjects(entries)
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	return a.store.Import(ctx, by, users, entries)
}

// QueryAudit returns audit events, newest first.
func (a *SecurityAdmin) QueryAudit(ctx context.Context, q domain.AuditQuery) ([]domain.AuditEvent, error) {
	if q.Limit < 0 || q.Limit > domain.MaxAuditQueryLimit {
		return nil, domain.Errorf(domain.ReasonBadRequest, "limit must be between 1 and %d", domain.MaxAuditQueryLimit)
	}
	// Matched exactly by the store: an unknown value (a typo, "deny" not
	// upper-cased by a caller) would find nothing and look like a quiet log.
	switch q.Decision {
	case "", domain.AuditAllow, domain.AuditDeny, domain.AuditError:
	default:
		return nil, domain.Errorf(domain.ReasonBadRequest, "audit decision %q must be %s, %s or %s", q.Decision, domain.AuditAllow, domain.AuditDeny, domain.AuditError)
	}
	switch q.Category {
	case "", domain.AuditAuthn, domain.AuditAuthz, domain.AuditAdmin, domain.AuditSystem:
	default:
		return nil, domain.Errorf(domain.ReasonBadRequest, "audit category %q must be %s, %s, %s or %s", q.Category, domain.AuditAuthn, domain.AuditAuthz, domain.AuditAdmin, domain.AuditSystem)
	}
	return a.store.QueryAudit(ctx, q)
}
