package config

import "strings"

// closest returns the candidate nearest to s by edit distance (ignoring
// case), or "" when none is near enough to be a plausible typo. A candidate
// whose last path element equals s's also counts as near (address →
// grpc.address).
func closest(s string, candidates []string) string {
	ls := strings.ToLower(s)
	best, bestD := "", -1
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := distance(ls, lc)
		if !strings.Contains(ls, ".") && strings.HasSuffix(lc, "."+ls) {
			d = min(d, 1)
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(s)/3) {
		return ""
	}
	return best
}

// distance is the Levenshtein distance between a and b, bounded in cost by
// truncating very long inputs (a typo is never kilobytes long).
func distance(a, b string) int {
	const limit = 256
	if len(a) > limit {
		a = a[:limit]
	}
	if len(b) > limit {
		b = b[:limit]
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Closest returns the candidate nearest to s, as the suggestions of [Load]'s
// errors choose it (edit distance ignoring case, or the same last path
// element), or "" when none is a plausible typo of s. The CLI uses it for
// its own commands and flags, so every "did you mean" reads alike.
func Closest(s string, candidates []string) string { return closest(s, candidates) }
