package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

type tlsConfig struct {
	Enabled     bool          `yaml:"enabled" help:"Serve TLS on the gRPC port."`
	CertFile    string        `yaml:"certFile" help:"PEM certificate chain."`
	KeyPassword config.Secret `yaml:"keyPassword" help:"Password of the private key."`
}

func (c tlsConfig) Validate() error {
	if c.Enabled && c.CertFile == "" {
		return errors.New("certFile is required when TLS is enabled")
	}
	return nil
}

type grpcConfig struct {
	Address        string        `yaml:"address" help:"Listen address of the gRPC MessagingService."`
	MaxMessageSize int64         `yaml:"maxMessageSize" unit:"bytes" help:"Largest accepted request."`
	KeepAlive      time.Duration `yaml:"keepAlive" help:"Interval of server pings."`
	Workers        int           `yaml:"workers" help:"Request workers."`
	Backlog        int32         `yaml:"backlog" help:"Queued requests | pipes escaped."`
	Offset         int64         `yaml:"offset" help:"A plain int64."`
	Weight         float64       `yaml:"weight" help:"Load balancing weight."`
	Origins        []string      `yaml:"origins" help:"Allowed origins."`
	Reflection     bool          `yaml:"reflection" help:"Serve gRPC reflection."`
	TLS            tlsConfig     `yaml:"tls"`
}

func (c *grpcConfig) Validate() error {
	var errs []error
	if c.Address == "" {
		errs = append(errs, errors.New("address is required"))
	}
	if c.Workers < 0 {
		errs = append(errs, errors.New("workers must not be negative"))
	}
	return errors.Join(errs...)
}

type postgresConfig struct {
	DSN      string `yaml:"dsn" secret:"true" help:"Connection string."`
	MaxConns int32  `yaml:"maxConns" help:"Pool size."`
}

type root struct {
	Mode     string         `yaml:"mode" help:"local or cluster"`
	Listen   netip.AddrPort `yaml:"listen" help:"A TextUnmarshaler setting."`
	GRPC     grpcConfig     `yaml:"grpc"`
	Postgres postgresConfig `yaml:"postgres"`
	Ignored  string         `yaml:"-"`
}

func (r root) Validate() error {
	if r.Mode != "local" && r.Mode != "cluster" {
		return fmt.Errorf("mode must be local or cluster, not %q", r.Mode)
	}
	return nil
}

func defaults() root {
	return root{
		Mode:   "local",
		Listen: netip.MustParseAddrPort("127.0.0.1:9000"),
		GRPC: grpcConfig{
			Address:        ":8081",
			MaxMessageSize: 4 << 20,
			KeepAlive:      90 * time.Minute,
			Workers:        8,
			Backlog:        128,
			Weight:         1,
			Origins:        []string{"a", "b"},
		},
		Postgres: postgresConfig{DSN: "postgres://u:hunter2@db/rmq", MaxConns: 4},
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rmqproxy.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, file string, env, args []string) (root, error) {
	t.Helper()
	cfg := defaults()
	src := config.Sources{Env: env, Args: args}
	if file != "" {
		src.File = writeFile(t, file)
	}
	err := config.Load(&cfg, src)
	return cfg, err
}

func TestPrecedence(t *testing.T) {
	file := "grpc:\n  address: file:1\n  workers: 2\n"
	tests := []struct {
		name        string
		file        string
		env, args   []string
		wantAddress string
		wantWorkers int
	}{
		{name: "defaults only", wantAddress: ":8081", wantWorkers: 8},
		{name: "file over defaults", file: file, wantAddress: "file:1", wantWorkers: 2},
		{name: "env over file", file: file, env: []string{"RMQPROXY_GRPC_ADDRESS=env:1"}, wantAddress: "env:1", wantWorkers: 2},
		{name: "env over defaults", env: []string{"RMQPROXY_GRPC_WORKERS=3"}, wantAddress: ":8081", wantWorkers: 3},
		{name: "flag over env", file: file, env: []string{"RMQPROXY_GRPC_ADDRESS=env:1"}, args: []string{"--grpc.address=flag:1"}, wantAddress: "flag:1", wantWorkers: 2},
		{name: "flag over file", file: file, args: []string{"--grpc.workers", "5"}, wantAddress: "file:1", wantWorkers: 5},
		{name: "last env entry wins", env: []string{"RMQPROXY_GRPC_WORKERS=3", "RMQPROXY_GRPC_WORKERS=4"}, wantAddress: ":8081", wantWorkers: 4},
		{name: "last flag wins", args: []string{"--grpc.workers=5", "-grpc.workers", "6"}, wantAddress: ":8081", wantWorkers: 6},
		{name: "other variables ignored", env: []string{"PATH=/bin", "RMQPROXY_TEST_POSTGRES=x", "rmqproxy_grpc_workers=1", "NOEQUALS"}, wantAddress: ":8081", wantWorkers: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, tt.file, tt.env, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.GRPC.Address != tt.wantAddress || cfg.GRPC.Workers != tt.wantWorkers {
				t.Fatalf("got address %q workers %d, want %q %d", cfg.GRPC.Address, cfg.GRPC.Workers, tt.wantAddress, tt.wantWorkers)
			}
			if cfg.GRPC.MaxMessageSize != 4<<20 || cfg.Mode != "local" {
				t.Fatalf("untouched settings changed: %+v", cfg)
			}
		})
	}
}

func TestKinds(t *testing.T) {
	type check func(root) any
	tests := []struct {
		name string
		key  string // dotted key; the same value is tried as YAML, env and flag
		yaml string // YAML form of the value (defaults to text)
		text string
		get  check
		want any
		// boolean flags take no separate value: --x alone or --x=false
		boolean bool
	}{
		{name: "string", key: "grpc.address", text: "0.0.0.0:1", get: func(c root) any { return c.GRPC.Address }, want: "0.0.0.0:1"},
		{name: "empty string", key: "grpc.tls.certFile", yaml: `""`, text: "", get: func(c root) any { return c.GRPC.TLS.CertFile }, want: ""},
		{name: "bool true", key: "grpc.reflection", text: "true", get: func(c root) any { return c.GRPC.Reflection }, want: true, boolean: true},
		{name: "bool yes", key: "grpc.reflection", text: "yes", get: func(c root) any { return c.GRPC.Reflection }, want: true, boolean: true},
		{name: "bool 1", key: "grpc.reflection", text: "1", get: func(c root) any { return c.GRPC.Reflection }, want: true, boolean: true},
		{name: "int", key: "grpc.workers", text: "12", get: func(c root) any { return c.GRPC.Workers }, want: 12},
		{name: "negative int32", key: "grpc.backlog", text: "-12", get: func(c root) any { return c.GRPC.Backlog }, want: int32(-12)},
		{name: "int hex", key: "grpc.workers", text: "0x10", get: func(c root) any { return c.GRPC.Workers }, want: 16},
		{name: "int32", key: "grpc.backlog", text: "2147483647", get: func(c root) any { return c.GRPC.Backlog }, want: int32(2147483647)},
		{name: "int64", key: "grpc.offset", text: "-9223372036854775808", get: func(c root) any { return c.GRPC.Offset }, want: int64(-1 << 63)},
		{name: "bytes MiB", key: "grpc.maxMessageSize", text: "4MiB", get: func(c root) any { return c.GRPC.MaxMessageSize }, want: int64(4 << 20)},
		{name: "bytes plain", key: "grpc.maxMessageSize", text: "4194304", get: func(c root) any { return c.GRPC.MaxMessageSize }, want: int64(4194304)},
		{name: "bytes KiB", key: "grpc.maxMessageSize", text: "512KiB", get: func(c root) any { return c.GRPC.MaxMessageSize }, want: int64(512 << 10)},
		{name: "bytes GiB", key: "grpc.maxMessageSize", text: "1GiB", get: func(c root) any { return c.GRPC.MaxMessageSize }, want: int64(1 << 30)},
		{name: "bytes MB", key: "grpc.maxMessageSize", text: "10MB", get: func(c root) any { return c.GRPC.MaxMessageSize }, want: int64(10_000_000)},
		{name: "bytes fraction", key: "grpc.maxMessageSize", text: "1.5KiB", get: func(c root) any { return c.GRPC.MaxMessageSize }, want: int64(1536)},
		{name: "float", key: "grpc.weight", text: "0.25", get: func(c root) any { return c.GRPC.Weight }, want: 0.25},
		{name: "duration", key: "grpc.keepAlive", text: "1h30m", get: func(c root) any { return c.GRPC.KeepAlive }, want: 90 * time.Minute},
		{name: "duration ms", key: "grpc.keepAlive", text: "250ms", get: func(c root) any { return c.GRPC.KeepAlive }, want: 250 * time.Millisecond},
		{name: "duration zero", key: "grpc.keepAlive", text: "0", get: func(c root) any { return c.GRPC.KeepAlive }, want: time.Duration(0)},
		{name: "list", key: "grpc.origins", yaml: "[x, y, z]", text: "x, y,z", get: func(c root) any { return c.GRPC.Origins }, want: []string{"x", "y", "z"}},
		{name: "empty list", key: "grpc.origins", yaml: "[]", text: "", get: func(c root) any { return c.GRPC.Origins }, want: []string{}},
		{name: "secret", key: "grpc.tls.keyPassword", text: "s3cr3t", get: func(c root) any { return c.GRPC.TLS.KeyPassword.Reveal() }, want: "s3cr3t"},
		{name: "text unmarshaler", key: "listen", yaml: `"[::1]:7"`, text: "[::1]:7", get: func(c root) any { return c.Listen }, want: netip.MustParseAddrPort("[::1]:7")},
	}
	for _, tt := range tests {
		yamlValue := tt.yaml
		if yamlValue == "" {
			yamlValue = tt.text
		}
		parts := strings.Split(tt.key, ".")
		var doc strings.Builder
		for i, p := range parts {
			doc.WriteString(strings.Repeat("  ", i) + p + ":")
			if i < len(parts)-1 {
				doc.WriteString("\n")
			}
		}
		doc.WriteString(" " + quoteIfNeeded(yamlValue) + "\n")
		env := envOf(t, tt.key)
		for _, src := range []struct {
			name string
			file string
			env  []string
			args []string
		}{
			{name: "yaml", file: doc.String()},
			{name: "env", env: []string{env + "=" + tt.text}},
			{name: "flag=", args: []string{"--" + tt.key + "=" + tt.text}},
			{name: "flag value", args: []string{"--" + tt.key, tt.text}},
		} {
			t.Run(tt.name+"/"+src.name, func(t *testing.T) {
				if tt.boolean && src.name == "flag value" {
					// A boolean flag never takes the next argument as its value.
					if _, err := load(t, src.file, src.env, src.args); err == nil || !strings.Contains(err.Error(), "unexpected argument") {
						t.Fatalf("--%s %s: want an unexpected argument error, got %v", tt.key, tt.text, err)
					}
					return
				}
				cfg, err := load(t, src.file, src.env, src.args)
				if err != nil {
					t.Fatalf("file %q: %v", src.file, err)
				}
				if got := tt.get(cfg); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("got %#v, want %#v", got, tt.want)
				}
			})
		}
	}
}

func quoteIfNeeded(s string) string {
	if strings.HasPrefix(s, "[") || strings.HasPrefix(s, `"`) {
		return s
	}
	return `"` + s + `"`
}

// envOf finds a key's environment variable through Reference, so that the
// naming rule is tested once, in TestEnvNames.
func envOf(t *testing.T, key string) string {
	t.Helper()
	for _, s := range config.Reference(defaults()) {
		if s.Key == key {
			return s.Env
		}
	}
	t.Fatalf("no setting %s", key)
	return ""
}

func TestBoolFlagAlone(t *testing.T) {
	cfg, err := load(t, "", nil, []string{"--grpc.tls.enabled", "--grpc.tls.certFile", "c.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.GRPC.TLS.Enabled || cfg.GRPC.TLS.CertFile != "c.pem" {
		t.Fatalf("got %+v", cfg.GRPC.TLS)
	}
	cfg, err = load(t, "grpc: {tls: {enabled: true, certFile: x}}", nil, []string{"--grpc.tls.enabled=false"})
	if err != nil || cfg.GRPC.TLS.Enabled {
		t.Fatalf("--x=false: %v %+v", err, cfg.GRPC.TLS)
	}
}

func TestYAMLFeatures(t *testing.T) {
	tests := []struct {
		name string
		file string
		want func(root) bool
	}{
		{name: "empty file", file: "", want: func(c root) bool { return c.GRPC.Address == ":8081" }},
		{name: "comments only", file: "# nothing\n", want: func(c root) bool { return c.GRPC.Address == ":8081" }},
		{name: "null section keeps defaults", file: "grpc:\n", want: func(c root) bool { return c.GRPC.Address == ":8081" }},
		{name: "flow mapping", file: "grpc: {address: x:1, tls: {enabled: true, certFile: c}}", want: func(c root) bool { return c.GRPC.Address == "x:1" && c.GRPC.TLS.Enabled }},
		{name: "anchor and alias", file: "mode: &m cluster\ngrpc:\n  address: *m\n", want: func(c root) bool { return c.Mode == "cluster" && c.GRPC.Address == "cluster" }},
		{name: "merge key, explicit wins", file: "x-base: &b\n  address: a:1\n  workers: 3\n", want: nil},
		{name: "merge into section", file: "grpc:\n  <<: {address: a:1, workers: 3}\n  workers: 4\n", want: func(c root) bool { return c.GRPC.Address == "a:1" && c.GRPC.Workers == 4 }},
		{name: "block list", file: "grpc:\n  origins:\n    - one\n    - two\n", want: func(c root) bool { return reflect.DeepEqual(c.GRPC.Origins, []string{"one", "two"}) }},
		{name: "unquoted number into string", file: "grpc:\n  address: 8081\n", want: func(c root) bool { return c.GRPC.Address == "8081" }},
		{name: "bare document marker", file: "---\nmode: cluster\n", want: func(c root) bool { return c.Mode == "cluster" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, tt.file, nil, nil)
			if tt.want == nil {
				var u *config.UnknownKeyError
				if !errors.As(err, &u) || u.Key != "x-base" {
					t.Fatalf("want unknown key x-base, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(cfg) {
				t.Fatalf("unexpected result %+v", cfg)
			}
		})
	}
}

func TestEnvNames(t *testing.T) {
	want := map[string]string{
		"mode":                 "RMQPROXY_MODE",
		"listen":               "RMQPROXY_LISTEN",
		"grpc.address":         "RMQPROXY_GRPC_ADDRESS",
		"grpc.maxMessageSize":  "RMQPROXY_GRPC_MAX_MESSAGE_SIZE",
		"grpc.keepAlive":       "RMQPROXY_GRPC_KEEP_ALIVE",
		"grpc.tls.certFile":    "RMQPROXY_GRPC_TLS_CERT_FILE",
		"grpc.tls.keyPassword": "RMQPROXY_GRPC_TLS_KEY_PASSWORD",
		"postgres.dsn":         "RMQPROXY_POSTGRES_DSN",
		"postgres.maxConns":    "RMQPROXY_POSTGRES_MAX_CONNS",
	}
	for _, s := range config.Reference(defaults()) {
		if w, ok := want[s.Key]; ok && s.Env != w {
			t.Errorf("%s: env %s, want %s", s.Key, s.Env, w)
		}
		if s.Flag != "--"+s.Key {
			t.Errorf("%s: flag %s", s.Key, s.Flag)
		}
		delete(want, s.Key)
	}
	if len(want) > 0 {
		t.Errorf("settings missing from Reference: %v", want)
	}

	type acronyms struct {
		MaxQPSPerClient  int    `yaml:"maxQPSPerClient"`
		OTLPHTTPEndpoint string `yaml:"otlpHTTPEndpoint"`
		S3Bucket         string `yaml:"s3Bucket"`
		Snake            string `yaml:"snake_case-key"`
	}
	got := map[string]string{}
	for _, s := range config.Reference(struct {
		A acronyms `yaml:"a"`
	}{}) {
		got[s.Key] = s.Env
	}
	for k, w := range map[string]string{
		"a.maxQPSPerClient":  "RMQPROXY_A_MAX_QPS_PER_CLIENT",
		"a.otlpHTTPEndpoint": "RMQPROXY_A_OTLP_HTTP_ENDPOINT",
		"a.s3Bucket":         "RMQPROXY_A_S3_BUCKET",
		"a.snake_case-key":   "RMQPROXY_A_SNAKE_CASE_KEY",
	} {
		if got[k] != w {
			t.Errorf("%s: env %s, want %s", k, got[k], w)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  []string
		args []string
		// check inspects the joined error; each case names what must be in it.
		unknown    []config.UnknownKeyError // Key, Source prefix, Suggestion
		fields     []config.FieldError      // Key and Source prefix
		wantInText []string
		notInText  []string
	}{
		{
			name:    "unknown yaml key with suggestion",
			file:    "grpc:\n  adress: x\n",
			unknown: []config.UnknownKeyError{{Key: "grpc.adress", Source: "rmqproxy.yaml:2", Suggestion: "grpc.address"}},
		},
		{
			name:    "unknown yaml section with suggestion",
			file:    "grcp:\n  address: x\n",
			unknown: []config.UnknownKeyError{{Key: "grcp", Source: "rmqproxy.yaml:1", Suggestion: "grpc"}},
		},
		{
			name:    "misplaced key suggests its full path",
			file:    "address: x\n",
			unknown: []config.UnknownKeyError{{Key: "address", Source: "rmqproxy.yaml:1", Suggestion: "grpc.address"}},
		},
		{
			name:       "a dotted key in the file is nested instead",
			file:       "grpc.address: x\ngrpc:\n  tls.certFile: y\n",
			wantInText: []string{`rmqproxy.yaml:1: key "grpc.address" is the dotted name of a setting, which the file does not take: nest it, as "grpc:\n  address: ..."`, `rmqproxy.yaml:3: key "grpc.tls.certFile" is the dotted name of a setting, which the file does not take: nest it, as "grpc:\n  tls:\n    certFile: ..."`},
		},
		{
			name:    "unknown key without a close match",
			file:    "zzzzzzzzzzzz: 1\n",
			unknown: []config.UnknownKeyError{{Key: "zzzzzzzzzzzz", Source: "rmqproxy.yaml:1", Suggestion: ""}},
		},
		{
			name:    "unknown env",
			env:     []string{"RMQPROXY_GRPC_ADRESS=x"},
			unknown: []config.UnknownKeyError{{Key: "RMQPROXY_GRPC_ADRESS", Source: "environment", Suggestion: "RMQPROXY_GRPC_ADDRESS, for grpc.address"}},
		},
		{
			name:    "unknown env without a close match",
			env:     []string{"RMQPROXY_FOO=x"},
			unknown: []config.UnknownKeyError{{Key: "RMQPROXY_FOO", Source: "environment", Suggestion: ""}},
		},
		{
			name:    "unknown flag, case typo",
			args:    []string{"--grpc.tls.certfile=x"},
			unknown: []config.UnknownKeyError{{Key: "--grpc.tls.certfile", Source: "flags", Suggestion: "--grpc.tls.certFile"}},
		},
		{
			name:       "unknown flag's value is skipped",
			args:       []string{"--grpc.adress", "x", "--mode=cluster"},
			unknown:    []config.UnknownKeyError{{Key: "--grpc.adress", Source: "flags", Suggestion: "--grpc.address"}},
			wantInText: []string{"did you mean --grpc.address?"},
		},
		{
			name:   "section as flag",
			args:   []string{"--grpc.tls=x"},
			fields: []config.FieldError{{Key: "grpc.tls", Source: "flag --grpc.tls"}},
		},
		{
			name:       "positional argument",
			args:       []string{"serve"},
			wantInText: []string{`unexpected argument "serve"`},
		},
		{
			name:       "arguments after --",
			args:       []string{"--", "x"},
			wantInText: []string{"unexpected arguments"},
		},
		{
			// "--postgres.dsn= postgres://..." (a space after the =): the
			// connection string becomes a stray argument, echoed in the
			// usage error, its password hidden.
			name:       "a stray argument holding a password",
			args:       []string{"--postgres.dsn=", "postgres://u:hunter2@db:5432/x"},
			wantInText: []string{"unexpected argument after --postgres.dsn= (not shown"},
			notInText:  []string{"hunter2"},
		},
		{
			name:       "stray arguments after -- holding a password",
			args:       []string{"--", "postgres://u:hunter2@db/x"},
			wantInText: []string{"u:REDACTED@db"},
			notInText:  []string{"hunter2"},
		},
		{
			name:   "flag without value",
			args:   []string{"--grpc.workers"},
			fields: []config.FieldError{{Key: "grpc.workers", Source: "flag --grpc.workers"}},
		},
		{
			name:       "a secret copied from config print",
			file:       "postgres:\n  dsn: REDACTED\n",
			fields:     []config.FieldError{{Key: "postgres.dsn", Source: "rmqproxy.yaml:2", Value: "REDACTED"}},
			wantInText: []string{"placeholder `rmqproxy config print` writes", "real value"},
		},
		{
			name:       "yaml type error names file and line",
			file:       "mode: local\ngrpc:\n  keepAlive: 10\n",
			fields:     []config.FieldError{{Key: "grpc.keepAlive", Source: "rmqproxy.yaml:3", Value: "10"}},
			wantInText: []string{"missing unit", "a duration such as 10s"},
		},
		{
			name:       "yaml bytes error",
			file:       "grpc:\n  maxMessageSize: 4XB\n",
			fields:     []config.FieldError{{Key: "grpc.maxMessageSize", Source: "rmqproxy.yaml:2", Value: "4XB"}},
			wantInText: []string{"4MiB"},
		},
		{
			name:   "yaml mapping where a value belongs",
			file:   "grpc:\n  address:\n    host: x\n",
			fields: []config.FieldError{{Key: "grpc.address", Source: "rmqproxy.yaml:3"}},
		},
		{
			name:   "yaml scalar where a section belongs",
			file:   "grpc: 8081\n",
			fields: []config.FieldError{{Key: "grpc", Source: "rmqproxy.yaml:1"}},
		},
		{
			name:   "yaml scalar where a list belongs",
			file:   "grpc:\n  origins: a,b\n",
			fields: []config.FieldError{{Key: "grpc.origins", Source: "rmqproxy.yaml:2", Value: "a,b"}},
		},
		{
			name:   "yaml null leaf",
			file:   "grpc:\n  workers:\n",
			fields: []config.FieldError{{Key: "grpc.workers", Source: "rmqproxy.yaml:2"}},
		},
		{
			name:       "duplicate key",
			file:       "mode: local\nmode: cluster\n",
			wantInText: []string{`rmqproxy.yaml:2: key "mode" repeats the one on line 1`},
		},
		{
			name:       "not a mapping",
			file:       "- a\n- b\n",
			wantInText: []string{"must be a mapping"},
		},
		{
			name:       "two documents",
			file:       "mode: local\n---\nmode: cluster\n",
			wantInText: []string{"second YAML document"},
		},
		{
			name:       "syntax error",
			file:       "grpc:\n  address: [\n",
			wantInText: []string{"rmqproxy.yaml: yaml:"},
		},
		{
			name:       "env type error",
			env:        []string{"RMQPROXY_GRPC_WORKERS=many"},
			fields:     []config.FieldError{{Key: "grpc.workers", Source: "environment RMQPROXY_GRPC_WORKERS", Value: "many"}},
			wantInText: []string{"a whole number between"},
		},
		{
			name:   "int32 overflow",
			args:   []string{"--grpc.backlog=2147483648"},
			fields: []config.FieldError{{Key: "grpc.backlog", Source: "flag --grpc.backlog", Value: "2147483648"}},
		},
		{
			name:   "bool flag with bad value",
			args:   []string{"--grpc.tls.enabled=maybe"},
			fields: []config.FieldError{{Key: "grpc.tls.enabled", Source: "flag --grpc.tls.enabled", Value: "maybe"}},
		},
		{
			name:   "NaN float",
			args:   []string{"--grpc.weight=NaN"},
			fields: []config.FieldError{{Key: "grpc.weight", Source: "flag --grpc.weight", Value: "NaN"}},
		},
		{
			name:   "bad text value",
			env:    []string{"RMQPROXY_LISTEN=nowhere"},
			fields: []config.FieldError{{Key: "listen", Source: "environment RMQPROXY_LISTEN", Value: "nowhere"}},
		},
		{
			name: "every error is reported, not just the first",
			file: "grpc:\n  adress: x\n  workers: many\n",
			env:  []string{"RMQPROXY_MODEE=x"},
			args: []string{"--grpc.keepAlive=soon"},
			unknown: []config.UnknownKeyError{
				{Key: "grpc.adress", Source: "rmqproxy.yaml:2", Suggestion: "grpc.address"},
				{Key: "RMQPROXY_MODEE", Source: "environment", Suggestion: "RMQPROXY_MODE, for mode"},
			},
			fields: []config.FieldError{
				{Key: "grpc.workers", Source: "rmqproxy.yaml:3", Value: "many"},
				{Key: "grpc.keepAlive", Source: "flag --grpc.keepAlive", Value: "soon"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.file, tt.env, tt.args)
			if err == nil {
				t.Fatal("no error")
			}
			all := flatten(err)
			for _, want := range tt.unknown {
				if !slicesContainsFunc(all, func(e error) bool {
					u, ok := e.(*config.UnknownKeyError)
					return ok && u.Key == want.Key && strings.HasSuffix(u.Source, want.Source) && u.Suggestion == want.Suggestion
				}) {
					t.Errorf("want unknown key %+v in\n%v", want, err)
				}
			}
			for _, want := range tt.fields {
				if !slicesContainsFunc(all, func(e error) bool {
					f, ok := e.(*config.FieldError)
					return ok && f.Key == want.Key && strings.HasSuffix(f.Source, want.Source) && f.Value == want.Value
				}) {
					t.Errorf("want field error %+v in\n%v", want, err)
				}
			}
			for _, s := range tt.wantInText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("want %q in\n%v", s, err)
				}
			}
			for _, s := range tt.notInText {
				if strings.Contains(err.Error(), s) {
					t.Errorf("%q printed in\n%v", s, err)
				}
			}
			if n := len(tt.unknown) + len(tt.fields); n > 1 && len(all) != n {
				t.Errorf("want %d errors, got %d:\n%v", n, len(all), err)
			}
		})
	}
}

func flatten(err error) []error {
	if m, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range m.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func slicesContainsFunc(errs []error, f func(error) bool) bool {
	for _, e := range errs {
		if f(e) {
			return true
		}
	}
	return false
}

func TestErrorMessages(t *testing.T) {
	_, err := load(t, "grpc:\n  adress: x\n", []string{"RMQPROXY_GRPC_WORKERS=many"}, []string{"--grpc.keepAlive=soon"})
	text := err.Error()
	for _, want := range []string{
		`rmqproxy.yaml:2: unknown key "grpc.adress" (did you mean grpc.address?)`,
		`environment RMQPROXY_GRPC_WORKERS: grpc.workers: invalid value "many": not a whole number between -9223372036854775808 and 9223372036854775807`,
		`flag --grpc.keepAlive: invalid value "soon": not a duration such as 10s, 1h30m or 250ms`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("want %q in\n%s", want, text)
		}
	}

	// Each message says once what the value should look like: a parser's
	// error that already says it gets no "; expected ..." repeating it.
	_, err = load(t, "grpc:\n  workers: many\n  keepAlive: soon\n", []string{"RMQPROXY_GRPC_TLS_ENABLED=maybe"}, []string{"--grpc.maxMessageSize=lots", "--grpc.weight=heavy"})
	for _, e := range flatten(err) {
		if text := e.Error(); strings.Contains(text, "; expected") {
			t.Errorf("says twice what it expects: %s", text)
		}
	}
	if n := len(flatten(err)); n != 5 {
		t.Errorf("%d errors, want 5:\n%v", n, err)
	}

	// A secret left as config print's placeholder: the message names the
	// environment variable that can give it, and no type.
	_, err = load(t, "postgres:\n  dsn: REDACTED\n", nil, nil)
	if want := `rmqproxy.yaml:2: postgres.dsn: invalid value "REDACTED": it is the placeholder ` + "`rmqproxy config print`" + ` writes for a secret; give the real value (RMQPROXY_POSTGRES_DSN keeps it out of files and command lines)`; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// TestErrUsage: Load's error matches ErrUsage when the command line is at
// fault, and only then.
func TestErrUsage(t *testing.T) {
	for name, c := range map[string]struct {
		file      string
		env, args []string
		usage     bool
	}{
		"unknown flag":           {args: []string{"--grpc.adress=x"}, usage: true},
		"flag value":             {args: []string{"--grpc.workers=many"}, usage: true},
		"stray argument":         {args: []string{"extra"}, usage: true},
		"flag and file":          {file: "grcp: {}\n", args: []string{"--grpc.workers=many"}, usage: true},
		"file":                   {file: "grcp: {}\n"},
		"environment":            {env: []string{"RMQPROXY_GRPC_WORKERS=many"}},
		"validation of a flag":   {args: []string{"--mode=hybrid"}},
		"placeholder in a flag":  {args: []string{"--postgres.dsn=REDACTED"}},
		"unknown env variable":   {env: []string{"RMQPROXY_GRPC_ADRESS=x"}},
		"file value":             {file: "grpc:\n  workers: many\n"},
		"validation of the file": {file: "mode: hybrid\n"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, c.file, c.env, c.args)
			if err == nil || errors.Is(err, config.ErrUsage) != c.usage {
				t.Fatalf("errors.Is(%v, ErrUsage) != %v", err, c.usage)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // FieldError keys, in order
	}{
		{name: "valid", args: nil, want: nil},
		{name: "root", args: []string{"--mode=hybrid"}, want: []string{"mode"}},
		{name: "pointer receiver, two errors", args: []string{"--grpc.address=", "--grpc.workers=-1"}, want: []string{"grpc.address", "grpc.workers"}},
		{name: "nested value receiver", args: []string{"--grpc.tls.enabled"}, want: []string{"grpc.tls.certFile"}},
		{name: "all of them", args: []string{"--mode=x", "--grpc.address=", "--grpc.tls.enabled"}, want: []string{"mode", "grpc.address", "grpc.tls.certFile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, "", nil, tt.args)
			var got []string
			if err != nil {
				for _, e := range flatten(err) {
					var fe *config.FieldError
					if !errors.As(e, &fe) || fe.Source != "" {
						t.Fatalf("not a validation error: %v", e)
					}
					got = append(got, fe.Key)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got keys %q, want %q; error:\n%v", got, tt.want, err)
			}
		})
	}
	_, err := load(t, "", nil, []string{"--grpc.tls.enabled"})
	if want := "grpc.tls.certFile is required when TLS is enabled"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

type keyedSub struct {
	MaxSize int `yaml:"maxSize"`
	MinSize int `yaml:"minSize"`
}

type keyedLocal struct {
	DataDir string   `yaml:"dataDir"`
	Flush   string   `yaml:"flush"`
	Sub     keyedSub `yaml:"sub"`
}

// keyedLocalErr is what keyedLocal.Validate returns.
var keyedLocalErr error

func (keyedLocal) Validate() error { return keyedLocalErr }

type keyedRoot struct {
	Mode  string     `yaml:"mode"`
	Local keyedLocal `yaml:"local"`
	Host  string     `yaml:"host"`
}

// Derive fills host from mode when it was left empty.
func (r *keyedRoot) Derive() {
	if r.Host == "" {
		r.Host = "derived-from-" + r.Mode
	}
}

// TestValidationErrorsNameFullKeys: a Config's messages name its own keys;
// the errors Load returns name them in full (local.flush, not flush).
func TestValidationErrorsNameFullKeys(t *testing.T) {
	tests := []struct {
		name string
		err  error
		keys []string
		msgs []string
	}{
		{"leading key, quoted value untouched", errors.New(`flush must be sync or async, got "maxSize"`),
			[]string{"local.flush"}, []string{`local.flush must be sync or async, got "maxSize"`}},
		{"wrapped join with a package prefix", fmt.Errorf("localbroker: %w", errors.Join(errors.New("dataDir must not be empty"), errors.New("sub.maxSize must be >= sub.minSize."))),
			[]string{"local.dataDir", "local.sub.maxSize"}, []string{"local.dataDir must not be empty", "local.sub.maxSize must be >= local.sub.minSize."}},
		{"single error with a package prefix", errors.New("localbroker: flush must be sync"),
			[]string{"local.flush"}, []string{"local.flush must be sync"}},
		{"section then relative names", errors.New("sub: minSize must be below maxSize"),
			[]string{"local.sub"}, []string{"local.sub: local.sub.minSize must be below local.sub.maxSize"}},
		{"two keys", errors.New("flush and dataDir clash"),
			[]string{"local.flush"}, []string{"local.flush and local.dataDir clash"}},
		{"no key", errors.New("something is off"), []string{"local"}, []string{"local: something is off"}},
		{"not a key of this section", errors.New("mode is wrong"), []string{"local"}, []string{"local: mode is wrong"}},
		{"escaped quote", errors.New(`flush "a\" dataDir" is odd`), []string{"local.flush"}, []string{`local.flush "a\" dataDir" is odd`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyedLocalErr = tt.err
			defer func() { keyedLocalErr = nil }()
			cfg := keyedRoot{Mode: "m"}
			err := config.Load(&cfg, config.Sources{})
			var keys, msgs []string
			for _, e := range flatten(err) {
				var fe *config.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("not a FieldError: %v", e)
				}
				keys, msgs = append(keys, fe.Key), append(msgs, fe.Error())
			}
			if !reflect.DeepEqual(keys, tt.keys) || !reflect.DeepEqual(msgs, tt.msgs) {
				t.Fatalf("got keys %q messages %q\nwant     %q          %q", keys, msgs, tt.keys, tt.msgs)
			}
			if !errors.Is(err, tt.err) && len(tt.keys) == 1 && !strings.Contains(tt.name, "prefix") {
				t.Fatalf("the Config's error is not wrapped: %v", err)
			}
		})
	}
}

// TestDerive: Derive fills what the sources left empty, before validation,
// and leaves what they set.
func TestDerive(t *testing.T) {
	cfg := keyedRoot{Mode: "m"}
	if err := config.Load(&cfg, config.Sources{Args: []string{"--mode=x"}}); err != nil || cfg.Host != "derived-from-x" {
		t.Fatalf("derived %q, %v", cfg.Host, err)
	}
	cfg = keyedRoot{Mode: "m"}
	if err := config.Load(&cfg, config.Sources{Args: []string{"--mode=x", "--host=h"}}); err != nil || cfg.Host != "h" {
		t.Fatalf("explicit %q, %v", cfg.Host, err)
	}
}

func TestValidateSkippedAfterLoadErrors(t *testing.T) {
	_, err := load(t, "", nil, []string{"--mode=x", "--grpc.workers=many"})
	all := flatten(err)
	if len(all) != 1 {
		t.Fatalf("want only the load error, got:\n%v", err)
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	def := write("default.yaml", "mode: cluster\n")
	env := write("env.yaml", "grpc: {address: env}\n")
	flg := write("flag.yaml", "grpc: {address: flag}\n")
	tests := []struct {
		name     string
		src      config.Sources
		wantAddr string
		wantMode string
		wantErr  bool
	}{
		{name: "default file", src: config.Sources{File: def}, wantAddr: ":8081", wantMode: "cluster"},
		{name: "env names the file", src: config.Sources{File: def, Env: []string{"RMQPROXY_CONFIG=" + env}}, wantAddr: "env", wantMode: "local"},
		{name: "flag beats env", src: config.Sources{File: def, Env: []string{"RMQPROXY_CONFIG=" + env}, Args: []string{"--config", flg}}, wantAddr: "flag", wantMode: "local"},
		{name: "flag with =", src: config.Sources{Args: []string{"--config=" + flg}}, wantAddr: "flag", wantMode: "local"},
		// An empty --config (a script's unset variable: --config=$FILE)
		// started the server on the defaults, local mode with ./data,
		// without a word: it is a usage error.
		{name: "empty flag", src: config.Sources{File: def, Args: []string{"--config="}}, wantErr: true},
		{name: "blank flag", src: config.Sources{Args: []string{"--config", " "}}, wantErr: true},
		{name: "empty env means no file", src: config.Sources{Env: []string{"RMQPROXY_CONFIG="}}, wantAddr: ":8081", wantMode: "local"},
		{name: "env still overrides the chosen file", src: config.Sources{Env: []string{"RMQPROXY_GRPC_ADDRESS=e"}, Args: []string{"--config", flg}}, wantAddr: "e", wantMode: "local"},
		{name: "missing file", src: config.Sources{Args: []string{"--config", filepath.Join(dir, "nope.yaml")}}, wantErr: true},
		{name: "missing value", src: config.Sources{Args: []string{"--config"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaults()
			err := config.Load(&cfg, tt.src)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.GRPC.Address != tt.wantAddr || cfg.Mode != tt.wantMode {
				t.Fatalf("got %q %q", cfg.GRPC.Address, cfg.Mode)
			}
		})
	}
}

// TestMissingConfigFileNamesItsSource: a file that cannot be read was
// reported as "config file: open x.yaml: no such file or directory",
// which did not say where the name came from: a RMQPROXY_CONFIG left in
// the environment (a shell profile, a unit's EnvironmentFile) was hard to
// find. The error names the flag or the variable.
func TestMissingConfigFileNamesItsSource(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	for _, tt := range []struct {
		name string
		src  config.Sources
		want string
	}{
		{"flag", config.Sources{Args: []string{"--config", missing}}, "config file named by --config: open " + missing + ": no such file or directory"},
		{"environment", config.Sources{Env: []string{"RMQPROXY_CONFIG=" + missing}}, "config file named by RMQPROXY_CONFIG: open " + missing + ": no such file or directory"},
		{"default file", config.Sources{File: missing}, "config file: open " + missing + ": no such file or directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaults()
			err := config.Load(&cfg, tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"--grpc.adress=x", "--help"}} {
		cfg := defaults()
		if err := config.Load(&cfg, config.Sources{Args: args}); !errors.Is(err, config.ErrHelp) {
			t.Errorf("%q: got %v", args, err)
		}
	}
}

func TestLoadRejectsBadDestinations(t *testing.T) {
	type unsupported struct {
		M map[string]string `yaml:"m"`
	}
	type collide struct {
		A struct {
			BC string `yaml:"bC"`
		} `yaml:"a"`
		AB struct {
			C string `yaml:"c"`
		} `yaml:"aB"`
	}
	type badUnit struct {
		N int32 `yaml:"n" unit:"bytes"`
	}
	type clash struct {
		Config string `yaml:"config"`
	}
	for name, dst := range map[string]any{
		"not a pointer":    defaults(),
		"nil pointer":      (*root)(nil),
		"pointer to int":   new(int),
		"unsupported type": &unsupported{},
		"env collision":    &collide{},
		"bytes on int32":   &badUnit{},
		"config key":       &clash{},
	} {
		t.Run(name, func(t *testing.T) {
			if err := config.Load(dst, config.Sources{}); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestPrintGolden(t *testing.T) {
	cfg := defaults()
	cfg.GRPC.TLS.KeyPassword = "hunter2"
	var buf bytes.Buffer
	if err := config.Print(&buf, &cfg); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "print.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./adapters/config -update to create it)", err)
	}
	if got := buf.String(); got != string(want) {
		t.Fatalf("Print output differs from %s (run with -update if intended):\n%s", golden, got)
	}
	for _, secret := range []string{"hunter2", "postgres://"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("Print leaked %q", secret)
		}
	}
}

func TestPrintRoundTrip(t *testing.T) {
	want := defaults()
	want.Postgres.DSN = "" // secrets print as REDACTED and cannot round-trip
	want.GRPC.MaxMessageSize = 10_000_000
	want.GRPC.KeepAlive = time.Hour + 30*time.Second
	want.GRPC.Weight = 0.1
	want.GRPC.Origins = []string{"true", "a: b", "#x", ""}
	want.GRPC.TLS.CertFile = "null"
	var buf bytes.Buffer
	if err := config.Print(&buf, want); err != nil {
		t.Fatal(err)
	}
	got := root{}
	if err := config.Load(&got, config.Sources{File: writeFile(t, buf.String())}); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v\n%s", got, want, buf.String())
	}
}

func TestReference(t *testing.T) {
	ref := config.Reference(defaults())
	byKey := map[string]config.Setting{}
	var keys []string
	for _, s := range ref {
		byKey[s.Key] = s
		keys = append(keys, s.Key)
	}
	wantKeys := []string{"mode", "listen", "grpc.address", "grpc.maxMessageSize", "grpc.keepAlive", "grpc.workers",
		"grpc.backlog", "grpc.offset", "grpc.weight", "grpc.origins", "grpc.reflection", "grpc.tls.enabled", "grpc.tls.certFile",
		"grpc.tls.keyPassword", "postgres.dsn", "postgres.maxConns"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Fatalf("keys %q", keys)
	}
	for key, want := range map[string]config.Setting{
		"grpc.maxMessageSize":  {Type: "bytes", Default: "4MiB", Help: "Largest accepted request."},
		"grpc.keepAlive":       {Type: "duration", Default: "1h30m"},
		"grpc.origins":         {Type: "list", Default: "a,b"},
		"grpc.backlog":         {Type: "int32", Default: "128"},
		"grpc.weight":          {Type: "float", Default: "1"},
		"postgres.dsn":         {Type: "secret", Default: "REDACTED"},
		"grpc.tls.keyPassword": {Type: "secret", Default: ""},
		"listen":               {Type: "netip.AddrPort", Default: "127.0.0.1:9000"},
	} {
		got := byKey[key]
		if got.Type != want.Type || got.Default != want.Default || (want.Help != "" && got.Help != want.Help) {
			t.Errorf("%s: got %+v, want %+v", key, got, want)
		}
	}

	md := config.MarkdownTable(ref)
	if lines := strings.Count(md, "\n"); lines != len(ref)+2 {
		t.Errorf("markdown has %d lines for %d settings:\n%s", lines, len(ref), md)
	}
	for _, want := range []string{
		"| `grpc.maxMessageSize` | `RMQPROXY_GRPC_MAX_MESSAGE_SIZE` | `--grpc.maxMessageSize` | bytes | `4MiB` | Largest accepted request. |",
		`Queued requests \| pipes escaped.`,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}

	var help bytes.Buffer
	if err := config.WriteHelp(&help, ref); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--grpc.keepAlive duration", "RMQPROXY_GRPC_KEEP_ALIVE (default 1h30m)", "Interval of server pings."} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, help.String())
		}
	}
	if strings.Contains(help.String()+md, "hunter2") {
		t.Error("reference leaked a secret")
	}
}

// TestHelpLayout: each setting's line of --help is its flag and type, then
// its environment variable and default, and its help follows indented. No
// line is padded: the help lines, a long unbreakable word (a URL) among
// them, used to set the width of the flag column, so that every flag line
// ran to about 150 columns and every help line ended in spaces.
func TestHelpLayout(t *testing.T) {
	ref := []config.Setting{
		{Flag: "--a", Type: "string", Env: "RMQPROXY_A", Default: "x", Help: "Short."},
		{Flag: "--b.long", Type: "secret", Env: "RMQPROXY_B_LONG",
			Help: "A connection string such as postgres://user:PASSWORD@db.example.com:5432/rmqproxy?sslmode=verify-full&sslrootcert=/etc/rmqproxy/pg-ca.pem here."},
	}
	var help bytes.Buffer
	if err := config.WriteHelp(&help, ref); err != nil {
		t.Fatal(err)
	}
	want := "  --a string  RMQPROXY_A (default x)\n" +
		"      Short.\n" +
		"  --b.long secret  RMQPROXY_B_LONG (default \"\")\n" +
		"      A connection string such as\n" +
		"      postgres://user:PASSWORD@db.example.com:5432/rmqproxy?sslmode=verify-full&sslrootcert=/etc/rmqproxy/pg-ca.pem\n" +
		"      here.\n"
	if got := help.String(); got != want {
		t.Fatalf("help:\n%s\nwant:\n%s", strings.ReplaceAll(got, " \n", "·\n"), want)
	}
}

func TestReferencePanicsOnBadStruct(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	config.Reference(struct{ C chan int }{})
}

// TestRedactedPlaceholderOverridden: a file written by config print holds
// REDACTED for each secret; the environment or a flag that gives the real
// value overrides it, as any later source overrides the file. Only a
// placeholder that nothing overrides is refused.
func TestRedactedPlaceholderOverridden(t *testing.T) {
	file := "postgres:\n  dsn: REDACTED\ngrpc:\n  tls:\n    keyPassword: REDACTED\n"
	for name, c := range map[string]struct{ env, args []string }{
		"environment": {env: []string{"RMQPROXY_POSTGRES_DSN=postgres://u:real@db/rmq", "RMQPROXY_GRPC_TLS_KEY_PASSWORD=pw"}},
		"flags":       {args: []string{"--postgres.dsn=postgres://u:real@db/rmq", "--grpc.tls.keyPassword", "pw"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := load(t, file, c.env, c.args)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Postgres.DSN != "postgres://u:real@db/rmq" || cfg.GRPC.TLS.KeyPassword.Reveal() != "pw" {
				t.Fatalf("dsn %q, keyPassword %q", cfg.Postgres.DSN, cfg.GRPC.TLS.KeyPassword.Reveal())
			}
		})
	}
	_, err := load(t, file, []string{"RMQPROXY_POSTGRES_DSN=postgres://u:real@db/rmq"}, nil)
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Key != "grpc.tls.keyPassword" || strings.Contains(err.Error(), "postgres.dsn") {
		t.Fatalf("only keyPassword left as the placeholder: %v", err)
	}
	_, err = load(t, "", []string{"RMQPROXY_POSTGRES_DSN=REDACTED"}, []string{"--postgres.dsn=postgres://u:real@db/rmq"})
	if err != nil {
		t.Fatalf("a flag over a placeholder in the environment: %v", err)
	}
	_, err = load(t, "", nil, []string{"--postgres.dsn=REDACTED"})
	if !errors.As(err, &fe) || fe.Key != "postgres.dsn" {
		t.Fatalf("the placeholder as a flag: %v", err)
	}
}

func TestSecret(t *testing.T) {
	s := config.Secret("hunter2")
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "password", s)
	j, _ := json.Marshal(struct{ P config.Secret }{s})
	for name, out := range map[string]string{
		"String":   s.String(),
		"%v":       fmt.Sprintf("%v", s),
		"%s":       fmt.Sprintf("%s", s),
		"%q":       fmt.Sprintf("%q", s),
		"%#v":      fmt.Sprintf("%#v", s),
		"slog":     logs.String(),
		"json":     string(j),
		"in slice": fmt.Sprint([]config.Secret{s}),
	} {
		if strings.Contains(out, "hunter2") || !strings.Contains(out, "REDACTED") {
			t.Errorf("%s: %q", name, out)
		}
	}
	if s.Reveal() != "hunter2" {
		t.Error("Reveal")
	}
	if config.Secret("").String() != "" {
		t.Error("empty secret should print empty")
	}
}

func TestBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "0", want: 0},
		{in: "4194304", want: 4 << 20},
		{in: "4MiB", want: 4 << 20},
		{in: "4 MiB", want: 4 << 20},
		{in: "4mib", want: 4 << 20},
		{in: "4Mi", want: 4 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "1GiB", want: 1 << 30},
		{in: "10MB", want: 10_000_000},
		{in: "10M", want: 10_000_000},
		{in: "1KB", want: 1000},
		{in: "7B", want: 7},
		{in: "1.5KiB", want: 1536},
		{in: "0.5MB", want: 500_000},
		{in: "8EiB", err: true},
		{in: "8191PiB", want: 8191 << 50},
		{in: "8192PiB", err: true},
		{in: "9223372036854775807", want: 1<<63 - 1},
		{in: "9223372036854775808", err: true},
		{in: "1.1KiB", err: true},
		{in: "-1", err: true},
		{in: "", err: true},
		{in: "MiB", err: true},
		{in: "1.", err: true},
		{in: ".5", err: true},
		{in: "1..5", err: true},
		{in: "1e3", err: true},
		{in: "4XB", err: true},
		{in: "0x10", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := config.ParseBytes(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("ParseBytes(%q) = %d, %v", tt.in, got, err)
			}
		})
	}
	for n, want := range map[int64]string{0: "0", 1: "1B", 1024: "1KiB", 4 << 20: "4MiB", 10_000_000: "10MB", 1500: "1500B", 1536: "1536B", 3 << 30: "3GiB", 1<<63 - 1: "9223372036854775807B"} {
		if got := config.FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", time.Hour: "1h", 90 * time.Minute: "1h30m", 2 * time.Minute: "2m", 10 * time.Second: "10s",
		time.Hour + time.Second: "1h0m1s", 250 * time.Millisecond: "250ms", -time.Minute: "-1m",
	} {
		if got := config.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %s, want %s", d, got, want)
		}
	}
}

type sectionA struct {
	X string `yaml:"x"`
}
type sectionB struct {
	Y int `yaml:"y"`
}

func TestModule(t *testing.T) {
	type rootCfg struct {
		Mode string   `yaml:"mode"`
		A    sectionA `yaml:"a"`
		B    sectionB `yaml:"b"`
		D    time.Duration
	}
	cfg := rootCfg{Mode: "local", A: sectionA{X: "x"}, B: sectionB{Y: 7}}
	var gotA sectionA
	var gotB sectionB
	var gotRoot rootCfg
	app := fxtest.New(t, config.Module(&cfg), fx.NopLogger, fx.Invoke(func(a sectionA, b sectionB, r rootCfg) {
		gotA, gotB, gotRoot = a, b, r
	}))
	app.RequireStart().RequireStop()
	if gotA != cfg.A || gotB != cfg.B || gotRoot != cfg {
		t.Fatalf("got %+v %+v %+v", gotA, gotB, gotRoot)
	}

	type dup struct {
		A1 sectionA `yaml:"a1"`
		A2 sectionA `yaml:"a2"`
	}
	if err := fx.New(config.Module(dup{}), fx.NopLogger).Err(); err == nil {
		t.Fatal("duplicate section types: no error")
	}
	if err := fx.New(config.Module(3), fx.NopLogger).Err(); err == nil {
		t.Fatal("non-struct root: no error")
	}
}

// TestLoadFor: a command that uses some settings of a configuration shared
// with the server gets them without the server's validation, and without
// an error for a placeholder secret it does not read; unknown keys, values
// that do not parse and a placeholder in a setting it reads are errors as
// with Load.
func TestLoadFor(t *testing.T) {
	file := writeFile(t, "mode: hybrid\ngrpc:\n  address: \"\"\n  tls:\n    enabled: true\n    keyPassword: REDACTED\npostgres:\n  dsn: REDACTED\n")
	cfg := defaults()
	err := config.LoadFor(&cfg, config.Sources{File: file, Env: []string{"RMQPROXY_GRPC_WORKERS=-1"}}, "grpc.tls.enabled", "grpc.workers")
	if err != nil || !cfg.GRPC.TLS.Enabled || cfg.GRPC.Workers != -1 || cfg.Mode != "hybrid" {
		t.Fatalf("LoadFor: %v (tls.enabled %v, workers %d, mode %q)", err, cfg.GRPC.TLS.Enabled, cfg.GRPC.Workers, cfg.Mode)
	}
	for _, tt := range []struct {
		uses []string
		env  []string
		key  string
	}{
		{uses: []string{"postgres"}, key: "postgres.dsn"},                     // a section: its settings
		{uses: []string{"grpc.tls.keyPassword"}, key: "grpc.tls.keyPassword"}, // a setting
		{uses: []string{"mode"}, env: []string{"RMQPROXY_GRPC_WORKERS=many"}, key: "grpc.workers"},
	} {
		cfg := defaults()
		err := config.LoadFor(&cfg, config.Sources{File: file, Env: tt.env}, tt.uses...)
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Key != tt.key || len(flatten(err)) != 1 {
			t.Errorf("LoadFor(uses %q, env %q): %v; want one error of %s", tt.uses, tt.env, err, tt.key)
		}
	}
	cfg = defaults()
	if err := config.LoadFor(&cfg, config.Sources{Env: []string{"RMQPROXY_GRPC_ADRESS=x"}}, "mode"); err == nil || !strings.Contains(err.Error(), "RMQPROXY_GRPC_ADRESS") {
		t.Errorf("unknown variable: %v", err)
	}
	if err := config.LoadFor(&cfg, config.Sources{}); err == nil {
		t.Error("LoadFor without keys: no error")
	}
}

// TestSecretNotEchoedInErrors: a secret whose value is refused (longer
// than the 64 KiB a value may have) is named by its key and source, never
// shown, from the file, the environment or a flag; other settings still
// show their offending text.
func TestSecretNotEchoedInErrors(t *testing.T) {
	const secret = "hunter2-"
	long := secret + strings.Repeat("x", 64<<10)
	for name, c := range map[string]struct {
		file       string
		env, args  []string
		key, where string
	}{
		"file dsn":            {file: "postgres:\n  dsn: " + long + "\n", key: "postgres.dsn", where: "rmqproxy.yaml:2"},
		"file keyPassword":    {file: "grpc:\n  tls:\n    keyPassword: " + long + "\n", key: "grpc.tls.keyPassword", where: "rmqproxy.yaml:3"},
		"environment dsn":     {env: []string{"RMQPROXY_POSTGRES_DSN=" + long}, key: "postgres.dsn", where: "environment RMQPROXY_POSTGRES_DSN"},
		"environment keyPass": {env: []string{"RMQPROXY_GRPC_TLS_KEY_PASSWORD=" + long}, key: "grpc.tls.keyPassword", where: "environment RMQPROXY_GRPC_TLS_KEY_PASSWORD"},
		"flag dsn":            {args: []string{"--postgres.dsn=" + long}, key: "postgres.dsn", where: "flag --postgres.dsn"},
		"flag keyPassword":    {args: []string{"--grpc.tls.keyPassword", long}, key: "grpc.tls.keyPassword", where: "flag --grpc.tls.keyPassword"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, c.file, c.env, c.args)
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Key != c.key {
				t.Fatalf("want a FieldError for %s, got %v", c.key, err)
			}
			msg := err.Error()
			if strings.Contains(msg, secret) || strings.Contains(fe.Value, secret) {
				t.Fatalf("the error shows the secret: %.200s", msg)
			}
			if !strings.Contains(msg, c.where) || !strings.Contains(msg, "longer than") {
				t.Fatalf("the error should name %s and say why: %.200s", c.where, msg)
			}
		})
	}
	// Not a secret: the start of the text is shown, shortened.
	_, err := load(t, "", []string{"RMQPROXY_MODE=" + long}, nil)
	if err == nil || !strings.Contains(err.Error(), secret) || len(err.Error()) > 400 {
		t.Fatalf("a plain setting's long value: %.400s", err)
	}
}

// TestEnum: a string setting with an enum tag takes its words in any case
// and with blanks around them, from every source, stores the tag's
// spelling, and refuses any other value naming every word; a bad tag is a
// bug in the Config struct.
func TestEnum(t *testing.T) {
	type withEnum struct {
		Format string `yaml:"format" enum:"text,json" help:"text or json"`
		Type   string `yaml:"type" enum:"NORMAL,FIFO" help:"NORMAL or FIFO"`
	}
	for _, src := range []config.Sources{
		{Args: []string{"--format=JSON", "--type", "fifo"}},
		{Env: []string{"RMQPROXY_FORMAT= Json ", "RMQPROXY_TYPE=Fifo"}},
		{File: writeFile(t, "format: JSON\ntype: fifo\n")},
	} {
		var c withEnum
		if err := config.Load(&c, src); err != nil || c.Format != "json" || c.Type != "FIFO" {
			t.Errorf("%+v: %+v, %v", src, c, err)
		}
	}
	var c withEnum
	err := config.Load(&c, config.Sources{Env: []string{"RMQPROXY_FORMAT=xml"}})
	if want := `environment RMQPROXY_FORMAT: format: invalid value "xml": must be text or json`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	for name, bad := range map[string]any{
		"on an int": &struct {
			N int `enum:"1,2"`
		}{},
		"a secret": &struct {
			S config.Secret `enum:"a,b"`
		}{},
		"twice": &struct {
			S string `enum:"a,A"`
		}{},
		"empty word": &struct {
			S string `enum:"a,,b"`
		}{},
	} {
		if err := config.Load(bad, config.Sources{}); err == nil || !strings.Contains(err.Error(), "enum") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSecretFlagValueAfterASpaceIsNotEchoed: "--postgres.dsn= hunter2"
// (a space after the =) sets the secret empty and leaves its value as a
// stray argument, which the error quoted; it now names the flag it
// follows instead.
func TestSecretFlagValueAfterASpaceIsNotEchoed(t *testing.T) {
	_, err := load(t, "", nil, []string{"--grpc.tls.keyPassword=", "hunter2"})
	var ae *config.ArgumentError
	if !errors.As(err, &ae) || !errors.Is(err, config.ErrUsage) {
		t.Fatalf("want a usage ArgumentError, got %v", err)
	}
	if msg := err.Error(); strings.Contains(msg, "hunter2") || !strings.Contains(msg, "--grpc.tls.keyPassword=") {
		t.Fatalf("error %q shows the secret or does not name the flag", msg)
	}
	// After a setting that is no secret the argument is shown.
	_, err = load(t, "", nil, []string{"--grpc.address=", "hunter2"})
	if err == nil || !strings.Contains(err.Error(), `unexpected argument "hunter2"`) {
		t.Fatalf("got %v", err)
	}
}
