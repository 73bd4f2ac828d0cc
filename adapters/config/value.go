package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// maxValueLen bounds a single value so that a hostile file or environment
// cannot make a parser do unbounded work.
const maxValueLen = 64 << 10

// errPlaceholder is the error of a secret set to the text Print writes
// for it. Load reports it only when no later source sets the secret.
var errPlaceholder = errors.New("it is the placeholder `rmqproxy config print` writes for a secret")

// withExpected adds to err, the error of parsing a value of f, what such
// a value looks like, unless err says so already.
func withExpected(err error, f *field) error {
	if errors.Is(err, errPlaceholder) || strings.Contains(err.Error(), expected(f)) {
		return err
	}
	return fmt.Errorf("%w; expected %s", err, expected(f))
}

// expected describes the accepted form of a kind, for error messages.
func expected(f *field) string {
	if f.enum != nil {
		return orList(f.enum)
	}
	switch f.kind {
	case kindBool:
		return "true or false"
	case kindInt:
		bits := f.typ.Bits()
		return fmt.Sprintf("a whole number between %d and %d", int64(-1)<<(bits-1), uint64(1)<<(bits-1)-1)
	case kindBytes:
		return "a byte size such as 4MiB, 512KiB, 1GiB, 10MB or 4194304"
	case kindFloat:
		return "a number such as 2 or 1.5"
	case kindDuration:
		return "a duration such as 10s, 1h30m or 250ms"
	case kindList:
		return "a list of strings (a YAML sequence; comma-separated in the environment and flags)"
	case kindText:
		return "a " + typeName(f)
	default:
		return "a string"
	}
}

// typeName is the type shown by --help and the README.
func typeName(f *field) string {
	switch f.kind {
	case kindBool:
		return "bool"
	case kindInt:
		return f.typ.Kind().String()
	case kindBytes:
		return "bytes"
	case kindFloat:
		return "float"
	case kindDuration:
		return "duration"
	case kindList:
		return "list"
	case kindText:
		return f.typ.String()
	default:
		if f.secret {
			return "secret"
		}
		return "string"
	}
}

// setText parses s as the value of leaf f and stores it in v. A list is
// comma-separated, with blanks around items trimmed and empty items dropped.
func setText(f *field, v reflect.Value, s string) error {
	if len(s) > maxValueLen {
		return fmt.Errorf("value is longer than %d bytes", maxValueLen)
	}
	if f.kind == kindList {
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		if items == nil {
			items = []string{}
		}
		v.Set(reflect.ValueOf(items))
		return nil
	}
	return setScalar(f, v, s)
}

// setScalar parses s as the value of a non-list leaf f and stores it in v.
func setScalar(f *field, v reflect.Value, s string) error {
	if len(s) > maxValueLen {
		return fmt.Errorf("value is longer than %d bytes", maxValueLen)
	}
	switch f.kind {
	case kindString:
		if f.secret && s == redacted {
			return fmt.Errorf("%w; give the real value (%s keeps it out of files and command lines)", errPlaceholder, f.env)
		}
		if f.enum != nil {
			w, err := parseEnum(f, s)
			if err != nil {
				return err
			}
			s = w
		}
		v.SetString(s)
	case kindBool:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case kindInt:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 0, f.typ.Bits())
		if err != nil {
			return errors.New("not " + expected(f))
		}
		v.SetInt(n)
	case kindBytes:
		n, err := ParseBytes(s)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case kindFloat:
		x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return errors.New("not " + expected(f))
		}
		v.SetFloat(x)
	case kindDuration:
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case kindText:
		p := reflect.New(f.typ)
		if err := p.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return err
		}
		v.Set(p.Elem())
	default:
		return fmt.Errorf("cannot set a %s from one value", typeName(f))
	}
	return nil
}

// parseEnum returns the word of f's enum that s is, in any case and with
// blanks around it, in its documented spelling.
func parseEnum(f *field, s string) (string, error) {
	t := strings.TrimSpace(s)
	for _, w := range f.enum {
		if strings.EqualFold(t, w) {
			return w, nil
		}
	}
	return "", errors.New("must be " + expected(f))
}

// orList writes words as "a, b or c".
func orList(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "1", "yes", "y", "on":
		return true, nil
	case "false", "f", "0", "no", "n", "off":
		return false, nil
	}
	return false, errors.New("not true or false")
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return 0, fmt.Errorf("missing unit: write %ss or %sms, for instance", s, s)
		}
		return 0, errors.New("not a duration such as 10s, 1h30m or 250ms")
	}
	return d, nil
}

// FormatDuration writes d the way a person would: 1h30m rather than
// 1h30m0s, 10s, 250ms, 0s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// formatLeaf renders the value of leaf f for Print and Reference; secrets
// are redacted when non-empty.
func formatLeaf(f *field, v reflect.Value) (string, error) {
	switch f.kind {
	case kindString:
		if f.secret && v.String() != "" {
			return redacted, nil
		}
		return v.String(), nil
	case kindBool:
		return strconv.FormatBool(v.Bool()), nil
	case kindInt:
		return strconv.FormatInt(v.Int(), 10), nil
	case kindBytes:
		return FormatBytes(v.Int()), nil
	case kindFloat:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), nil
	case kindDuration:
		return FormatDuration(time.Duration(v.Int())), nil
	case kindList:
		items := v.Interface().([]string)
		if f.secret && len(items) > 0 {
			return redacted, nil
		}
		return strings.Join(items, ","), nil
	case kindText:
		m, ok := v.Interface().(encoding.TextMarshaler)
		if !ok {
			m = v.Addr().Interface().(encoding.TextMarshaler)
		}
		b, err := m.MarshalText()
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.key, err)
		}
		if f.secret && len(b) > 0 {
			return redacted, nil
		}
		return string(b), nil
	}
	return "", fmt.Errorf("%s: unknown kind", f.key)
}
