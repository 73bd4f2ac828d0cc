package tlsversion_test

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/internal/tlsversion"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"", tls.VersionTLS12, true},
		{"1.2", tls.VersionTLS12, true},
		{"1.3", tls.VersionTLS13, true},
		{"1.1", 0, false},
		{"1.0", 0, false},
		{"TLS1.3", 0, false},
		{"1.30", 0, false},
		{"tls13", 0, false},
		{" 1.3", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := tlsversion.Parse(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("Parse(%q) = %#x, %v; want %#x, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "1.2 or 1.3") {
				t.Errorf("the error does not name the allowed values: %v", err)
			}
			if err == nil && tc.in != "" && tlsversion.Name(got) != tc.in {
				t.Errorf("Name(%#x) = %q, want %q", got, tlsversion.Name(got), tc.in)
			}
		})
	}
}
