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
