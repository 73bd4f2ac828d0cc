package cluster

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCAFileErrorsNameKeyPathAndCause: a tls.caFile the start cannot use
// fails it with the full key, the path and the cause (it failed with
// "cluster: tls.caFile: open ..."). Validation does not look at the file:
// app.Root.CheckFiles checks it, for serve and config print, in cluster
// mode with tls.enabled (the other commands, and a setup whose cluster TLS
// is off or that runs in local mode, never read it).
func TestCAFileErrorsNameKeyPathAndCause(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	underFile := filepath.Join(notPEM, "ca.pem") // stat: not a directory
	c := DefaultConfig()
	c.TLS.Enabled, c.TLS.CAFile = true, missing
	if err := c.Validate(); err != nil {
		t.Errorf("validation with a missing caFile: %v; want it left to app.Root.CheckFiles and the start", err)
	}
	for path, want := range map[string]string{
		underFile: `cluster.tls.caFile "` + underFile + `": not a directory`,
		missing:   `cluster.tls.caFile "` + missing + `": no such file or directory`,
		notPEM:    `cluster.tls.caFile "` + notPEM + `" holds no PEM certificate`,
	} {
		_, err := tlsConfig(BrokerTLS{Enabled: true, CAFile: path, MinVersion: "1.2"})
		if err == nil || err.Error() != want {
			t.Errorf("start with caFile %s: %v, want %q", path, err, want)
		}
	}
}
