// Package handshake counts and logs the connections a listener closes
// before serving them because their handshake failed (the transport the
// port refuses, TLS, a timeout, the wrong protocol after TLS), as
// rmqproxy_handshake_failures_total{listener,reason}, for every adapter
// that accepts connections (the gRPC port, the admin API). Adapters never
// import each other; this package is how they share the counter, the
// reason set and the classification of TLS errors, and, for an HTTP
// server, a listener that runs the TLS handshakes itself ([Listener]), so
// that counting them never depends on what net/http logs.
//
// The reasons are a fixed set ([Reason]), so the metric's cardinality is
// listeners times reasons. Each reason is logged at Info at most once per
// interval, with the count of the failures not logged since, so that a
// scanner or a misconfigured fleet cannot flood the log.
package handshake

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
)

// Reason says why a connection was closed before it was served: the reason
// label of rmqproxy_handshake_failures_total.
type Reason uint8

const (
	// PlaintextOnTLSPort: a plaintext connection on a TLS-only port
	// (grpc.tls.mode enforcing, admin.tls.enabled).
	PlaintextOnTLSPort Reason = iota
	// TLSOnPlaintextPort: a TLS ClientHello on a plaintext-only port.
	TLSOnPlaintextPort
	// Timeout: the handshake timeout passed before the first byte,
	// before the TLS handshake ended or before the HTTP/2 preface came.
	Timeout
	// NoALPN: a TLS client that does not offer h2 by ALPN (gRPC).
	NoALPN
	// ClientCertificate: a client certificate missing (clientAuth
	// require) or not verified by the client CAs.
	ClientCertificate
	// TLSVersion: a client that offers only TLS versions below the
	// listener's minVersion.
	TLSVersion
	// TLS: any other TLS handshake failure (no common cipher suite, a
	// malformed record, a client that hung up).
	TLS
	// NotHTTP2: the first bytes after the transport's handshake are not
	// the HTTP/2 client preface (an HTTP/1.1 request to the gRPC port).
	NotHTTP2
	// NumReasons is the number of reasons.
	NumReasons
)

var reasonNames = [NumReasons]string{
	PlaintextOnTLSPort: "plaintext_on_tls_port",
	TLSOnPlaintextPort: "tls_on_plaintext_port",
	Timeout:            "timeout",
	NoALPN:             "no_alpn_h2",
	ClientCertificate:  "client_certificate",
	TLSVersion:         "tls_version",
	TLS:                "tls_error",
	NotHTTP2:           "not_http2",
}

// String returns the reason's label value, such as "tls_version".
func (r Reason) String() string { return reasonNames[r] }

// LogEvery is the least time between two log lines of one reason: a
// scanner or a misconfigured fleet makes one line per reason per
// interval, with the count of those not logged.
const LogEvery = 10 * time.Second

// Failures counts the connections a listener's handshake refused, by
// reason, and logs them at Info, at most one line per reason per interval.
// Its methods are safe for concurrent use.
type Failures struct {
	counts [NumReasons]atomic.Uint64
	log    *slog.Logger
	every  time.Duration

	mu         sync.Mutex
	logged     [NumReasons]time.Time // when a line of each reason was last logged
	suppressed [NumReasons]uint64    // failures of each reason not logged since
}

// NewFailures returns counters that log to log every [LogEvery].
func NewFailures(log *slog.Logger) *Failures {
	return &Failures{log: log, every: LogEvery}
}

// SetLogInterval changes the least time between two log lines of one
// reason; call it before the first Record.
func (h *Failures) SetLogInterval(d time.Duration) { h.every = d }

// Count returns the failures of reason r so far.
func (h *Failures) Count(r Reason) uint64 { return h.counts[r].Load() }

// Record counts a connection from remote (its address) refused for r (err
// says how) and logs it unless a line of that reason was logged within the
// interval.
func (h *Failures) Record(remote string, r Reason, err error) {
	// Counted last: a failure the counter shows has been logged (or
	// suppressed) already.
	defer h.counts[r].Add(1)
	now := time.Now()
	h.mu.Lock()
	if !h.logged[r].IsZero() && now.Sub(h.logged[r]) < h.every {
		h.suppressed[r]++
		h.mu.Unlock()
		return
	}
	h.logged[r] = now
	suppressed := h.suppressed[r]
	h.suppressed[r] = 0
	h.mu.Unlock()
	h.log.LogAttrs(context.Background(), slog.LevelInfo, "connection closed during its handshake",
		slog.String("remote_addr", remote), slog.String("reason", r.String()), slog.Any("error", err),
		slog.Uint64("not_logged_since_last", suppressed))
}

// Observe registers rmqproxy_handshake_failures_total for listener, read
// from the counts when metrics are collected. A reason is reported from
// its first failure on.
func (h *Failures) Observe(meter metric.Meter, listener string) error {
	c, err := meter.Int64ObservableCounter(observe.MetricHandshakeFailures,
		metric.WithDescription("Connections closed before they were served because their handshake failed, by listener and reason: the transport the port refuses (plaintext_on_tls_port, tls_on_plaintext_port), timeout, no_alpn_h2, client_certificate, tls_version (the client offers only TLS versions below the listener's minVersion), tls_error, not_http2."))
	if err != nil {
		return err
	}
	var sets [NumReasons]metric.ObserveOption
	for r := range NumReasons {
		sets[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String(observe.LabelListener, listener),
			attribute.String(observe.LabelReason, r.String())))
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for r := range NumReasons {
			if n := h.counts[r].Load(); n > 0 {
				o.ObserveInt64(c, int64(n), sets[r])
			}
		}
		return nil
	}, c)
	return err
}

// ClassifyTLSError returns the reason of a failed server-side TLS
// handshake (after the ClientHello's first byte was read).
func ClassifyTLSError(err error) Reason {
	var ne net.Error
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return Timeout
	case errors.As(err, &verify):
		return ClientCertificate
	}
	return classify(err.Error())
}

// classify returns the reason of a TLS handshake error from its message:
// crypto/tls types none of these.
func classify(msg string) Reason {
	switch {
	case strings.Contains(msg, "client didn't provide a certificate"), strings.Contains(msg, "failed to verify certificate"):
		return ClientCertificate
	// The version check of the ClientHello (the client offers no
	// version from the server's MinVersion up).
	case strings.Contains(msg, "client offered only unsupported versions"):
		return TLSVersion
	// A client offering other protocols only (crypto/tls refuses it), or
	// none at all, or http/1.1 only (grpc-go's ALPN check refuses those).
	case strings.Contains(msg, "unsupported application protocols"), strings.Contains(msg, "missing selected ALPN property"):
		return NoALPN
	}
	return TLS
}
