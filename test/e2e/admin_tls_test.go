package e2e_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// servedSerial returns the serial number of the certificate addr serves,
// verified against roots.
func servedSerial(addr string, roots *x509.CertPool) (int64, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestAdminAPIOverTLS: with admin.tls the admin API (and the topic and
// group commands) speak HTTPS only: plain HTTP is refused, the CLI needs
// the CA (or --admin.insecureSkipVerify), a rotated certificate is served
// without restart; an address beyond loopback is refused at start unless
// auth.enabled and admin.tls.enabled are both on; every admin call is
// authorized and audited, allowed ones too.
func TestAdminAPIOverTLS(t *testing.T) {
	testenv.LocalOnly(t, "the admin API's transport does not depend on the mode")
	s := newSecured(t)
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key"), filepath.Join(dir, "ca.pem")
	ca := testenv.NewCA(t)
	ca.WriteServerCert(t, 101, certFile, keyFile)
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsFlags := []string{"--admin.tls.enabled", "--admin.tls.certFile=" + certFile, "--admin.tls.keyFile=" + keyFile}

	// Beyond loopback: refused at start, naming what is missing. (Nothing
	// binds: the check runs before the listener.)
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"no auth, no TLS", nil, "needs auth.enabled true"},
		{"auth without TLS", s.flags, "admin.tls.enabled true"},
		{"TLS without auth", tlsFlags, "needs auth.enabled true"},
	} {
		c := testenv.StartChildNoWait(t, t.TempDir(), append([]string{"--admin.address=0.0.0.0:0"}, tc.flags...)...)
		code, out := c.ExitedWith(t)
		if code == 0 || !strings.Contains(out, "listens beyond loopback") || !strings.Contains(out, tc.want) {
			t.Fatalf("%s: admin.address 0.0.0.0:0 gave exit %d, want a refusal naming %q:\n%s", tc.name, code, tc.want, out)
		}
	}

	c := s.start(t, append(tlsFlags, "--admin.tls.reloadInterval=50ms")...)
	base := "https://" + c.AdminAddr
	t.Setenv("RMQPROXY_ADMIN_SECRET_KEY", adminSecret)
	signed := []string{"--admin.address=" + base, "--admin.accessKey=admin"}
	if code, out := testenv.CLI(t, append([]string{"topic", "create", "tls-topic", "--admin.caFile=" + caFile}, signed...)...); code != 0 {
		t.Fatalf("topic create over HTTPS: exit %d: %s", code, out)
	}
	if code, out := testenv.CLI(t, append([]string{"topic", "list", "--admin.insecureSkipVerify"}, signed...)...); code != 0 || !strings.Contains(out, "tls-topic") {
		t.Fatalf("topic list with --admin.insecureSkipVerify: exit %d: %s", code, out)
	}
	if code, out := testenv.CLI(t, append([]string{"topic", "list"}, signed...)...); code == 0 || !strings.Contains(out, "--admin.caFile") {
		t.Fatalf("topic list without the CA: exit %d, want a refusal that names --admin.caFile: %s", code, out)
	}
	// A bare HOST:PORT is HTTPS when the configuration file says
	// admin.tls.enabled; the CLI needs neither the server's certificate
	// and key nor its other settings (auth.enabled without a database).
	cfgFile := filepath.Join(dir, "cli.yaml")
	if err := os.WriteFile(cfgFile, []byte("admin:\n  tls:\n    enabled: true\nauth:\n  enabled: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := testenv.CLI(t, "topic", "describe", "tls-topic", "--config="+cfgFile, "--admin.address="+c.AdminAddr, "--admin.accessKey=admin", "--admin.caFile="+caFile); code != 0 || !strings.Contains(out, "tls-topic") {
		t.Fatalf("topic describe with --config (admin.tls.enabled) and a bare address: exit %d: %s", code, out)
	}
	// Or when the environment does (RMQPROXY_ADMIN_TLS_ENABLED).
	t.Setenv("RMQPROXY_ADMIN_TLS_ENABLED", "true")
	t.Setenv("RMQPROXY_ADMIN_ADDRESS", c.AdminAddr)
	if code, out := testenv.CLI(t, "topic", "describe", "tls-topic", "--admin.accessKey=admin", "--admin.caFile="+caFile); code != 0 || !strings.Contains(out, "tls-topic") {
		t.Fatalf("topic describe with RMQPROXY_ADMIN_TLS_ENABLED and RMQPROXY_ADMIN_ADDRESS: exit %d: %s", code, out)
	}
	os.Unsetenv("RMQPROXY_ADMIN_TLS_ENABLED") // restored by t.Setenv's cleanup
	os.Unsetenv("RMQPROXY_ADMIN_ADDRESS")
	// Plain HTTP: refused by the server, and the CLI says why.
	if code, out := testenv.CLI(t, "topic", "list", "--admin.address=http://"+c.AdminAddr, "--admin.accessKey=admin"); code == 0 || !strings.Contains(out, "serves HTTPS only") {
		t.Fatalf("topic list over plain HTTP: exit %d: %s", code, out)
	}
	resp, err := http.Get("http://" + c.AdminAddr + "/v1/topics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "tls-topic") {
		t.Fatalf("plain HTTP request: %s %q", resp.Status, body)
	}

	// Rotation: the new certificate is served without restart, and the
	// CLI keeps working.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM)
	if n, err := servedSerial(c.AdminAddr, roots); err != nil || n != 101 {
		t.Fatalf("served serial %d (%v), want 101", n, err)
	}
	ca.WriteServerCert(t, 102, certFile, keyFile)
	testenv.WaitFor(t, 20*time.Second, func() error {
		n, err := servedSerial(c.AdminAddr, roots)
		if err == nil && n != 102 {
			err = fmt.Errorf("serial %d served, want 102", n)
		}
		return err
	})
	if code, out := testenv.CLI(t, append([]string{"topic", "delete", "tls-topic", "--admin.caFile=" + caFile}, signed...)...); code != 0 {
		t.Fatalf("topic delete after rotation: exit %d: %s", code, out)
	}
	if !strings.Contains(c.Output(), `"TLS certificate reloaded"`) {
		t.Fatalf("no reload in the log:\n%s", c.Output())
	}

	// Every admin call was authorized and audited, allowed ones too (with
	// the resource and action it needed); the plain-HTTP ones never
	// reached the API.
	testenv.WaitFor(t, 10*time.Second, func() error {
		evs, err := s.store.QueryAudit(t.Context(), domain.AuditQuery{Principal: "admin", Category: domain.AuditAuthz, Limit: 1000})
		if err != nil {
			return err
		}
		seen := map[string]int{}
		for _, e := range evs {
			if e.Protocol == "admin-http" {
				seen[e.Decision+" "+e.Operation+" "+e.Resource+" "+e.Actions+" "+e.Reason]++
				if len(e.RequestID) != 16 || !e.SourceIP.IsLoopback() {
					return fmt.Errorf("admin event without a request id or source address: %+v", e)
				}
			}
		}
		want := map[string]int{
			"ALLOW admin POST /v1/topics Topic:tls-topic Create super_user":             1,
			"ALLOW admin GET /v1/topics Cluster: List super_user":                       1,
			"ALLOW admin DELETE /v1/topics/tls-topic Topic:tls-topic Delete super_user": 1,
			"ALLOW admin GET /v1/topics/tls-topic Topic:tls-topic Get super_user":       2, // --config, then the environment
		}
		for k, n := range want {
			if seen[k] != n {
				return fmt.Errorf("audit: %d events %q, want %d; all: %v", seen[k], k, n, seen)
			}
		}
		if len(seen) != len(want) {
			return fmt.Errorf("audit: unexpected admin events: %v", seen)
		}
		return nil
	})
	// And what became of the calls that change something.
	testenv.WaitFor(t, 10*time.Second, func() error {
		evs, err := s.store.QueryAudit(t.Context(), domain.AuditQuery{Principal: "admin", Category: domain.AuditAdmin, Limit: 1000})
		if err != nil {
			return err
		}
		seen := map[string]int{}
		for _, e := range evs {
			if e.Protocol == "admin-http" {
				seen[e.Decision+" "+e.Operation+" "+e.Resource+" "+e.Reason]++
			}
		}
		want := map[string]int{
			"ALLOW admin POST /v1/topics Topic:tls-topic http_201":             1,
			"ALLOW admin DELETE /v1/topics/tls-topic Topic:tls-topic http_204": 1,
		}
		if !maps.Equal(seen, want) {
			return fmt.Errorf("audit: outcome events %v, want %v", seen, want)
		}
		return nil
	})
}
