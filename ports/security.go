package ports

import (
	"context"
	"net/netip"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// PolicySource is where users, their secrets and ACL entries come from
// (PostgreSQL, a policy file). The hot path never calls it: the security
// use case loads a snapshot at start and then receives new ones.
type PolicySource interface {
	// Load reads the current policy.
	Load(ctx context.Context) (domain.PolicySnapshot, error)
	// Watch calls apply with every changed snapshot until ctx ends (its
	// revision may be lower than current when the store went back, as a
	// restored database does); it returns only then. When the source is
	// unreachable it keeps the last snapshot in force, reports the reason
	// through Health and retries.
	// An apply error (a snapshot the authorizer refuses) keeps the
	// previous snapshot too.
	Watch(ctx context.Context, current int64, apply func(domain.PolicySnapshot) error)
	// Health returns nil, or why the policy in force may be stale.
	Health() error
}

// PolicyCompiler turns the ACL entries of a snapshot into a [Policy].
type PolicyCompiler interface {
	Compile(entries []domain.ACLEntry) (Policy, error)
}

// Policy decides access requests for subjects. It is immutable and safe
// for concurrent use; it may cache decisions (a new snapshot compiles a new
// Policy, which is how caches are invalidated).
type Policy interface {
	Decide(subject string, req domain.AccessRequest) domain.AccessDecision
}

// AuditSink records audit events off the hot path. Record never blocks:
// when its bounded buffer is full the event is dropped and counted, never
// silently.
type AuditSink interface {
	Record(e domain.AuditEvent)
	// RecordWithin is Record for an event whose action must not happen
	// without it (an allowed admin call): it waits up to wait, or until
	// ctx ends, for room in the buffer, and reports whether the event was
	// taken. An event not taken is counted as dropped; the caller then
	// refuses the action.
	RecordWithin(ctx context.Context, e domain.AuditEvent, wait time.Duration) bool
	// Dropped returns how many events were dropped so far.
	Dropped() uint64
	// Stats returns the sink's counters, for metrics.
	Stats() AuditStats
}

// AuditStats are an audit sink's counters. Written and Dropped never
// decrease; Buffered is the occupancy of the bounded buffer (at most
// Capacity) at the time of the call.
type AuditStats struct {
	Written  uint64 // events written to the audit store
	Dropped  uint64 // events dropped because the buffer was full
	Buffered int    // events waiting in the buffer
	Capacity int    // size of the buffer
	// Refusals coalesced (application.AuditCoalescer): Coalesced counts
	// refusals recorded in a coalesced event instead of their own,
	// CoalescedOverflow those of them over a key bound (recorded per
	// origin without their details); CoalescingKeys is how many keys and
	// aggregates are held (at the time of the call).
	Coalesced         uint64
	CoalescedOverflow uint64
	CoalescingKeys    int
}

// Actor is who makes an administrative change, for the audit record
// written with it.
type Actor struct {
	Principal string
	SourceIP  netip.Addr
	Protocol  string // "cli", "admin-http", "remoting"
	RequestID string
}

// UserUpdate changes some of a user's fields; nil fields stay.
type UserUpdate struct {
	Type        *domain.UserType
	Status      *domain.UserStatus
	Description *string
	Secret      domain.Secret // nil: keep
}

// ImportUser is a user as an import file gives it. A field the file
// leaves out is nil (Secret: empty): an existing user keeps what is stored
// (an import never demotes, disables or re-enables a user it says nothing
// about), a new user gets the default (Normal, enable, no description) and
// must have a secret.
type ImportUser struct {
	Name string
	UserUpdate
	// DescriptionIfNew is the description of a user the import creates
	// when Description is nil; an existing user keeps its own.
	DescriptionIfNew string
}

// PutMode says what PutEntries requires of the entries it writes. The
// store checks it in the transaction that writes them, so that it holds
// whatever other changes run at the same time.
type PutMode uint8

// Put modes.
const (
	// PutUpsert creates an entry or replaces the one with its key.
	PutUpsert PutMode = iota
	// PutCreate creates entries; one whose key exists already fails the
	// whole change with ReasonAlreadyExists (acl create).
	PutCreate
	// PutReplace replaces entries; one whose key does not exist fails the
	// whole change with ReasonNotFound (acl update).
	PutReplace
)

// EntryFilter selects ACL entries; empty fields select all.
type EntryFilter struct {
	Subject    string // exact
	Resource   string // exact resource key
	PolicyType *domain.PolicyType
}

// SecurityStore is the administrative side of the policy store: users and
// ACL entries, changed in transactions that also write their audit
// record, and the audit log. Errors carry ReasonNotFound,
// ReasonAlreadyExists, ReasonBadRequest or ReasonUnavailable.
type SecurityStore interface {
	CreateUser(ctx context.Context, by Actor, u domain.User, secret domain.Secret) error
	UpdateUser(ctx context.Context, by Actor, name string, upd UserUpdate) (domain.User, error)
	// DeleteUser deletes a user and its ACL entries; it refuses to delete
	// the last enabled super user.
	DeleteUser(ctx context.Context, by Actor, name string) error
	GetUser(ctx context.Context, name string) (domain.User, error)
	// ListUsers lists users whose name contains filter (literally).
	ListUsers(ctx context.Context, filter string) ([]domain.User, error)

	// PutEntries creates or replaces entries by their key (subject,
	// policy type, resource), as mode requires, all in one transaction.
	PutEntries(ctx context.Context, by Actor, entries []domain.ACLEntry, mode PutMode) error
	// DeleteEntries deletes the entries f selects (f.Subject is required)
	// and returns how many.
	DeleteEntries(ctx context.Context, by Actor, f EntryFilter) (int, error)
	ListEntries(ctx context.Context, f EntryFilter) ([]domain.ACLEntry, error)

	// Import creates or updates users (with their secrets when given) and
	// entries in one transaction, audited as the single operations are
	// (user.create, user.update, acl.put). Like UpdateUser it refuses to
	// leave no enabled super user when it demotes or disables one.
	Import(ctx context.Context, by Actor, users []ImportUser, entries []domain.ACLEntry) error

	// RecordAdmin writes one audit event synchronously (for refused admin
	// attempts, which change nothing).
	RecordAdmin(ctx context.Context, e domain.AuditEvent) error
	QueryAudit(ctx context.Context, q domain.AuditQuery) ([]domain.AuditEvent, error)
}
