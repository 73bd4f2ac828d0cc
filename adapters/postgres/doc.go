// Package postgres keeps rmqproxy's security state in PostgreSQL (pgx/v5):
// users and their secrets (AES-256-GCM under keys from the configuration,
// never in clear in the database), ACL 2.0 entries, the policy revision,
// and the append-only audit log; it also applies the embedded schema
// migrations (golang-migrate).
//
// It provides:
//   - [Store]: the administrative side (ports.SecurityStore); every change
//     and its audit record commit in one transaction, which also bumps the
//     policy revision and NOTIFYs the proxies (a trigger does both);
//   - [Source]: the ports.PolicySource the proxies load their snapshot from,
//     in one REPEATABLE READ transaction, then follow with LISTEN/NOTIFY
//     (changes arrive within a second) and a periodic revision check as a
//     backstop. When PostgreSQL is unreachable, the last snapshot stays in
//     force, Health reports why, and the source reconnects by itself;
//   - [AuditWriter]: the ports.AuditSink that batches events off the hot
//     path into the audit table through a bounded buffer; events that do
//     not fit are counted (Dropped) and reported as a system event once
//     writing resumes. Each event has an id and a seq from the moment it is
//     recorded, and a retried batch never stores an event twice;
//   - [Migrate] and [CheckSchema]: schema management, and the refusal to
//     run against a schema this build does not know.
//
// Every SQL statement is a constant with positional parameters; no value
// is ever formatted into SQL.
package postgres
