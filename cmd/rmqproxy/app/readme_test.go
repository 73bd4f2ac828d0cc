package app_test

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
)

var update = flag.Bool("update", false, "rewrite the configuration reference in README.md")

const (
	beginMarker = "<!-- settings:begin (generated: go test ./cmd/rmqproxy/app -update) -->\n"
	endMarker   = "<!-- settings:end -->"
)

// TestREADMESettingsTable keeps the README's configuration reference equal
// to what the code declares.
func TestREADMESettingsTable(t *testing.T) {
	const path = "../../../README.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the settings markers %q ... %q", beginMarker, endMarker)
	}
	settings := config.Reference(app.Defaults(app.ProfileDevelopment))
	for _, st := range settings {
		if strings.TrimSpace(st.Help) == "" {
			t.Errorf("setting %s has no help tag: --help, config print and the README table would not say what it does", st.Key)
		}
	}
	want := config.MarkdownTable(settings)
	got := s[i+len(beginMarker) : j]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(s[:i+len(beginMarker)]+want+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("README.md's settings table is out of date; run: go test ./cmd/rmqproxy/app -update")
}

// notSettings are dotted names in backquotes in README.md and docs/ that
// look like settings and are not: flags of the admin commands, a gRPC
// service, and the prefixes of OpenTelemetry's messaging attributes.
var notSettings = []string{
	"admin.caFile", "admin.insecureSkipVerify", "grpc.health.v1",
	"messaging.system", "messaging.batch.", "messaging.client.", "messaging.consumer.group.", "messaging.destination.",
	"messaging.message.", "messaging.operation.", "messaging.rocketmq.",
}

// TestDocsNameOnlyExistingSettings: every setting README.md, docs/*.md and
// deployments/ name in backquotes (`grpc.tls.mode`, `--local.flush`,
// `postgres.*`) is a setting or a section of settings, and every RMQPROXY_
// variable they name is a setting's (or RMQPROXY_CONFIG, or one of the test
// suites' RMQPROXY_TEST_ variables), so that the documentation cannot keep
// a key that was renamed or removed.
func TestDocsNameOnlyExistingSettings(t *testing.T) {
	known := map[string]bool{}
	sections := map[string]bool{}
	envs := map[string]bool{"RMQPROXY_CONFIG": true}
	for _, st := range config.Reference(app.Defaults(app.ProfileDevelopment)) {
		known[st.Key] = true
		envs[st.Env] = true
		parts := strings.Split(st.Key, ".")
		for n := 1; n < len(parts); n++ {
			known[strings.Join(parts[:n], ".")] = true
		}
		sections[parts[0]] = true
	}
	var files []string
	for _, pattern := range []string{"../../../docs/*.md", "../../../deployments/*.*", "../../../deployments/*/*"} {
		more, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, more...)
	}
	envName := regexp.MustCompile(`\bRMQPROXY_[A-Z0-9_]*[A-Z0-9]`)
	named := regexp.MustCompile("`(?:--)?([a-z][a-zA-Z0-9]*(?:\\.[a-zA-Z0-9]+)+)(?:\\.\\*)?(?:[= ][^`]*)?`")
	for _, f := range append(files, "../../../README.md") {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range named.FindAllStringSubmatch(string(text), -1) {
			key := m[1]
			if !sections[strings.Split(key, ".")[0]] || known[key] || slices.ContainsFunc(notSettings, func(p string) bool {
				return key == p || strings.HasSuffix(p, ".") && strings.HasPrefix(key, p)
			}) {
				continue
			}
			t.Errorf("%s names %q, which is no setting (renamed or removed? or add it to notSettings)", filepath.Base(f), key)
		}
		for _, name := range envName.FindAllString(string(text), -1) {
			if !envs[name] && !strings.HasPrefix(name+"_", "RMQPROXY_TEST_") { // RMQPROXY_TEST_ itself names the prefix
				t.Errorf("%s names the environment variable %s, which is no setting's", filepath.Base(f), name)
			}
		}
	}
}

// notSettingsInHelp are dotted names in the settings' help that are not
// settings: a gRPC service, a field of the settings the proxy pushes to
// producers, abbreviations.
var notSettingsInHelp = []string{"grpc.health.v1", "publishing.max_body_size", "e.g", "i.e"}

// TestHelpNamesOnlyExistingSettings: every dotted name in a setting's help
// (what --help, config print and the README table show) is a setting or a
// section of settings written in full, such as grpc.tls.mode, not a
// fragment of one ("needs tls.mode enforcing": there is no tls.mode), so
// that the help cannot send a reader to a key that does not exist. A
// setting of the same section may still be named alone (certFile).
func TestHelpNamesOnlyExistingSettings(t *testing.T) {
	settings := config.Reference(app.Defaults(app.ProfileDevelopment))
	known := map[string]bool{}
	for _, st := range settings {
		parts := strings.Split(st.Key, ".")
		for n := 1; n <= len(parts); n++ {
			known[strings.Join(parts[:n], ".")] = true
		}
	}
	dotted := regexp.MustCompile(`(?:^|[^a-zA-Z0-9_./-])([a-z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)+)`)
	for _, st := range settings {
		for _, m := range dotted.FindAllStringSubmatch(st.Help, -1) {
			if name := m[1]; !known[name] && !slices.Contains(notSettingsInHelp, name) {
				t.Errorf("the help of %s names %q, which is no setting (write the whole key): %s", st.Key, name, st.Help)
			}
		}
	}
}

// TestHelpIsWrittenAlike: every setting's help is written as most are, a
// phrase that starts in lower case (unless with a name such as PEM,
// PostgreSQL or Super) and ends without a full stop, so that --help, config
// print and the README table do not mix two styles.
func TestHelpIsWrittenAlike(t *testing.T) {
	for _, st := range config.Reference(app.Defaults(app.ProfileDevelopment)) {
		first, _, _ := strings.Cut(st.Help, " ")
		upper := strings.IndexFunc(first, unicode.IsUpper)
		if upper == 0 && first != "Super" && strings.LastIndexFunc(first, unicode.IsUpper) == 0 {
			t.Errorf("the help of %s starts as a sentence (%q); write it as a phrase in lower case: %s", st.Key, first, st.Help)
		}
		if strings.HasSuffix(st.Help, ".") {
			t.Errorf("the help of %s ends with a full stop: %s", st.Key, st.Help)
		}
	}
}

// TestTestVariablesDoNotStopTheProxy: every RMQPROXY_ variable the code and
// the tests read (os.Getenv, os.LookupEnv) is a setting's, RMQPROXY_CONFIG,
// or starts with RMQPROXY_TEST_, the prefix the configuration leaves to the
// test suites: any other would stop rmqproxy as an unknown environment
// variable when exported in the shell that runs the tests or benchmarks.
func TestTestVariablesDoNotStopTheProxy(t *testing.T) {
	envs := map[string]bool{"RMQPROXY_CONFIG": true}
	for _, st := range config.Reference(app.Defaults(app.ProfileDevelopment)) {
		envs[st.Env] = true
	}
	read := regexp.MustCompile(`os\.(?:Getenv|LookupEnv)\("(RMQPROXY_[A-Z0-9_]+)"\)`)
	var names []string
	err := filepath.WalkDir("../../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "target" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range read.FindAllStringSubmatch(string(text), -1) {
			if !envs[m[1]] && !strings.HasPrefix(m[1], "RMQPROXY_TEST_") {
				t.Errorf("%s reads %s: name it RMQPROXY_TEST_..., or rmqproxy refuses it as an unknown environment variable", path, m[1])
			}
			names = append(names, m[1]+"=1")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("found no RMQPROXY_ variable read by the code: the pattern is out of date")
	}
	var test []string
	for _, n := range names {
		if strings.HasPrefix(n, "RMQPROXY_TEST_") {
			test = append(test, n)
		}
	}
	cfg := app.Defaults(app.ProfileDevelopment)
	if err := config.Load(&cfg, config.Sources{Env: test}); err != nil {
		t.Errorf("the test suites' variables %v stop the configuration: %v", test, err)
	}
}

const (
	examplePath  = "docs/examples/quickstart/main.go"
	exampleBegin = "<!-- example:begin (docs/examples/quickstart/main.go; go test ./cmd/rmqproxy/app -update) -->\n"
	exampleEnd   = "<!-- example:end -->"
)

// TestREADMEExample keeps the Go program README.md shows equal to
// docs/examples/quickstart/main.go, which TestREADMEExampleBuilds builds.
func TestREADMEExample(t *testing.T) {
	const path = "../../../README.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../../" + examplePath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, exampleBegin), strings.Index(s, exampleEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the example markers %q ... %q", exampleBegin, exampleEnd)
	}
	want := "```go\n" + string(example) + "```\n"
	if s[i+len(exampleBegin):j] == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(s[:i+len(exampleBegin)]+want+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("README.md's Go example differs from %s; run: go test ./cmd/rmqproxy/app -update", examplePath)
}

// TestREADMEExampleBuilds compiles the example, and checks that the go get
// line README.md gives pins the client version this module is tested with.
func TestREADMEExampleBuilds(t *testing.T) {
	cmd := exec.Command("go", "build", "-o", os.DevNull, "./"+filepath.Dir(examplePath))
	cmd.Dir = "../../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", examplePath, err, out)
	}
	gomod, err := os.ReadFile("../../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	const client = "github.com/apache/rocketmq-clients/golang/v5"
	version := ""
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == client {
			version = f[1]
		}
	}
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := "go get " + client + "@" + version; version == "" || !strings.Contains(string(readme), want+"\n") {
		t.Fatalf("README.md lacks %q (the client version of go.mod)", want)
	}
}

// TestREADMETwoCommands: the README's set-up is exactly two commands, one
// that runs rmqproxy in local mode and one that runs the whole suite.
func TestREADMETwoCommands(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, "## Two commands\n")
	if i < 0 {
		t.Fatal(`README.md lacks "## Two commands"`)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no sh block under Two commands")
	}
	var cmds []string
	for _, line := range strings.Split(s[start+6:start+6+end], "\n") {
		if c, _, _ := strings.Cut(line, "#"); strings.TrimSpace(c) != "" {
			cmds = append(cmds, strings.TrimSpace(c))
		}
	}
	if want := []string{"go run ./cmd/rmqproxy", "test/scripts/test.sh"}; !slices.Equal(cmds, want) {
		t.Fatalf("set-up commands %q, want %q", cmds, want)
	}
}

// TestExampleConfigLoads checks that the example configurations shipped in
// deployments/ (local and cluster mode) are valid.
func TestExampleConfigLoads(t *testing.T) {
	cfg := app.Defaults(app.ProfileProduction)
	if err := config.Load(&cfg, config.Sources{File: "../../../deployments/rmqproxy.yaml"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Profile != app.ProfileProduction || cfg.Local.AutoCreateTopics {
		t.Fatalf("example config: profile %s, autoCreateTopics %v", cfg.Profile, cfg.Local.AutoCreateTopics)
	}
	cfg = app.Defaults(app.ProfileProduction)
	if err := config.Load(&cfg, config.Sources{File: "../../../deployments/rmqproxy-cluster.yaml"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != app.ModeCluster || cfg.Profile != app.ProfileProduction || len(cfg.Cluster.NameServers) != 2 {
		t.Fatalf("cluster example config: mode %s, profile %s, nameServers %v", cfg.Mode, cfg.Profile, cfg.Cluster.NameServers)
	}
}
