package domain

import "unicode/utf8"

// Clip shortens s to at most maxBytes bytes, cut where a character starts,
// and marks the cut with "...": what error messages and log lines quote of
// text a client or a peer sent, which can be of any length.
func Clip(s string, maxBytes int) string {
	if len(s) <= maxBytes {
		return s
	}
	cut := maxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
