package application

import "strings"

// compareVersions compares two client versions ("5.0.3", "5.1.4",
// "5.0.10-SNAPSHOT") component by component as numbers, so that 5.0.10
// comes after 5.0.3. A component's non-digit suffix is ignored, a missing
// component counts as 0, and an empty version is older than any other.
func compareVersions(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "":
		return -1
	case b == "":
		return 1
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		x, y := versionPart(as, i), versionPart(bs, i)
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// versionPart is the number the leading digits of parts[i] spell, 0 when
// there are none; it saturates rather than overflow.
func versionPart(parts []string, i int) uint64 {
	if i >= len(parts) {
		return 0
	}
	var n uint64
	for _, c := range parts[i] {
		if c < '0' || c > '9' {
			break
		}
		if n > (1<<63)/10 {
			return 1 << 63
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}
