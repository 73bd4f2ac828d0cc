package application

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependsOnlyOnDomainAndPorts keeps the use-case layer free of
// frameworks and protocols: application, domain and ports import only the
// standard library and each other (no fx, gRPC, protobuf, ...).
func TestDependsOnlyOnDomainAndPorts(t *testing.T) {
	const module = "github.com/rmqproxy/rmqproxy/"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}",
		module+"application", module+"domain/...", module+"ports").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == module+"application", p == module+"ports",
			p == module+"domain", strings.HasPrefix(p, module+"domain/"):
		default:
			t.Errorf("the application layer depends on %s; keep frameworks and protocols in the adapters and cmd/rmqproxy/app", p)
		}
	}
}
