package application

import "testing"

func TestCompareVersions(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"5.0.10", "5.0.3", 1},
		{"5.0.3", "5.0.10", -1},
		{"5.0.3", "5.0.3", 0},
		{"5.0", "5.0.0", 0},
		{"5.1.4", "5.0.3", 1},
		{"5.0.2", "5.0.3", -1},
		{"", "5.0.3", -1},
		{"5.0.3", "", 1},
		{"5.0.10-SNAPSHOT", "5.0.3", 1},
		{"1.0.1", "5.0.3", -1},
		{"x.y", "5.0.3", -1},
		{"99999999999999999999999.0", "5.0.3", 1},
	}
	for _, c := range cases {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
