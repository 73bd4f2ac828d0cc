package domain

import (
	"net/netip"
	"time"
)

// AuditEvent records one security decision or administrative change: who
// (the principal, or the AccessKey a failed authentication claimed), from
// where, over which protocol, doing what to which resource, and the
// outcome with its reason. It never carries secrets, signatures or message
// bodies.
type AuditEvent struct {
	// ID, ProxyID and Seq identify a stored event (the audit store sets
	// them; they are empty in an event being recorded): ID is unique, Seq
	// counts the events of the writer ProxyID (one process), and is 0 for
	// the events an administrative change writes with it.
	ID        string
	ProxyID   string
	Seq       int64
	Time      time.Time
	Category  string // AuditAuthn, AuditAuthz, AuditAdmin, AuditSystem
	Principal string
	SourceIP  netip.Addr
	Protocol  string // "grpc", "remoting", "admin-http", "cli"
	Operation string // e.g. "SendMessage", "user.create"
	Resource  string // resource key, e.g. "Topic:orders"
	Actions   string // e.g. "Pub,Sub"
	Decision  string // AuditAllow, AuditDeny, AuditError
	Reason    string
	Revision  int64 // policy revision the decision used
	RequestID string
	ClientID  string
	Details   string // JSON object, bounded; optional
	// Occurrences is how many refusals a coalesced event stands for
	// (0 or 1: the event is one decision), from Time to LastTime (zero:
	// Time): repeated refusals are recorded as one event with a count
	// (see application.AuditCoalescer).
	Occurrences int64
	LastTime    time.Time
}

// Refusal reports whether e records a refused request (an authentication
// failure or an authorization denial), which a client can cause at will
// and repeat: those may be coalesced and are bounded in the audit buffer.
// A revocation (operation "revoke") is the proxy acting on a policy change,
// not a refused request.
func (e AuditEvent) Refusal() bool {
	return e.Decision == AuditDeny && (e.Category == AuditAuthn || e.Category == AuditAuthz) && e.Operation != "revoke"
}

// Count returns how many decisions e stands for: Occurrences, at least 1.
func (e AuditEvent) Count() int64 { return max(e.Occurrences, 1) }

// Audit categories and decisions.
const (
	AuditAuthn  = "authn"
	AuditAuthz  = "authz"
	AuditAdmin  = "admin"
	AuditSystem = "system"

	AuditAllow = "ALLOW"
	AuditDeny  = "DENY"
	AuditError = "ERROR"
)

// AuditQuery selects audit events, newest first.
type AuditQuery struct {
	Principal string    // exact; empty: any
	Decision  string    // exact; empty: any
	Category  string    // exact; empty: any
	Since     time.Time // inclusive; zero: no bound
	Until     time.Time // exclusive; zero: no bound
	Limit     int       // at most this many (1..MaxAuditQueryLimit; 0: 1000)
	// What an event names, each exact; empty: any.
	Resource  string
	Operation string
	RequestID string
	ClientID  string
	// Source selects events from an address in the prefix; the zero
	// prefix: any.
	Source netip.Prefix
}

// MaxAuditQueryLimit is the most events one audit query returns.
const MaxAuditQueryLimit = 10000
