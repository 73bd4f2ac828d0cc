package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCAFileErrorsNameKeyPathAndCause: tls.caFile is checked as the
// other file settings are (app.Root.CheckFiles): a file that does not
// exist (or a directory) is refused by validation with the key, the path
// and "no such file or directory"; any other error of stat (a directory
// on the path that may not be searched, a file on it) refused it too,
// though the user validating may not be the one serving, and a file that
// cannot be read failed the start with "cluster: tls.caFile: open ...".
// Those are left to the start, whose error names the full key, the path
// and the cause.
func TestCAFileErrorsNameKeyPathAndCause(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	underFile := filepath.Join(notPEM, "ca.pem") // stat: not a directory
	validate := func(path string) error {
		c := DefaultConfig()
		c.NameServers = []string{"127.0.0.1:9876"}
		c.TLS.Enabled, c.TLS.CAFile = true, path
		return c.Validate()
	}
	if err := validate(missing); err == nil || !strings.Contains(err.Error(), `tls.caFile "`+missing+`": no such file or directory`) {
		t.Errorf("missing caFile: %v; want the key, the path and no such file", err)
	}
	if err := validate(dir); err == nil || !strings.Contains(err.Error(), `tls.caFile "`+dir+`" is a directory, not a file`) {
		t.Errorf("caFile a directory: %v", err)
	}
	if err := validate(underFile); err != nil {
		t.Errorf("caFile with another stat error: %v; want it left to the start (as app.Root.CheckFiles leaves it)", err)
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
