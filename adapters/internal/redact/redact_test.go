package redact_test

import (
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/internal/redact"
)

func TestUserinfo(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pass@host:4317":      "https://user:REDACTED@host:4317",
		"https://token@host:4317":          "https://REDACTED@host:4317",
		"https://user:p/a?s#s@host:4317/x": "https://user:REDACTED@host:4317/x",
		"user:pass@host:9876":              "user:REDACTED@host:9876",
		"http://user:pass@[::1":            "http://user:REDACTED@[::1",
		"https://user:p@ss@host":           "https://user:REDACTED@host",
		"https://host:4317":                "https://host:4317",
		"127.0.0.1:9876":                   "127.0.0.1:9876",
		"":                                 "",
		"@":                                "REDACTED@",
		"https://:pass@host":               "https://:REDACTED@host",
	} {
		if got := redact.Userinfo(in); got != want {
			t.Errorf("Userinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
