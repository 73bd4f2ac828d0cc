package handshake

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
)

// TestHandshakeFailureLogIsRateLimited: within the interval a reason is
// logged once; the next line after it says how many were not logged.
func TestHandshakeFailureLogIsRateLimited(t *testing.T) {
	var logs logbuf.Buffer
	h := NewFailures(slog.New(slog.NewTextHandler(&logs, nil)))
	const remote = "192.0.2.1:4242"
	for range 1000 {
		h.Record(remote, Timeout, os.ErrDeadlineExceeded)
	}
	h.Record(remote, NoALPN, errors.New("no h2"))
	if out := logs.String(); strings.Count(out, "reason=timeout") != 1 || strings.Count(out, "reason=no_alpn_h2") != 1 ||
		!strings.Contains(out, "remote_addr=192.0.2.1:4242") {
		t.Fatalf("1000 timeouts and one ALPN failure within the interval are not logged once per reason:\n%s", out)
	}
	if n := h.Count(Timeout); n != 1000 {
		t.Fatalf("counted %d timeouts, want 1000", n)
	}
	// The interval has passed.
	h.mu.Lock()
	h.logged[Timeout] = h.logged[Timeout].Add(-h.every)
	h.mu.Unlock()
	h.Record(remote, Timeout, os.ErrDeadlineExceeded)
	if out := logs.String(); strings.Count(out, "reason=timeout") != 2 || !strings.Contains(out, "not_logged_since_last=999") {
		t.Fatalf("after the interval, the next timeout is not logged with the 999 not logged:\n%s", out)
	}
}

// TestParseHTTPServerLog: the lines net/http logs about failed TLS
// handshakes give the remote address and a reason from the fixed set; a
// connection closed before it sent anything and lines about anything else
// are not failures.
func TestParseHTTPServerLog(t *testing.T) {
	for _, tc := range []struct {
		line   string
		remote string
		reason Reason
		ok     bool
	}{
		{"http: TLS handshake error from 127.0.0.1:5000: client sent an HTTP request to an HTTPS server", "127.0.0.1:5000", PlaintextOnTLSPort, true},
		{"http: TLS handshake error from [::1]:5000: tls: client offered only unsupported versions: [303 302]", "[::1]:5000", TLSVersion, true},
		{"http: TLS handshake error from 10.0.0.1:1: read tcp 127.0.0.1:8082->10.0.0.1:1: i/o timeout", "10.0.0.1:1", Timeout, true},
		{"http: TLS handshake error from 10.0.0.1:1: tls: client didn't provide a certificate", "10.0.0.1:1", ClientCertificate, true},
		{"http: TLS handshake error from 10.0.0.1:1: tls: first record does not look like a TLS handshake", "10.0.0.1:1", TLS, true},
		{"http: TLS handshake error from 10.0.0.1:1: tls: client requested unsupported application protocols ([h2])", "10.0.0.1:1", NoALPN, true},
		{"http: TLS handshake error from 10.0.0.1:1: EOF", "", 0, false},
		{"http: Accept error: accept tcp: too many open files; retrying in 5ms", "", 0, false},
		{"http: panic serving 10.0.0.1:1: boom", "", 0, false},
	} {
		t.Run(tc.line, func(t *testing.T) {
			remote, r, msg, ok := ParseHTTPServerLog(tc.line + "\n")
			if ok != tc.ok || remote != tc.remote || r != tc.reason {
				t.Fatalf("got %q, %s, %v; want %q, %s, %v", remote, r, ok, tc.remote, tc.reason, tc.ok)
			}
			if ok && (msg == "" || !strings.HasSuffix(tc.line, msg)) {
				t.Errorf("message %q is not the line's reason", msg)
			}
		})
	}
}
