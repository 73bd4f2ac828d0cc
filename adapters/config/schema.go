package config

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
)

// kind is the kind of a leaf setting, which decides how its text is parsed
// and printed.
type kind uint8

const (
	kindString kind = iota
	kindBool
	kindInt // int, int32 and int64 without a unit
	kindBytes
	kindFloat
	kindDuration
	kindList
	kindText
)

// field is one node of a configuration struct: a section (a nested struct)
// or a leaf setting.
type field struct {
	key      string // dotted path, e.g. grpc.tls.certFile
	env      string // RMQPROXY_GRPC_TLS_CERT_FILE; empty for sections
	index    []int  // reflect field index path from the root
	typ      reflect.Type
	section  bool
	kind     kind
	secret   bool
	enum     []string // the words a string setting takes (enum tag), in their documented spelling
	help     string
	children []*field // sections only, in declaration order
	name     string   // last path element (the YAML key)
}

// schema describes a root configuration struct.
type schema struct {
	root   *field
	leaves []*field          // in declaration order
	byKey  map[string]*field // sections and leaves
	byEnv  map[string]*field // leaves
}

// EnvPrefix starts every environment variable this package reads.
const EnvPrefix = "RMQPROXY_"

// Names reserved for choosing the file and asking for help.
const (
	configFlag = "config"
	configEnv  = EnvPrefix + "CONFIG"
	testEnvPfx = EnvPrefix + "TEST_"
)

var (
	durationType  = reflect.TypeFor[time.Duration]()
	secretType    = reflect.TypeFor[Secret]()
	unmarshalerT  = reflect.TypeFor[encoding.TextUnmarshaler]()
	marshalerT    = reflect.TypeFor[encoding.TextMarshaler]()
	stringSliceT  = reflect.TypeFor[[]string]()
	maxStructDeep = 16
)

// schemaOf builds the schema of the struct type t. Errors are bugs in the
// configuration structs (an unsupported field type, two keys mapping to the
// same environment variable), not user input.
func schemaOf(t reflect.Type) (*schema, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("config: %v is not a struct", t)
	}
	s := &schema{byKey: map[string]*field{}, byEnv: map[string]*field{}}
	s.root = &field{typ: t, section: true}
	if err := s.walk(s.root, t, nil, "", 0); err != nil {
		return nil, err
	}
	if f, ok := s.byKey[configFlag]; ok {
		return nil, fmt.Errorf("config: key %q of %v clashes with the --config flag", f.key, t)
	}
	return s, nil
}

func (s *schema) walk(parent *field, t reflect.Type, index []int, prefix string, depth int) error {
	if depth > maxStructDeep {
		return fmt.Errorf("config: %v nests deeper than %d levels", t, maxStructDeep)
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, inline, skip := yamlName(sf)
		if skip {
			continue
		}
		idx := append(slices.Clip(index), i)
		if inline {
			if sf.Type.Kind() != reflect.Struct || isLeafType(sf.Type) {
				return fmt.Errorf("config: %v.%s: inline needs a struct", t, sf.Name)
			}
			if err := s.walk(parent, sf.Type, idx, prefix, depth+1); err != nil {
				return err
			}
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		if _, dup := s.byKey[key]; dup {
			return fmt.Errorf("config: %v: key %q is declared twice", t, key)
		}
		f := &field{
			key:   key,
			name:  name,
			index: idx,
			typ:   sf.Type,
			help:  sf.Tag.Get("help"),
		}
		s.byKey[key] = f
		parent.children = append(parent.children, f)
		if sf.Type.Kind() == reflect.Struct && !isLeafType(sf.Type) {
			f.section = true
			if err := s.walk(f, sf.Type, idx, key, depth+1); err != nil {
				return err
			}
			continue
		}
		k, err := kindOf(sf)
		if err != nil {
			return fmt.Errorf("config: %v.%s (%s): %w", t, sf.Name, key, err)
		}
		f.kind = k
		f.secret = sf.Type == secretType || sf.Tag.Get("secret") == "true"
		if tag, ok := sf.Tag.Lookup("enum"); ok {
			if f.enum, err = enumWords(tag, sf.Type, f.secret); err != nil {
				return fmt.Errorf("config: %v.%s (%s): %w", t, sf.Name, key, err)
			}
		}
		f.env = envName(key)
		if other, dup := s.byEnv[f.env]; dup {
			return fmt.Errorf("config: keys %q and %q both map to %s", other.key, key, f.env)
		}
		s.byEnv[f.env] = f
		s.leaves = append(s.leaves, f)
	}
	return nil
}

// enumWords reads an enum tag: comma-separated words, on a plain string
// field, no two equal but for case.
func enumWords(tag string, t reflect.Type, secret bool) ([]string, error) {
	if t.Kind() != reflect.String || t == secretType || secret {
		return nil, fmt.Errorf("enum:%q needs a string that is not a secret, not %v", tag, t)
	}
	words := strings.Split(tag, ",")
	for i, w := range words {
		if w == "" || strings.TrimSpace(w) != w {
			return nil, fmt.Errorf("enum:%q has an empty or padded word", tag)
		}
		for _, o := range words[:i] {
			if strings.EqualFold(o, w) {
				return nil, fmt.Errorf("enum:%q lists %q twice", tag, w)
			}
		}
	}
	return words, nil
}

func yamlName(sf reflect.StructField) (name string, inline, skip bool) {
	tag := sf.Tag.Get("yaml")
	if tag == "-" {
		return "", false, true
	}
	name, opts, _ := strings.Cut(tag, ",")
	inline = slices.Contains(strings.Split(opts, ","), "inline")
	if name == "" {
		r := []rune(sf.Name)
		r[0] = unicode.ToLower(r[0])
		name = string(r)
	}
	return name, inline, false
}

// isLeafType reports whether a struct type is a single value rather than a
// section (a TextUnmarshaler such as netip.AddrPort).
func isLeafType(t reflect.Type) bool {
	return t == durationType || reflect.PointerTo(t).Implements(unmarshalerT)
}

func kindOf(sf reflect.StructField) (kind, error) {
	t := sf.Type
	unit := sf.Tag.Get("unit")
	if unit != "" && unit != "bytes" {
		return 0, fmt.Errorf("unknown unit %q (only \"bytes\" is supported)", unit)
	}
	if unit == "bytes" && t.Kind() != reflect.Int64 {
		return 0, fmt.Errorf("unit:\"bytes\" needs an int64, not %v", t)
	}
	switch {
	case t == durationType:
		return kindDuration, nil
	case t == secretType:
		return kindString, nil
	case reflect.PointerTo(t).Implements(unmarshalerT):
		if !t.Implements(marshalerT) && !reflect.PointerTo(t).Implements(marshalerT) {
			return 0, fmt.Errorf("%v implements encoding.TextUnmarshaler but not encoding.TextMarshaler", t)
		}
		return kindText, nil
	case t == stringSliceT:
		return kindList, nil
	}
	switch t.Kind() {
	case reflect.String:
		return kindString, nil
	case reflect.Bool:
		return kindBool, nil
	case reflect.Int, reflect.Int32:
		return kindInt, nil
	case reflect.Int64:
		if unit == "bytes" {
			return kindBytes, nil
		}
		return kindInt, nil
	case reflect.Float64:
		return kindFloat, nil
	}
	return 0, fmt.Errorf("unsupported type %v", t)
}

// envName maps a dotted key to its environment variable:
// grpc.tls.certFile → RMQPROXY_GRPC_TLS_CERT_FILE, admin.maxQPS →
// RMQPROXY_ADMIN_MAX_QPS, otel.otlpHTTPEndpoint → RMQPROXY_OTEL_OTLP_HTTP_ENDPOINT.
func envName(key string) string {
	var b strings.Builder
	b.WriteString(EnvPrefix)
	for i, part := range strings.Split(key, ".") {
		if i > 0 {
			b.WriteByte('_')
		}
		for j, w := range splitWords(part) {
			if j > 0 {
				b.WriteByte('_')
			}
			b.WriteString(strings.ToUpper(w))
		}
	}
	return b.String()
}

// splitWords splits a camelCase identifier into words, keeping acronyms
// together: maxQPSPerClient → max QPS Per Client. Digits stay with the
// preceding word (s3Bucket → s3 Bucket). Other separators (-, _) split too.
func splitWords(s string) []string {
	r := []rune(s)
	var words []string
	start := 0
	for i := 1; i < len(r); i++ {
		prev, cur := r[i-1], r[i]
		boundary := false
		switch {
		case cur == '_' || cur == '-':
			if i > start {
				words = append(words, string(r[start:i]))
			}
			start = i + 1
			continue
		case unicode.IsUpper(cur) && (unicode.IsLower(prev) || unicode.IsDigit(prev)):
			boundary = true
		case unicode.IsUpper(prev) && unicode.IsUpper(cur) && i+1 < len(r) && unicode.IsLower(r[i+1]):
			boundary = true
		}
		if boundary && i > start {
			words = append(words, string(r[start:i]))
			start = i
		}
	}
	if start < len(r) {
		words = append(words, string(r[start:]))
	}
	return words
}
