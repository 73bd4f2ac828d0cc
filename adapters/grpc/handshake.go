package grpc

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

// handshakeReason says why a connection was closed before gRPC served it:
// the reason label of rmqproxy_handshake_failures_total, a fixed set.
type handshakeReason uint8

const (
	// reasonPlaintextOnTLSPort: a plaintext connection on an enforcing
	// port.
	reasonPlaintextOnTLSPort handshakeReason = iota
	// reasonTLSOnPlaintextPort: a TLS ClientHello on a disabled port.
	reasonTLSOnPlaintextPort
	// reasonTimeout: grpc.handshakeTimeout passed before the first byte,
	// before the TLS handshake ended or before the HTTP/2 preface came.
	reasonTimeout
	// reasonNoALPN: a TLS client that does not offer h2 by ALPN.
	reasonNoALPN
	// reasonClientCertificate: under grpc.tls.clientAuth, a client
	// certificate missing (require) or not verified by clientCAFile.
	reasonClientCertificate
	// reasonTLS: any other TLS handshake failure (no common version or
	// cipher suite, a malformed record, a client that hung up).
	reasonTLS
	// reasonNotHTTP2: the first bytes after the transport's handshake are
	// not the HTTP/2 client preface (an HTTP/1.1 request).
	reasonNotHTTP2
	numHandshakeReasons
)

var handshakeReasonNames = [numHandshakeReasons]string{
	reasonPlaintextOnTLSPort: "plaintext_on_tls_port",
	reasonTLSOnPlaintextPort: "tls_on_plaintext_port",
	reasonTimeout:            "timeout",
	reasonNoALPN:             "no_alpn_h2",
	reasonClientCertificate:  "client_certificate",
	reasonTLS:                "tls_error",
	reasonNotHTTP2:           "not_http2",
}

func (r handshakeReason) String() string { return handshakeReasonNames[r] }

// handshakeLogEvery is the least time between two log lines of one reason:
// a scanner or a misconfigured fleet makes one line per reason per
// interval, with the count of those not logged.
const handshakeLogEvery = 10 * time.Second

// handshakeFailures counts the connections the handshake refused, by
// reason, and logs them at Info, at most one line per reason per interval.
type handshakeFailures struct {
	counts [numHandshakeReasons]atomic.Uint64
	log    *slog.Logger
	every  time.Duration

	mu         sync.Mutex
	logged     [numHandshakeReasons]time.Time // when a line of each reason was last logged
	suppressed [numHandshakeReasons]uint64    // failures of each reason not logged since
}

func newHandshakeFailures(log *slog.Logger) *handshakeFailures {
	return &handshakeFailures{log: log, every: handshakeLogEvery}
}

// count returns the failures of reason r so far.
func (h *handshakeFailures) count(r handshakeReason) uint64 { return h.counts[r].Load() }

// record counts a connection from remote refused for r (err says how) and
// logs it unless a line of that reason was logged within the interval.
func (h *handshakeFailures) record(remote net.Addr, r handshakeReason, err error) {
	h.counts[r].Add(1)
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
	addr := ""
	if remote != nil {
		addr = remote.String()
	}
	h.log.LogAttrs(context.Background(), slog.LevelInfo, "connection closed during its handshake",
		slog.String("remote_addr", addr), slog.String("reason", r.String()), slog.Any("error", err),
		slog.Uint64("not_logged_since_last", suppressed))
}

// observe registers rmqproxy_handshake_failures_total, read from the
// counts when metrics are collected.
func (h *handshakeFailures) observe(meter metric.Meter, listener string) error {
	c, err := meter.Int64ObservableCounter(observe.MetricHandshakeFailures,
		metric.WithDescription("Connections closed before they were served because their handshake failed, by listener and reason: the transport the port refuses (plaintext_on_tls_port, tls_on_plaintext_port), timeout, no_alpn_h2, client_certificate, tls_error, not_http2."))
	if err != nil {
		return err
	}
	var sets [numHandshakeReasons]metric.ObserveOption
	for r := range numHandshakeReasons {
		sets[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String(observe.LabelListener, listener),
			attribute.String(observe.LabelReason, r.String())))
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for r := range numHandshakeReasons {
			if n := h.counts[r].Load(); n > 0 {
				o.ObserveInt64(c, int64(n), sets[r])
			}
		}
		return nil
	}, c)
	return err
}

// classifyTLSError returns the reason of a failed TLS handshake (after the
// ClientHello's first byte was read).
func classifyTLSError(err error) handshakeReason {
	var ne net.Error
	var verify *tls.CertificateVerificationError
	msg := err.Error()
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return reasonTimeout
	case errors.As(err, &verify), strings.Contains(msg, "client didn't provide a certificate"):
		return reasonClientCertificate
	// A client offering other protocols only (crypto/tls refuses it), or
	// none at all, or http/1.1 only (grpc-go's ALPN check refuses those).
	case strings.Contains(msg, "unsupported application protocols"), strings.Contains(msg, "missing selected ALPN property"):
		return reasonNoALPN
	}
	return reasonTLS
}
