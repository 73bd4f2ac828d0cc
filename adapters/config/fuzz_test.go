package config

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

type fuzzTLS struct {
	Enabled  bool   `yaml:"enabled"`
	CertFile string `yaml:"certFile"`
}

type fuzzSection struct {
	Address string        `yaml:"address"`
	Size    int64         `yaml:"size" unit:"bytes"`
	Wait    time.Duration `yaml:"wait"`
	N       int           `yaml:"n"`
	N32     int32         `yaml:"n32"`
	N64     int64         `yaml:"n64"`
	Ratio   float64       `yaml:"ratio"`
	List    []string      `yaml:"list"`
	TLS     fuzzTLS       `yaml:"tls"`
}

type fuzzRoot struct {
	Mode string      `yaml:"mode"`
	A    fuzzSection `yaml:"a"`
	B    fuzzSection `yaml:"b"`
}

func fuzzDefaults() fuzzRoot {
	s := fuzzSection{Address: ":1", Size: 4 << 20, Wait: time.Second, N: 1, N32: 2, N64: 3, Ratio: 1.5, List: []string{"x"}}
	return fuzzRoot{Mode: "local", A: s, B: s}
}

func newFuzzLoader(t *testing.T) (*loader, *fuzzRoot) {
	t.Helper()
	cfg := fuzzDefaults()
	s, err := schemaOf(reflect.TypeFor[fuzzRoot]())
	if err != nil {
		t.Fatal(err)
	}
	return &loader{s: s, root: reflect.ValueOf(&cfg).Elem()}, &cfg
}

// checkErrors fails on an error without a message (which would leave a user
// with nothing to act on).
func checkErrors(t *testing.T, errs []error) {
	t.Helper()
	for _, err := range errs {
		if err == nil || err.Error() == "" {
			t.Fatalf("empty error in %v", errs)
		}
	}
}

// roundTrip checks that a configuration that loaded cleanly prints to YAML
// that loads back to the same values.
func roundTrip(t *testing.T, cfg *fuzzRoot) {
	t.Helper()
	var buf bytes.Buffer
	if err := Print(&buf, cfg); err != nil {
		t.Fatalf("Print: %v", err)
	}
	l, got := newFuzzLoader(t)
	l.applyYAML(buf.Bytes(), "printed.yaml")
	if len(l.errs) > 0 {
		t.Fatalf("printed config does not load: %v\n%s", l.errs, buf.String())
	}
	if !reflect.DeepEqual(*got, *cfg) {
		t.Fatalf("round trip changed the config:\n got %#v\nwant %#v\n%s", *got, *cfg, buf.String())
	}
}

func FuzzYAML(f *testing.F) {
	for _, seed := range []string{
		"",
		"mode: cluster\n",
		"a:\n  address: x\n  size: 4MiB\n  wait: 1h30m\n  n: -1\n  n32: 0x10\n  ratio: 0.5\n  list: [a, b]\n  tls: {enabled: true}\n",
		"a: &x {n: 1}\nb: *x\n",
		"a:\n  <<: {n: 2}\n  n: 3\n",
		"a:\n  <<: [{n: 2}, {n32: 4}]\n",
		"a: [1, 2]\n",
		"a:\n  list:\n    - {x: 1}\n",
		"mode: local\nmode: local\n",
		"- a\n",
		"a: b: c",
		"x: &a [*a]\n",
		"a:\n  size: 1.5KiB\n",
		"a:\n  wait: 10\n",
		"---\n---\n",
		"? [a]\n: b\n",
	} {
		f.Add([]byte(seed))
	}
	if golden, err := os.ReadFile("testdata/print.golden.yaml"); err == nil {
		f.Add(golden)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, cfg := newFuzzLoader(t)
		l.applyYAML(data, "fuzz.yaml")
		checkErrors(t, l.errs)
		if len(l.errs) == 0 {
			_ = validate(l.s, l.root)
			roundTrip(t, cfg)
		}
	})
}

func FuzzEnv(f *testing.F) {
	for _, seed := range []string{
		"RMQPROXY_A_ADDRESS=x",
		"RMQPROXY_A_SIZE=4MiB\nRMQPROXY_B_WAIT=10s",
		"RMQPROXY_A_LIST=a, b,,c",
		"RMQPROXY_A_TLS_ENABLED=on",
		"RMQPROXY_A_N32=2147483648",
		"RMQPROXY_A_RATIO=Inf",
		"RMQPROXY_A_ADRESS=x",
		"RMQPROXY_CONFIG=/nonexistent",
		"RMQPROXY_=",
		"RMQPROXY",
		"=RMQPROXY_MODE",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, env string) {
		l, cfg := newFuzzLoader(t)
		as, _ := l.parseEnv(strings.Split(env, "\n"))
		l.apply(as)
		checkErrors(t, l.errs)
		if len(l.errs) == 0 && isUTF8Printable(env) {
			roundTrip(t, cfg)
		}
	})
}

func FuzzFlags(f *testing.F) {
	for _, seed := range []string{
		"--a.address=x",
		"--a.size\x004MiB",
		"-b.wait=1h\x00--a.tls.enabled",
		"--a.tls.enabled=false\x00--mode\x00cluster",
		"--config\x00",
		"--help",
		"--\x00x",
		"-\x00--",
		"---a.n=1",
		"--a.n",
		"--a=1",
		"--a.adress\x00x",
		"positional",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, args string) {
		l, cfg := newFuzzLoader(t)
		as, _, _ := l.parseArgs(strings.Split(args, "\x00"))
		l.apply(as)
		checkErrors(t, l.errs)
		if len(l.errs) == 0 && isUTF8Printable(args) {
			roundTrip(t, cfg)
		}
	})
}

// isUTF8Printable reports whether s can survive a trip through a YAML file:
// YAML holds only valid UTF-8 without most control characters, and neither
// the environment nor flags can carry what YAML cannot.
func isUTF8Printable(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' || r < ' ' && r != '\n' && r != '\t' || r == 0x7f || r >= 0x80 && r <= 0x9f || r == '\uFEFF' {
			return false
		}
	}
	return true
}

// FuzzValue feeds one text to every kind of leaf: parsing never panics, and a
// value that parses prints to a text that parses to the same value.
func FuzzValue(f *testing.F) {
	for _, seed := range []string{"", "0", "-1", "4MiB", "1.5KiB", "1e3", "10s", "1h30m", "NaN", "true", "a,b", "0x7fffffff", "9223372036854775808", " 12 ", "1.", "+1"} {
		f.Add(seed)
	}
	s, err := schemaOf(reflect.TypeFor[fuzzRoot]())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, leaf := range s.leaves {
			v := reflect.New(leaf.typ).Elem()
			if err := setText(leaf, v, text); err != nil {
				if err.Error() == "" {
					t.Fatalf("%s: empty error", leaf.key)
				}
				continue
			}
			printed, err := formatLeaf(leaf, v)
			if err != nil {
				t.Fatalf("%s: format %v: %v", leaf.key, v, err)
			}
			again := reflect.New(leaf.typ).Elem()
			if err := setText(leaf, again, printed); err != nil {
				t.Fatalf("%s: %q parsed, printed as %q, which does not parse: %v", leaf.key, text, printed, err)
			}
			if !reflect.DeepEqual(v.Interface(), again.Interface()) {
				t.Fatalf("%s: %q → %v → %q → %v", leaf.key, text, v, printed, again)
			}
		}
	})
}

func FuzzParseBytes(f *testing.F) {
	for _, seed := range []string{"0", "4MiB", "512 KiB", "1.5GiB", "10MB", "8191PiB", "9223372036854775807", "1.0000000001KiB", "99999999999999999999999PB"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseBytes(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseBytes(%q) = %d", s, n)
		}
		if m, err := ParseBytes(FormatBytes(n)); err != nil || m != n {
			t.Fatalf("%q → %d → %q → %d, %v", s, n, FormatBytes(n), m, err)
		}
	})
}
