package config

import (
	"errors"
	"strconv"
	"strings"

	"github.com/rmqproxy/rmqproxy/adapters/internal/redact"
)

// ErrHelp is returned by [Load] when the flags ask for help (--help, -h);
// the caller prints [Reference] (see [WriteHelp]) and exits successfully.
var ErrHelp = errors.New("config: help requested")

// ErrUsage matches (with errors.Is) an error of [Load] when some of the
// errors it joins are in the command line itself: an unknown flag, a flag
// value that does not parse, an argument that is not a flag. The caller
// treats them as usage errors; the same mistakes in the file or the
// environment, and failed validations, do not match.
var ErrUsage = errors.New("config: usage error")

// loadErrors are the errors of a [Load], joined as [errors.Join] joins
// them; Is reports [ErrUsage] when the command line caused some of them.
type loadErrors struct {
	errs  []error
	usage bool
}

func (e *loadErrors) Error() string   { return errors.Join(e.errs...).Error() }
func (e *loadErrors) Unwrap() []error { return e.errs }
func (e *loadErrors) Is(target error) bool {
	return e.usage && target == ErrUsage
}

// FieldError is a value that could not be applied to a setting, or a failed
// Validate of a struct.
type FieldError struct {
	Key    string // dotted key; for a validation error the key its message starts with, else the struct's key path ("" for the root)
	Source string // "rmqproxy.yaml:12", "environment RMQPROXY_GRPC_ADDRESS", "flag --grpc.address"; "" for validation
	Value  string // the offending text, "" when not applicable or a secret
	Err    error
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	msg := e.Err.Error()
	if e.Key != "" && !strings.HasSuffix(e.Source, e.Key) && !startsWithKey(msg, e.Key) {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	if e.Value != "" {
		b.WriteString("invalid value ")
		b.WriteString(quoteShort(e.Value))
		b.WriteString(": ")
	}
	b.WriteString(msg)
	return b.String()
}

// startsWithKey reports whether msg names key first (a validation message
// written with full keys), so that the key need not be repeated before it.
func startsWithKey(msg, key string) bool {
	if !strings.HasPrefix(msg, key) {
		return false
	}
	rest := msg[len(key):]
	return rest == "" || strings.IndexAny(rest[:1], ".abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") < 0
}

func (e *FieldError) Unwrap() error { return e.Err }

// UnknownKeyError is a key in the file, an RMQPROXY_ variable or a flag that
// names no setting.
type UnknownKeyError struct {
	Key        string // as written: "grpc.adress", "RMQPROXY_GRPC_ADRESS", "--grpc.adress"
	Source     string // "rmqproxy.yaml:3", "environment", "flags"
	Suggestion string // closest valid key in the same form, "" if none is close
}

func (e *UnknownKeyError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	b.WriteString(": unknown ")
	switch {
	case strings.HasPrefix(e.Key, "-"):
		b.WriteString("flag ")
	case strings.HasPrefix(e.Key, EnvPrefix):
		b.WriteString("environment variable ")
	default:
		b.WriteString("key ")
	}
	b.WriteString(quoteShort(e.Key))
	if e.Suggestion != "" {
		b.WriteString(" (did you mean ")
		b.WriteString(e.Suggestion)
		b.WriteString("?)")
	}
	return b.String()
}

// ArgumentError is a command-line argument that is not a flag (settings
// are flags only): a caller can tell a command word given after flags
// ("rmqproxy --log.level debug migrate up") from other mistakes.
type ArgumentError struct {
	Arg string
	// AfterSecret is the key of the secret flag given empty (--key=) just
	// before Arg, which may then be the secret's value: the message does
	// not show Arg.
	AfterSecret string
}

func (e *ArgumentError) Error() string {
	if e.AfterSecret != "" {
		return "flags: unexpected argument after --" + e.AfterSecret + "= (not shown: it may be the secret's value, cut off by a space); " +
			"write --" + e.AfterSecret + "=VALUE, or better set it through " + envName(e.AfterSecret) + " or the configuration file"
	}
	// An argument may be a value that lost its flag ("--postgres.dsn= URL"):
	// its password is not echoed.
	return "flags: unexpected argument " + quoteShort(redact.Userinfo(e.Arg)) + "; settings are flags such as --grpc.address=:8081"
}

// shownValue is the text of a refused value of f that its error may show:
// none for a secret (even its first characters would give part of it
// away), except Print's placeholder, which is no secret.
func shownValue(f *field, s string) string {
	if f.secret && s != redacted {
		return ""
	}
	return s
}

// quoteShort quotes s for an error message, shortening it so that a huge
// value cannot flood a log line.
func quoteShort(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}
