// Package trafficfile reads the traffic rules file (traffic.rulesFile):
// rate limits in messages and body bytes per second for each client, topic,
// consumer group, namespace and user, in YAML or JSON (the format is in
// docs/operations.md). [Source] puts the file's rules in force at start
// (a file that does not load fails start-up), then reloads it when its
// content changes (checked every traffic.reloadInterval) and at once on
// SIGHUP; a file that does not load later is logged, reported as degraded
// by /readyz, and the rules in force stay.
//
// [Decode] never panics on any input; it returns an error naming the
// offending entry.
package trafficfile
