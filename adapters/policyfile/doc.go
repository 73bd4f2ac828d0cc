// Package policyfile reads users and ACL 2.0 policies from files, for local
// mode without PostgreSQL, and converts Apache RocketMQ's formats:
//
//   - the policy file (auth.source file): YAML or JSON with users (name,
//     secret, type, status) and ACLs in the shape of ACL 2.0's AclInfo
//     (subject, policies of policyType with entries of resource, actions,
//     sourceIps, decision). [Source] reloads it when it changes; a file that
//     does not parse keeps the previous policy in force;
//   - an ACL 2.0 export (the JSON bodies of LIST_USER and LIST_ACL, UserInfo
//     and AclInfo arrays), read by [Decode] as well;
//   - a classic ACL 1.0 plain_acl.yml ([DecodePlainACL]), converted as
//     upstream's AuthMigrator does, with source addresses kept.
//
// It also provides [LogAudit], an audit sink writing JSON lines to the
// process log through a bounded buffer, for setups without PostgreSQL.
//
// Decoders never panic on any input; they return errors naming the
// offending user, ACL or entry.
package policyfile
