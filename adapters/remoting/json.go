package remoting

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rmqproxy/rmqproxy/domain"
)

// maxJSONDepth bounds nesting in every JSON this package scans, so that a
// hostile "[[[[..." cannot exhaust the stack.
const maxJSONDepth = 64

// jsonScanner is a small, allocation-light JSON reader over a string. It
// accepts what fastjson emits and reads: standard JSON plus unquoted object
// keys (numbers or identifiers, as fastjson writes non-string map keys)
// and object or array keys (as it writes maps keyed by objects). Strings
// without escapes are returned as substrings of s.
type jsonScanner struct {
	s    string
	i    int
	base int // added to offsets in errors
}

func (p *jsonScanner) err(reason string) error { return frameErr(p.base+p.i, reason) }

func (p *jsonScanner) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, or 0 at the end.
func (p *jsonScanner) peek() byte {
	p.ws()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *jsonScanner) expect(c byte) error {
	if p.peek() != c {
		return p.err("expected '" + string(c) + "'")
	}
	p.i++
	return nil
}

// str reads a JSON string; the opening quote is next.
func (p *jsonScanner) str() (string, error) {
	if p.peek() != '"' {
		return "", p.err("expected a string")
	}
	p.i++
	start := p.i
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case '"':
			v := p.s[start:p.i]
			p.i++
			return v, nil
		case '\\':
			return p.strEscaped(start)
		}
		p.i++
	}
	return "", p.err("unterminated string")
}

func (p *jsonScanner) strEscaped(start int) (string, error) {
	var b strings.Builder
	b.Grow(p.i - start + 16)
	b.WriteString(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c != '\\':
			b.WriteByte(c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.s) {
			break
		}
		e := p.s[p.i]
		p.i++
		switch e {
		case '"', '\\', '/', '\'':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.err("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				if p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					r2, ok := p.hex4()
					if ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							b.WriteRune(d)
							continue
						}
					}
					p.i = save
				}
				r = utf8.RuneError
			}
			b.WriteRune(r)
		default:
			return "", p.err("bad escape \\" + string(e))
		}
	}
	return "", p.err("unterminated string")
}

func (p *jsonScanner) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	v, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 16)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

// literal reads a number, true, false or null and returns its text.
func (p *jsonScanner) literal() (string, error) {
	p.ws()
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == ',' || c == '}' || c == ']' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '{' || c == '[' {
			break
		}
		p.i++
	}
	if p.i == start {
		return "", p.err("expected a value")
	}
	return p.s[start:p.i], nil
}

// key reads an object key: a string, or (fastjson) a bare literal, or an
// object/array whose raw text becomes the key.
func (p *jsonScanner) key(depth int) (string, error) {
	switch p.peek() {
	case '"':
		return p.str()
	case '{', '[':
		start := p.i
		if err := p.skip(depth + 1); err != nil {
			return "", err
		}
		return p.s[start:p.i], nil
	}
	return p.literal()
}

// skip skips one value.
func (p *jsonScanner) skip(depth int) error {
	if depth > maxJSONDepth {
		return p.err("JSON nested deeper than " + strconv.Itoa(maxJSONDepth))
	}
	switch p.peek() {
	case '"':
		_, err := p.str()
		return err
	case '{':
		return p.object(depth, func(string) error { return p.skip(depth + 1) })
	case '[':
		p.i++
		if p.peek() == ']' {
			p.i++
			return nil
		}
		for {
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			switch p.peek() {
			case ',':
				p.i++
			case ']':
				p.i++
				return nil
			default:
				return p.err("expected ',' or ']'")
			}
		}
	}
	_, err := p.literal()
	return err
}

// object reads an object, calling member for each key with the scanner
// positioned at the value (which member must consume).
func (p *jsonScanner) object(depth int, member func(key string) error) error {
	if depth > maxJSONDepth {
		return p.err("JSON nested deeper than " + strconv.Itoa(maxJSONDepth))
	}
	if err := p.expect('{'); err != nil {
		return err
	}
	if p.peek() == '}' {
		p.i++
		return nil
	}
	for {
		k, err := p.key(depth)
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		if err := member(k); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.err("expected ',' or '}'")
		}
	}
}

// int32Value reads a number (or a string holding one) that must fit int32.
func (p *jsonScanner) int32Value() (int32, error) {
	var text string
	var err error
	if p.peek() == '"' {
		text, err = p.str()
	} else {
		text, err = p.literal()
	}
	if err != nil {
		return 0, err
	}
	v, perr := strconv.ParseInt(text, 10, 32)
	if perr != nil {
		return 0, p.err("not a 32-bit integer: " + strconv.Quote(clip(text)))
	}
	return int32(v), nil
}

// scalar reads a value as ext fields hold it: a string as is, a number or
// boolean as its text; ok is false for null. Objects and arrays are kept
// as their raw text.
func (p *jsonScanner) scalar(depth int) (v string, ok bool, err error) {
	switch p.peek() {
	case '"':
		v, err = p.str()
		return v, err == nil, err
	case '{', '[':
		start := p.i
		err = p.skip(depth + 1)
		return p.s[start:p.i], err == nil, err
	}
	v, err = p.literal()
	if err != nil || v == "null" {
		return "", false, err
	}
	return v, true, nil
}

func clip(s string) string { return domain.Clip(s, 32) }

// appendJSONString appends s as a JSON string. Bytes are copied as they
// are (invalid UTF-8 included, so that decoding gives s back); quotes,
// backslashes and control characters are escaped.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
