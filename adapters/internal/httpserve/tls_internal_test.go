package httpserve

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/handshake"
	"github.com/rmqproxy/rmqproxy/test/testenv/certtest"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestHTTPSFailuresAreCountedWhateverNetHTTPLogs: with Options.TLS and
// Handshakes, the failed TLS handshakes are counted by reason although
// net/http's ErrorLog goes nowhere (as if a Go release worded its lines
// otherwise), and a handshaken client is served with r.TLS set.
func TestHTTPSFailuresAreCountedWhateverNetHTTPLogs(t *testing.T) {
	cert := certtest.SelfSigned(t, certtest.Spec{Serial: 1, Hosts: []string{"127.0.0.1"}})
	prev := newErrorLog
	newErrorLog = func(*slog.Logger) *log.Logger { return log.New(io.Discard, "", 0) }
	defer func() { newErrorLog = prev }()

	failures := handshake.NewFailures(slog.New(slog.DiscardHandler))
	s := New(Options{Module: "test", Setting: "test.address", Address: "127.0.0.1:0", Name: "test server",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.TLS == nil || !r.TLS.HandshakeComplete {
				http.Error(w, "no TLS state", http.StatusInternalServerError)
			}
		}),
		TLS:              &tls.Config{Certificates: []tls.Certificate{cert.TLS()}, MinVersion: tls.VersionTLS13},
		HandshakeTimeout: 10 * time.Second, Handshakes: failures, ReadHeaderTimeout: 10 * time.Second})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Stop(context.WithoutCancel(t.Context())); err != nil {
			t.Error(err)
		}
	}()
	addr := s.Addr().String()

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a TLS client: %s", resp.Status)
	}
	tr.TLSClientConfig.MaxVersion = tls.VersionTLS12
	if _, err := c.Get("https://" + addr + "/"); err == nil {
		t.Fatal("a TLS 1.2 client of a TLS 1.3 server was served")
	}
	resp, err = http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP: %s, want 400", resp.Status)
	}
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "tls_version and plaintext_on_tls_port counted", func() bool {
		return failures.Count(handshake.TLSVersion) == 1 && failures.Count(handshake.PlaintextOnTLSPort) == 1
	})
}
