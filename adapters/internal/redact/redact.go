// Package redact hides the credentials an address or URL setting may carry
// before the value is echoed in an error or a log line. Adapters never
// import each other; this package is how they share the rule.
//
// Userinfo never fails: it takes text that may not parse as a URL at all
// (it is called on values being refused), and errs on the side of hiding
// too much.
package redact

import "strings"

// Placeholder replaces a password (or a lone user name, which may be a
// token) in echoed text; the same word config print shows for secrets.
const Placeholder = "REDACTED"

// Userinfo returns s with the userinfo of its authority hidden:
// https://user:pass@host:4317 becomes https://user:REDACTED@host:4317 and
// https://token@host becomes https://REDACTED@host. The authority starts
// after "://" (or at the start of s when it has none), and its userinfo
// ends at the last "@" of the rest, so that a password holding "/", "?" or
// "#" is hidden too. Text without "@" is returned unchanged.
func Userinfo(s string) string {
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndexByte(s[start:], '@')
	if at < 0 {
		return s
	}
	userinfo := s[start : start+at]
	masked := Placeholder
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		masked = user + ":" + Placeholder
	}
	return s[:start] + masked + s[start+at:]
}
