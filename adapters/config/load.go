package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rmqproxy/rmqproxy/adapters/internal/redact"
)

// Sources are the places [Load] reads settings from, besides the defaults
// already in the destination.
type Sources struct {
	// File is the YAML file to read when neither --config nor
	// RMQPROXY_CONFIG names one; "" means none.
	File string
	// Env is the environment as os.Environ returns it ("KEY=value").
	Env []string
	// Args are the command-line flags, without the program name.
	Args []string
}

// FromOS returns the process's environment and arguments (os.Args[1:]) with
// defaultFile as the file to read when none is named. It is the only place
// in rmqproxy that reads the environment.
func FromOS(defaultFile string) Sources {
	return Sources{File: defaultFile, Env: os.Environ(), Args: os.Args[1:]}
}

// Load fills the struct dst points to, which already holds the defaults,
// from the file, the environment and the flags of src, in that order of
// precedence (see the package documentation), then validates it.
//
// It returns [ErrHelp] when the flags ask for help, every load error joined
// when some value could not be applied ([*FieldError], [*UnknownKeyError]),
// and otherwise every validation error joined. dst may be partly updated
// when Load fails.
func Load(dst any, src Sources) error {
	return load(dst, src, nil)
}

// LoadFor is [Load] for a command that uses only some settings of a
// configuration it may share with the server (the admin API's address, the
// PostgreSQL connection string) and checks those itself: it fills dst the
// same way, with the same errors for unknown keys and for values that do
// not parse, but calls no Validate (whose rules are the server's: the
// certificate files of a listener, the settings of a mode), and a secret
// left as the placeholder [Print] writes is an error only for the settings
// in uses, the keys the command reads (a key may be a section: "postgres"
// for every postgres.* setting). uses must name at least one key.
func LoadFor(dst any, src Sources, uses ...string) error {
	if len(uses) == 0 {
		return errors.New("config: LoadFor needs the keys the command uses")
	}
	return load(dst, src, uses)
}

// load is Load, and LoadFor when uses is not nil.
func load(dst any, src Sources, uses []string) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: Load needs a non-nil pointer to a struct, not %T", dst)
	}
	s, err := schemaOf(rv.Elem().Type())
	if err != nil {
		return err
	}
	l := &loader{s: s, root: rv.Elem()}

	flags, flagFile, help := l.parseArgs(src.Args)
	if help {
		return ErrHelp
	}
	envs, envFile := l.parseEnv(src.Env)

	// from names where the file's name came from, so that an error about
	// it points at what to change (a RMQPROXY_CONFIG left in the
	// environment is easy to forget).
	file, from := src.File, "config file"
	switch {
	case flagFile != nil:
		file, from = *flagFile, "config file named by --config"
	case envFile != nil:
		file, from = *envFile, "config file named by "+configEnv
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s: %w", from, err))
		} else {
			l.applyYAML(data, file)
		}
	}
	l.apply(envs)
	l.apply(flags)
	for _, key := range l.placeholderKeys {
		if err, ok := l.placeholders[key]; ok && (uses == nil || usedKey(key, uses)) {
			l.errs = append(l.errs, err)
		}
	}
	if len(l.errs) > 0 {
		return &loadErrors{errs: l.errs, usage: l.usage}
	}
	derive(s, l.root)
	if uses != nil {
		return nil
	}
	return validate(s, l.root)
}

// usedKey reports whether key is one of uses or in a section of uses.
func usedKey(key string, uses []string) bool {
	for _, u := range uses {
		if key == u || strings.HasPrefix(key, u+".") {
			return true
		}
	}
	return false
}

type loader struct {
	s    *schema
	root reflect.Value
	errs []error
	// usage is set when an error is in the command line itself (see
	// ErrUsage).
	usage bool
	// placeholders are the errors of secrets set to the REDACTED
	// placeholder, by key, reported only if no later source sets them
	// (an environment variable over a file written by config print).
	placeholders    map[string]error
	placeholderKeys []string // in the order they were met
}

// fail records the error of setting f: at once, or, for the REDACTED
// placeholder of a secret, unless a later source sets f.
func (l *loader) fail(f *field, err error) {
	if !errors.Is(err, errPlaceholder) {
		l.errs = append(l.errs, err)
		return
	}
	if l.placeholders == nil {
		l.placeholders = map[string]error{}
	}
	if _, seen := l.placeholders[f.key]; !seen {
		l.placeholderKeys = append(l.placeholderKeys, f.key)
	}
	l.placeholders[f.key] = err
}

// set records that f was set, which overrides an earlier placeholder.
func (l *loader) set(f *field) { delete(l.placeholders, f.key) }

// assignment is one textual value for a leaf, from the environment or a flag.
type assignment struct {
	f      *field
	value  string
	source string
}

func (l *loader) apply(as []assignment) {
	for _, a := range as {
		if err := setText(a.f, l.root.FieldByIndex(a.f.index), a.value); err != nil {
			if strings.HasPrefix(a.source, "flag ") && !errors.Is(err, errPlaceholder) {
				l.usage = true
			}
			l.fail(a.f, &FieldError{Key: a.f.key, Source: a.source, Value: shownValue(a.f, a.value), Err: withExpected(err, a.f)})
			continue
		}
		l.set(a.f)
	}
}

func (l *loader) keys(sections bool) []string {
	out := make([]string, 0, len(l.s.byKey))
	for k, f := range l.s.byKey {
		if sections || !f.section {
			out = append(out, k)
		}
	}
	slices.Sort(out) // deterministic suggestions on ties
	return out
}

// parseArgs turns flags into assignments. flagFile is non-nil when --config
// was given.
func (l *loader) parseArgs(args []string) (as []assignment, flagFile *string, help bool) {
	// emptySecret is the key of a secret flag given as --key= (empty) just
	// before: an argument that follows it may be the secret's value, cut
	// off by a space, and is not echoed.
	emptySecret := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		after := emptySecret
		emptySecret = ""
		if a == "--" {
			if rest := args[i+1:]; len(rest) > 0 {
				shown := make([]string, len(rest))
				for i, a := range rest {
					shown[i] = redact.Userinfo(a) // a value whose password is not echoed
				}
				l.errs = append(l.errs, fmt.Errorf("flags: unexpected arguments %q; settings are flags such as --grpc.address=:8081", shown))
			}
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			l.errs = append(l.errs, &ArgumentError{Arg: a, AfterSecret: after})
			continue
		}
		name := strings.TrimPrefix(a[1:], "-")
		name, value, hasValue := strings.Cut(name, "=")
		takeValue := func() bool {
			if hasValue {
				return true
			}
			if i+1 < len(args) {
				i++
				value = args[i]
				return true
			}
			return false
		}
		switch name {
		case "help", "h":
			help = true
			continue
		case configFlag:
			if !takeValue() {
				l.errs = append(l.errs, errors.New("flag --config: needs a file name"))
				continue
			}
			if strings.TrimSpace(value) == "" {
				// A script's unset variable (--config=$FILE) would start
				// on the defaults without a word.
				l.errs = append(l.errs, errors.New("flag --config is empty: give the YAML file to read, or leave the flag out (RMQPROXY_CONFIG names a file when set; unset it to read none)"))
				continue
			}
			v := value
			flagFile = &v
			continue
		}
		f := l.s.byKey[name]
		if f == nil || f.section {
			l.errs = append(l.errs, l.unknownFlag(name, f))
			// Skip the value of an unknown flag so it is not reported as
			// an unexpected argument too.
			if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
			}
			continue
		}
		if !hasValue && f.kind == kindBool {
			value, hasValue = "true", true
		}
		if !takeValue() {
			l.errs = append(l.errs, &FieldError{Key: f.key, Source: "flag --" + f.key, Err: fmt.Errorf("needs a value: %s", expected(f))})
			continue
		}
		if f.secret && hasValue && value == "" {
			emptySecret = f.key
		}
		as = append(as, assignment{f: f, value: value, source: "flag --" + f.key})
	}
	if len(l.errs) > 0 { // every error so far is the command line's
		l.usage = true
	}
	return as, flagFile, help
}

func (l *loader) unknownFlag(name string, f *field) error {
	if f != nil { // a section
		return &FieldError{Key: name, Source: "flag --" + name, Err: fmt.Errorf("is a group of settings, not a setting; set one of its keys, such as --%s", l.firstLeaf(f).key)}
	}
	e := &UnknownKeyError{Key: "--" + name, Source: "flags"}
	if s := closest(name, append(l.keys(false), configFlag, "help")); s != "" {
		e.Suggestion = "--" + s
	}
	return e
}

func (l *loader) firstLeaf(f *field) *field {
	for f.section && len(f.children) > 0 {
		f = f.children[0]
	}
	return f
}

// parseEnv turns RMQPROXY_ variables into assignments. envFile is non-nil
// when RMQPROXY_CONFIG is set.
func (l *loader) parseEnv(env []string) (as []assignment, envFile *string) {
	var names []string
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) || strings.HasPrefix(k, testEnvPfx) {
			continue
		}
		if k == configEnv {
			file := v
			envFile = &file
			continue
		}
		f := l.s.byEnv[k]
		if f == nil {
			if names == nil {
				for n := range l.s.byEnv {
					names = append(names, strings.TrimPrefix(n, EnvPrefix))
				}
				slices.Sort(names)
			}
			// Compare without the prefix, which every candidate shares.
			e := &UnknownKeyError{Key: k, Source: "environment"}
			if s := closest(strings.TrimPrefix(k, EnvPrefix), names); s != "" {
				e.Suggestion = EnvPrefix + s + ", for " + l.s.byEnv[EnvPrefix+s].key
			}
			l.errs = append(l.errs, e)
			continue
		}
		as = append(as, assignment{f: f, value: v, source: "environment " + k})
	}
	return as, envFile
}

// maxMergeDepth bounds YAML merge keys (<<) that merge mappings that merge
// mappings, so an adversarial file cannot recurse without end.
const maxMergeDepth = 8

func (l *loader) applyYAML(data []byte, name string) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			l.errs = append(l.errs, fmt.Errorf("%s: %w", name, err))
		}
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s: %w", name, err))
		} else {
			l.errs = append(l.errs, fmt.Errorf("%s:%d: a second YAML document; the file must hold exactly one", name, extra.Line))
		}
		return
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return
	}
	if root.Kind != yaml.MappingNode {
		l.errs = append(l.errs, fmt.Errorf("%s:%d: the file must be a mapping of settings, such as \"grpc:\\n  address: :8081\"", name, root.Line))
		return
	}
	l.applyMapping(l.s.root, root, name, 0)
}

// resolve follows aliases to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func (l *loader) applyMapping(sec *field, m *yaml.Node, file string, merges int) {
	// Merged mappings (<<: *defaults) first, so that explicit keys win.
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := resolve(m.Content[i]), resolve(m.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode || k.Tag != "!!merge" {
			continue
		}
		if merges >= maxMergeDepth {
			l.errs = append(l.errs, fmt.Errorf("%s:%d: merge keys nest deeper than %d levels", file, k.Line, maxMergeDepth))
			continue
		}
		targets := []*yaml.Node{v}
		if v != nil && v.Kind == yaml.SequenceNode {
			targets = v.Content
		}
		for _, t := range targets {
			if t = resolve(t); t == nil || t.Kind != yaml.MappingNode {
				l.errs = append(l.errs, fmt.Errorf("%s:%d: a merge key (<<) needs a mapping or a list of mappings", file, k.Line))
				continue
			}
			l.applyMapping(sec, t, file, merges+1)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := resolve(m.Content[i]), resolve(m.Content[i+1])
		if k == nil || v == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			l.errs = append(l.errs, fmt.Errorf("%s:%d: keys must be plain names", file, k.Line))
			continue
		}
		if k.Tag == "!!merge" {
			continue
		}
		key := k.Value
		if sec.key != "" {
			key = sec.key + "." + k.Value
		}
		where := file + ":" + strconv.Itoa(k.Line)
		if line, dup := seen[k.Value]; dup {
			l.errs = append(l.errs, fmt.Errorf("%s: key %s repeats the one on line %d", where, quoteShort(key), line))
			continue
		}
		seen[k.Value] = k.Line
		f := sec.child(k.Value)
		if f == nil && strings.Contains(k.Value, ".") && l.s.byKey[key] != nil {
			l.errs = append(l.errs, fmt.Errorf("%s: key %s is the dotted name of a setting, which the file does not take: nest it, as %q",
				where, quoteShort(key), nested(key)))
			continue
		}
		if f == nil {
			e := &UnknownKeyError{Key: key, Source: where}
			e.Suggestion = closest(key, l.keys(true))
			l.errs = append(l.errs, e)
			continue
		}
		if f.section {
			switch {
			case isNull(v): // "grpc:" with every key commented out
			case v.Kind == yaml.MappingNode:
				l.applyMapping(f, v, file, merges)
			default:
				l.errs = append(l.errs, &FieldError{Key: f.key, Source: where, Err: fmt.Errorf("expected a mapping of settings such as %s", l.firstLeaf(f).name)})
			}
			continue
		}
		if err := l.setNode(f, v); err != nil {
			l.fail(f, &FieldError{Key: f.key, Source: file + ":" + strconv.Itoa(v.Line), Value: shownValue(f, scalarText(v)), Err: err})
			continue
		}
		l.set(f)
	}
}

// nested writes key as the YAML mappings the file takes:
// "grpc:\n  address: ..." for grpc.address.
func nested(key string) string {
	parts := strings.Split(key, ".")
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteString("\n" + strings.Repeat("  ", i))
		}
		b.WriteString(p + ":")
	}
	b.WriteString(" ...")
	return b.String()
}

func scalarText(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return n.Value
	}
	return ""
}

func (l *loader) setNode(f *field, v *yaml.Node) error {
	dst := l.root.FieldByIndex(f.index)
	if isNull(v) {
		return fmt.Errorf("empty value; remove the key to keep the default, or write %s", expected(f))
	}
	if f.kind == kindList {
		if v.Kind != yaml.SequenceNode {
			return fmt.Errorf("expected %s", expected(f))
		}
		items := make([]string, 0, len(v.Content))
		for _, it := range v.Content {
			if it = resolve(it); it == nil || it.Kind != yaml.ScalarNode || isNull(it) {
				return fmt.Errorf("line %d: list items must be strings", v.Line)
			}
			items = append(items, it.Value)
		}
		dst.Set(reflect.ValueOf(items))
		return nil
	}
	if v.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected %s, not a %s", expected(f), nodeKind(v))
	}
	if err := setScalar(f, dst, v.Value); err != nil {
		return withExpected(err, f)
	}
	return nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

func (f *field) child(name string) *field {
	for _, c := range f.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// validator is what a Config struct implements to check itself.
type validator interface{ Validate() error }

// deriver is what a Config struct implements to fill settings left empty
// from other settings (local.storeHost from grpc.address), after every
// source was applied and before validation.
type deriver interface{ Derive() }

// derive calls Derive on every struct of the tree that implements it with a
// pointer receiver, parents before children.
func derive(s *schema, root reflect.Value) {
	var visit func(sec *field, v reflect.Value)
	visit = func(sec *field, v reflect.Value) {
		if d, ok := v.Addr().Interface().(deriver); ok {
			d.Derive()
		}
		for _, c := range sec.children {
			if c.section {
				visit(c, root.FieldByIndex(c.index))
			}
		}
	}
	visit(s.root, root)
}

// validate calls Validate on every struct of the tree that implements it,
// parents before children, and joins all errors. Each becomes a
// [*FieldError] whose key is the setting its message starts with, written
// in full (see [schema.validationError]), or else the struct's key path.
func validate(s *schema, root reflect.Value) error {
	var errs []error
	var visit func(sec *field, v reflect.Value)
	visit = func(sec *field, v reflect.Value) {
		if vd, ok := v.Addr().Interface().(validator); ok {
			if err := vd.Validate(); err != nil {
				for _, e := range splitErrors(err) {
					errs = append(errs, s.validationError(sec, e))
				}
			}
		}
		for _, c := range sec.children {
			if c.section {
				visit(c, root.FieldByIndex(c.index))
			}
		}
	}
	visit(s.root, root)
	return errors.Join(errs...)
}

// splitErrors returns the errors joined in err, also when the join is
// wrapped with a prefix ("localbroker: " + errors.Join(...)), which the
// key of each part makes redundant.
func splitErrors(err error) []error {
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range multi.Unwrap() {
			out = append(out, splitErrors(e)...)
		}
		return out
	}
	if inner := errors.Unwrap(err); inner != nil {
		if _, ok := inner.(interface{ Unwrap() []error }); ok && strings.HasSuffix(err.Error(), inner.Error()) {
			return splitErrors(inner)
		}
	}
	return []error{err}
}
