package app_test

import (
	"flag"
	"os"
	"strings"
	"testing"

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
	want := config.MarkdownTable(config.Reference(app.Defaults(app.ProfileDevelopment)))
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

// TestExampleConfigLoads checks that the example configuration shipped in
// deployments/ is valid.
func TestExampleConfigLoads(t *testing.T) {
	cfg := app.Defaults(app.ProfileProduction)
	if err := config.Load(&cfg, config.Sources{File: "../../../deployments/rmqproxy.yaml"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Profile != app.ProfileProduction || cfg.Local.AutoCreateTopics {
		t.Fatalf("example config: profile %s, autoCreateTopics %v", cfg.Profile, cfg.Local.AutoCreateTopics)
	}
}
