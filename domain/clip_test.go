package domain_test

import (
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
)

func TestClipCutsWhereACharacterStarts(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 8, "short"},
		{"exactly8", 8, "exactly8"},
		{"abcdefghij", 4, "abcd..."},
		{"ab\u00e9cd", 3, "ab..."}, // é is two bytes: not cut in half
		{"\u4e16\u754c", 2, "..."},
	} {
		if got := domain.Clip(c.in, c.max); got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
