// Package casbin is rmqproxy's authorizer: it compiles the ACL 2.0 entries
// of a policy snapshot into casbin (github.com/casbin/casbin/v2) enforcers,
// one per subject, and decides access requests with a bounded decision
// cache (ports.PolicyCompiler, ports.Policy).
//
// The model (model.conf, embedded) evaluates a subject's entries in the
// order of [domain.ACLEntry.Priority] and lets the first match decide, with
// default deny, which gives both conflict modes (deny_overrides and
// rocketmq, Apache RocketMQ's most-specific-wins) from the priority alone.
// Entries reach casbin through [Adapter], a read-only persist.Adapter and
// persist.FilteredAdapter over the snapshot's entries (its rows are built
// as arrays, never parsed from CSV lines). A compiled policy is never
// changed: a new snapshot compiles a new policy with an empty cache, which
// is how the cache is invalidated.
//
// Decisions agree with [domain.EvaluateACL], the reference semantics; the
// tests compare the two on generated policies.
package casbin
