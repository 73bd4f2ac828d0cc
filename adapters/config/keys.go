package config

import (
	"strings"
	"unicode"
)

// validationError turns an error of sec's Validate into a [*FieldError]
// that names settings by their full keys. A Config only knows its own keys,
// and by convention its messages start with the one they are about
// ("flush must be sync or async"); here, where the whole tree is known,
// that key becomes the error's Key and is written in full in the message
// ("local.flush must be sync or async"), as are the other camelCase or
// dotted keys of sec the message names ("segmentSize must be >
// maxRecordSize"). A leading word that is no key and ends in a colon (a
// package name) is dropped. A message that names no key keeps sec's key
// path as its Key, written before it.
func (s *schema) validationError(sec *field, err error) error {
	msg := err.Error()
	for range 2 {
		word, rest, ok := strings.Cut(msg, ": ")
		if !ok || strings.ContainsAny(word, " \"") || s.resolve(sec, word) != nil {
			break
		}
		msg = rest
	}
	tokens := tokenize(msg)
	if len(tokens) == 0 || tokens[0].start != 0 {
		return &FieldError{Key: sec.key, Err: err}
	}
	lead := s.resolve(sec, msg[:tokens[0].end])
	if lead == nil {
		return &FieldError{Key: sec.key, Err: err}
	}
	// Later names are read relative to the section the leading key is in
	// (or is, when it is a section followed by a colon), then to sec.
	ctx := s.parent(lead)
	if lead.section && strings.HasPrefix(msg[tokens[0].end:], ":") {
		ctx = lead
	}
	var b strings.Builder
	b.WriteString(lead.key)
	last := tokens[0].end
	for _, tk := range tokens[1:] {
		word := msg[tk.start:tk.end]
		if !strings.ContainsFunc(word, func(r rune) bool { return r == '.' || unicode.IsUpper(r) }) {
			continue // a plain word: too likely English ("enabled", "address")
		}
		f := s.resolve(ctx, word)
		if f == nil {
			f = s.resolve(sec, word)
		}
		if f == nil {
			continue
		}
		b.WriteString(msg[last:tk.start])
		b.WriteString(f.key)
		last = tk.end
	}
	b.WriteString(msg[last:])
	return &FieldError{Key: lead.key, Err: &keyedError{msg: b.String(), err: err}}
}

// keyedError is a validation error's message with full keys; it unwraps to
// the Config's error.
type keyedError struct {
	msg string
	err error
}

func (e *keyedError) Error() string { return e.msg }
func (e *keyedError) Unwrap() error { return e.err }

// resolve finds the setting or section that name (relative to sec) names.
func (s *schema) resolve(sec *field, name string) *field {
	if name == "" {
		return nil
	}
	if sec.key != "" {
		name = sec.key + "." + name
	}
	return s.byKey[name]
}

// parent returns the section f is in.
func (s *schema) parent(f *field) *field {
	i := strings.LastIndexByte(f.key, '.')
	if i < 0 {
		return s.root
	}
	return s.byKey[f.key[:i]]
}

// span is a token's place in a message.
type span struct{ start, end int }

// tokenize finds the identifiers (letters, digits, dots inside) of msg
// outside double-quoted text, which quotes a user's value.
func tokenize(msg string) []span {
	var out []span
	inQuote, escaped := false, false
	start := -1
	isIdent := func(r rune) bool {
		return r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.')
	}
	flush := func(end int) {
		if start >= 0 {
			tok := strings.TrimRight(msg[start:end], ".")
			if tok != "" && !strings.HasPrefix(tok, ".") {
				out = append(out, span{start, start + len(tok)})
			}
			start = -1
		}
	}
	for i, r := range msg {
		switch {
		case inQuote:
			switch {
			case escaped:
				escaped = false
			case r == '\\':
				escaped = true
			case r == '"':
				inQuote = false
			}
		case r == '"':
			flush(i)
			inQuote = true
		case isIdent(r):
			if start < 0 {
				start = i
			}
		default:
			flush(i)
		}
	}
	flush(len(msg))
	return out
}
