package config

import "log/slog"

const redacted = "REDACTED"

// Secret is a string that never shows itself: String, GoString, MarshalText
// and LogValue all print REDACTED (or nothing when empty), so a password or
// token in a Config field cannot leak through fmt, slog, encoding/json or a
// YAML dump of the struct. A Secret field is a secret setting without the
// secret:"true" tag. Use Reveal where the real value is needed.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns REDACTED, or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return "config.Secret(" + `"` + s.String() + `"` + ")" }

// LogValue implements [slog.LogValuer].
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler with the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
