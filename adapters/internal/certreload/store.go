// Package certreload serves a TLS certificate (and an optional client CA
// pool) read from files and reloads them when the files change, for every
// adapter that terminates TLS (the gRPC port, the admin API). Adapters never
// import each other; this package is how they share it.
//
// New handshakes get the files last loaded; existing connections keep
// theirs. A change that does not load (a key that does not match, an
// unparsable or expired certificate, one whose key no configured cipher
// suite goes with, half-written files, a file gone or unreadable) is
// logged and counted, and the previous set stays; both outcomes are
// counted in [observe.MetricTLSCertificateReloads].
//
// A certificate and key renewed as two files are written one after the
// other, so a look between the two writes sees a certificate with the old
// key; a rotation that deletes a file and writes it anew (or makes a
// symbolic link to their directory again) shows a file missing. A changed
// set that does not load, or a file that cannot be read, is therefore not
// refused at once: it is looked at again at every further change of the
// files until it loads or, at most [DefaultSettle] (see [Store.SetSettle])
// after the first look, it is refused (counted and logged once). A set
// refused because its certificate was not valid yet is loaded at the first
// look after its NotBefore, though the files do not change again.
//
// The certificate served is watched for its expiry too: a Warn line once
// per certificate when it enters the warning window (see
// [Store.WarnBefore]), an Error line once when it has expired, and the
// gauge [observe.MetricTLSCertificateExpiry] of its NotAfter.
package certreload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/adapters/internal/tlspolicy"
)

// Store holds the certificate served and the client CA pool. Use [New],
// then [Store.Load] once before serving.
type Store struct {
	certFile, keyFile, caFile string
	clientAuth                tls.ClientAuthType
	nextProtos                []string
	// minVersion is the lowest TLS version accepted (SetMinVersion; 0:
	// TLS 1.2), cipherSuites the TLS 1.2 suites (SetCipherSuites; nil:
	// crypto/tls's defaults).
	minVersion   uint16
	cipherSuites []uint16
	// suitesSetting names the setting of cipherSuites in errors.
	suitesSetting string

	cert     atomic.Pointer[tls.Certificate]
	clientCA atomic.Pointer[x509.CertPool]
	sum      [32]byte // of the files last loaded (or last refused); Load and Watch only
	// unreadable is why the files could not be read at Watch's last look
	// ("" when they could), so that one cause is reported once; Watch only.
	unreadable string
	reloads    atomic.Uint64
	failures   atomic.Uint64
	// settle is how long a changed set that does not load may take to
	// settle (SetSettle); settling says one is waited for, since
	// settleStart, settleGone that the wait began with files that could
	// not be read and no other set has been seen since (Watch only).
	settle      time.Duration
	settling    bool
	settleGone  bool
	settleStart time.Time

	// warnBefore is the expiry warning window (0: no warning); warned
	// and expired are the certificates (DER) already reported as expiring
	// and as expired (CheckExpiry only: after the first Load, then by
	// Watch).
	warnBefore      time.Duration
	warned, expired []byte

	// validFrom is the NotBefore of the certificate of the files last
	// refused because it was not valid yet (zero: none): Watch loads them
	// once it has passed, though they do not change again.
	validFrom time.Time
}

// notYetValidError is Load's error for a certificate whose NotBefore has
// not come yet.
type notYetValidError struct {
	err       error
	notBefore time.Time
}

func (e *notYetValidError) Error() string { return e.err.Error() }

// New returns a store of certFile and keyFile (PEM), with the client CAs of
// caFile (PEM bundle; empty: none) verified as clientAuth says. nextProtos
// are the ALPN protocols offered ("h2" for gRPC, "http/1.1" for HTTP).
func New(certFile, keyFile, caFile string, clientAuth tls.ClientAuthType, nextProtos []string) *Store {
	return &Store{certFile: certFile, keyFile: keyFile, caFile: caFile, clientAuth: clientAuth, nextProtos: nextProtos,
		settle: DefaultSettle}
}

// DefaultSettle is how long, at most, a changed set of files that does not
// load is waited for to settle (the key written after the certificate)
// before it is refused.
const DefaultSettle = 2 * time.Second

// settlePoll is how often [Store.Watch] looks at the files while a changed
// set settles (its interval, when shorter).
const settlePoll = 50 * time.Millisecond

// SetSettle makes a changed set of files that does not load be looked at
// again, at every further change, for up to d before it is refused (0:
// refused at the first look). Call it before Watch.
func (c *Store) SetSettle(d time.Duration) { c.settle = d }

// WarnBefore makes [Store.CheckExpiry] warn about a certificate that
// expires within d (0: never). Call it before serving.
func (c *Store) WarnBefore(d time.Duration) { c.warnBefore = d }

// SetMinVersion makes the store refuse handshakes below TLS version v (a
// crypto/tls constant such as tls.VersionTLS13; 0: TLS 1.2). Call it
// before serving.
func (c *Store) SetMinVersion(v uint16) { c.minVersion = v }

// SetCipherSuites limits the TLS 1.2 cipher suites to ids (nil: crypto/tls's
// defaults), the value of the setting named setting (such as
// "grpc.tls.cipherSuites"). From then on, Load refuses a certificate whose
// key no suite of ids goes with. Call it before the first Load.
func (c *Store) SetCipherSuites(setting string, ids []uint16) {
	c.suitesSetting, c.cipherSuites = setting, ids
}

// MinVersion returns the lowest TLS version the store accepts.
func (c *Store) MinVersion() uint16 {
	if c.minVersion == 0 {
		return tls.VersionTLS12
	}
	return c.minVersion
}

// CertFile returns the certificate file served.
func (c *Store) CertFile() string { return c.certFile }

// Reloads counts the changes loaded by [Store.Watch].
func (c *Store) Reloads() uint64 { return c.reloads.Load() }

// Failures counts the changes [Store.Watch] refused.
func (c *Store) Failures() uint64 { return c.failures.Load() }

// Leaf returns the certificate served, or nil before the first Load.
func (c *Store) Leaf() *x509.Certificate {
	if cert := c.cert.Load(); cert != nil {
		return cert.Leaf
	}
	return nil
}

func (c *Store) fingerprint() ([32]byte, error) {
	var all []byte
	for _, name := range []string{c.certFile, c.keyFile, c.caFile} {
		if name == "" {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return [32]byte{}, err
		}
		all = append(append(all, b...), 0)
	}
	return sha256.Sum256(all), nil
}

// Load reads the files and, when they form a usable set valid at now,
// swaps them in.
func (c *Store) Load(now time.Time) error {
	sum, err := c.fingerprint()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("certificate %s: %w", c.certFile, err)
	}
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		err := fmt.Errorf("certificate %s is valid from %s to %s, not now", c.certFile, leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
		if now.Before(leaf.NotBefore) {
			return &notYetValidError{err: err, notBefore: leaf.NotBefore}
		}
		return err
	}
	if err := tlspolicy.CheckCertificate(c.cipherSuites, leaf); err != nil {
		return fmt.Errorf("certificate %s: %s %w", c.certFile, c.suitesSetting, err)
	}
	cert.Leaf = leaf
	var pool *x509.CertPool
	if c.caFile != "" {
		pemData, err := os.ReadFile(c.caFile)
		if err != nil {
			return err
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return fmt.Errorf("client CA file %s holds no PEM certificate", c.caFile)
		}
	}
	c.cert.Store(&cert)
	if pool != nil {
		c.clientCA.Store(pool)
	}
	c.sum = sum
	return nil
}

// Config returns the TLS configuration of one handshake; use it as
// tls.Config.GetConfigForClient.
func (c *Store) Config(*tls.ClientHelloInfo) (*tls.Config, error) {
	return &tls.Config{
		Certificates: []tls.Certificate{*c.cert.Load()},
		ClientAuth:   c.clientAuth,
		ClientCAs:    c.clientCA.Load(),
		MinVersion:   c.MinVersion(),
		CipherSuites: c.cipherSuites,
		NextProtos:   c.nextProtos,
		// Full-size TLS records from the first byte: the small records Go
		// starts with after every idle second only cost more records (and
		// encryption calls) per response.
		DynamicRecordSizingDisabled: true,
	}, nil
}

// ServerConfig returns a server configuration that asks the store at every
// handshake.
func (c *Store) ServerConfig() *tls.Config {
	return &tls.Config{GetConfigForClient: c.Config, MinVersion: c.MinVersion(), NextProtos: c.nextProtos}
}

// CheckExpiry logs, once per certificate, a Warn line when the certificate
// served expires within the window of [Store.WarnBefore] and an Error line
// when it has expired (clients refuse it from then on). Call it after the
// first Load; [Store.Watch] calls it at every tick.
func (c *Store) CheckExpiry(ctx context.Context, log *slog.Logger, now time.Time) {
	leaf := c.Leaf()
	if leaf == nil || c.warnBefore <= 0 {
		return
	}
	left := leaf.NotAfter.Sub(now)
	attrs := []slog.Attr{slog.String("cert_file", c.certFile), slog.String("subject", leaf.Subject.String()),
		slog.Time("not_after", leaf.NotAfter)}
	switch {
	case left <= 0:
		if !bytes.Equal(c.expired, leaf.Raw) {
			c.expired = leaf.Raw
			log.LogAttrs(ctx, slog.LevelError, "TLS certificate in use has expired; clients refuse it: replace the certificate and key files", attrs...)
		}
	case left <= c.warnBefore:
		if !bytes.Equal(c.warned, leaf.Raw) {
			c.warned = leaf.Raw
			log.LogAttrs(ctx, slog.LevelWarn, "TLS certificate in use expires soon: replace the certificate and key files",
				append(attrs, slog.Duration("expires_in", left.Round(time.Second)))...)
		}
	}
}

// Observe reports, with the label listener, the NotAfter of the
// certificate served, in seconds since the epoch, as the gauge
// [observe.MetricTLSCertificateExpiry], and the changed files
// [Store.Watch] loaded and refused as the counter
// [observe.MetricTLSCertificateReloads] (label result: ok, failed). Both
// are read when metrics are collected, so a reload shows at the next
// collection.
func (c *Store) Observe(meter metric.Meter, listener string) error {
	g, err := meter.Int64ObservableGauge(observe.MetricTLSCertificateExpiry,
		metric.WithDescription("NotAfter of the TLS certificate a listener serves (new handshakes), in seconds since the epoch; follows reloads."),
		metric.WithUnit("s"))
	if err != nil {
		return err
	}
	reloads, err := meter.Int64ObservableCounter(observe.MetricTLSCertificateReloads,
		metric.WithDescription("Changes of a listener's TLS certificate, key or client CA files: loaded and served to new handshakes (result ok), or refused, the previous set kept (result failed: a key that does not match, an unparsable or expired certificate, files gone or unreadable)."))
	if err != nil {
		return err
	}
	attrs := func(kv ...attribute.KeyValue) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(append(kv, attribute.String(observe.LabelListener, listener))...))
	}
	set, ok, failed := attrs(), attrs(attribute.String(observe.LabelResult, "ok")), attrs(attribute.String(observe.LabelResult, "failed"))
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if leaf := c.Leaf(); leaf != nil {
			o.ObserveInt64(g, leaf.NotAfter.Unix(), set)
		}
		o.ObserveInt64(reloads, int64(c.reloads.Load()), ok)
		o.ObserveInt64(reloads, int64(c.failures.Load()), failed)
		return nil
	}, g, reloads)
	return err
}

// Watch reloads changed files every interval until ctx ends, and checks
// the expiry of the certificate served (see [Store.CheckExpiry]). While a
// changed set that does not load, or a file that cannot be read, settles,
// it looks at the files every 50 ms (or interval, when shorter), to see
// the next change soon.
func (c *Store) Watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	poll := time.NewTimer(interval)
	poll.Stop() // started by a look that finds a set settling; no stale tick since Go 1.23
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-poll.C:
		}
		poll.Stop()
		if c.check(ctx, log) {
			poll.Reset(min(interval, settlePoll))
		}
		c.CheckExpiry(ctx, log, time.Now())
	}
}

// check reloads the files when they changed since the last look; Watch
// calls it every interval. It reports whether a changed set that does not
// load yet, or a file that cannot be read yet, is settling (then Watch
// looks again soon).
func (c *Store) check(ctx context.Context, log *slog.Logger) (settling bool) {
	sum, err := c.fingerprint()
	if err != nil {
		// A file gone or unreadable (permissions, a rotation that deleted
		// it) is a change that does not load. A rotation that deletes a
		// file and writes it anew (mv-based tools, a symbolic link made
		// again) is seen missing for a moment, so it settles like a half
		// written pair; then it is reported once per cause, not at every
		// tick, rather than never (the previous certificate would be served
		// silently until it expired).
		msg := err.Error()
		if msg == c.unreadable {
			return false // reported already
		}
		if !c.settling && c.settle > 0 {
			c.settling, c.settleGone, c.settleStart = true, true, time.Now()
			log.LogAttrs(ctx, slog.LevelDebug, "TLS files cannot be read; waiting for them to settle",
				slog.String("cert_file", c.certFile), slog.Duration("settle", c.settle), slog.Any("error", err))
			return true
		}
		if c.settling && time.Since(c.settleStart) < c.settle {
			return true // still gone: wait on
		}
		c.settling, c.settleGone = false, false
		c.unreadable = msg
		c.failures.Add(1)
		log.LogAttrs(ctx, slog.LevelError, "TLS files cannot be read; still serving the previous certificate",
			slog.String("cert_file", c.certFile), slog.Any("error", err))
		return false
	}
	c.unreadable = ""
	if sum == c.sum && !c.settling && !c.validFrom.IsZero() && !time.Now().Before(c.validFrom) {
		// The files refused because their certificate was not valid yet
		// are now: load them (reported already if they still do not).
		c.validFrom = time.Time{}
		if err := c.Load(time.Now()); err != nil {
			var nyv *notYetValidError
			if errors.As(err, &nyv) {
				c.validFrom = nyv.notBefore
			}
			return false
		}
		c.reloads.Add(1)
		log.LogAttrs(ctx, slog.LevelInfo, "TLS certificate reloaded: its validity has begun", slog.String("cert_file", c.certFile),
			slog.Time("not_after", c.cert.Load().Leaf.NotAfter))
		return false
	}
	if sum == c.sum { // unchanged since the last look
		if !c.settling {
			return false
		}
		if c.settleGone {
			// Back as they were before they went: nothing to load.
			c.settling, c.settleGone = false, false
			return false
		}
		if time.Since(c.settleStart) < c.settle {
			return true // still settling; a set that does not load yet
		}
		// Settled as it is: load it once more, and refuse it.
	}
	c.settleGone = false
	c.validFrom = time.Time{}
	err = c.Load(time.Now())
	if err == nil {
		c.settling = false
		c.reloads.Add(1)
		log.LogAttrs(ctx, slog.LevelInfo, "TLS certificate reloaded", slog.String("cert_file", c.certFile),
			slog.Time("not_after", c.cert.Load().Leaf.NotAfter))
		return false
	}
	c.sum = sum // do not retry the same bad files every tick
	if !c.settling && c.settle > 0 {
		// Perhaps half written (a certificate without its key yet): look
		// again at the next change, until the settle time passes.
		c.settling, c.settleStart = true, time.Now()
		log.LogAttrs(ctx, slog.LevelDebug, "TLS files changed but do not load yet; waiting for them to settle",
			slog.String("cert_file", c.certFile), slog.Duration("settle", c.settle), slog.Any("error", err))
		return true
	}
	if c.settling && time.Since(c.settleStart) < c.settle {
		return true // changed again, still not loading: wait on
	}
	c.settling = false
	c.failures.Add(1)
	if nyv := (*notYetValidError)(nil); errors.As(err, &nyv) {
		c.validFrom = nyv.notBefore
		log.LogAttrs(ctx, slog.LevelError, "TLS files changed but their certificate is not valid yet; still serving the previous certificate until it is",
			slog.String("cert_file", c.certFile), slog.Time("not_before", nyv.notBefore), slog.Any("error", err))
		return false
	}
	log.LogAttrs(ctx, slog.LevelError, "TLS files changed but do not load; still serving the previous certificate",
		slog.String("cert_file", c.certFile), slog.Any("error", err))
	return false
}
