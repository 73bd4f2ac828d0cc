package certreload

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rmqproxy/rmqproxy/adapters/internal/metrictest"
	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/test/testenv/certtest"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// writePair writes a self-signed certificate of serial, valid now, and
// its key.
func writePair(t *testing.T, serial int64, certFile, keyFile string) {
	t.Helper()
	writePairUntil(t, serial, time.Now().Add(time.Hour), certFile, keyFile)
}

// writePairUntil writes a self-signed certificate of serial, valid from an
// hour ago to notAfter, and its key.
func writePairUntil(t *testing.T, serial int64, notAfter time.Time, certFile, keyFile string) {
	t.Helper()
	certtest.SelfSigned(t, certtest.Spec{Serial: serial, Hosts: []string{"localhost"}, NotAfter: notAfter.Truncate(time.Second)}).
		WriteFiles(t, certFile, keyFile)
}

// TestWatchReportsFilesThatCannotBeRead: a certificate or key file that
// goes missing (or unreadable) is a change that does not load like any
// other: logged at Error once and counted, the previous certificate still
// served; once the files are back and load, they are served.
func TestWatchReportsFilesThatCannotBeRead(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	writePair(t, 1, cert, key)
	s := New(cert, key, "", tls.NoClientCert, []string{"h2"})
	s.SetSettle(0) // each look decides: settling is TestMissingFileIsRefusedAfterSettling's
	if err := s.Load(time.Now()); err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	// Three looks (ticks of Watch) at the same missing file: reported
	// once, not at every tick.
	for range 3 {
		s.check(t.Context(), log)
	}
	if n := s.Failures(); n != 1 {
		t.Errorf("a missing key file counted as %d failed reloads, want 1", n)
	}
	if out := logs.String(); strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "s.key") {
		t.Errorf("a missing key file is not logged at Error once, naming it:\n%s", out)
	}
	if got := s.Leaf().SerialNumber.Int64(); got != 1 {
		t.Fatalf("serving serial %d after the key went missing, want 1 (the previous)", got)
	}
	writePair(t, 2, cert, key)
	s.check(t.Context(), log)
	if got := s.Leaf().SerialNumber.Int64(); got != 2 || s.Reloads() != 1 {
		t.Fatalf("after the files came back: serving serial %d, %d reloads; want 2 and 1", got, s.Reloads())
	}
}

// TestFilesBackAsTheyWereAreNoChange: a key file seen missing, then back
// with the content it had, ends the wait without a reload or a failure,
// and the next look settles nothing.
func TestFilesBackAsTheyWereAreNoChange(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	writePair(t, 1, cert, key)
	s := New(cert, key, "", tls.NoClientCert, nil)
	s.SetSettle(time.Minute)
	if err := s.Load(time.Now()); err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if !s.check(t.Context(), log) {
		t.Fatal("a missing key is not waited for")
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if s.check(t.Context(), log) || s.Reloads() != 0 || s.Failures() != 0 {
			t.Fatalf("look %d at the key back as it was: still settling or counted (%d loaded, %d failed)", i, s.Reloads(), s.Failures())
		}
	}
}

// TestCheckExpiryWarnsOncePerCertificate: a certificate in use that
// expires within the warning window is logged at Warn once, however many
// ticks look at it; a renewed certificate still within the window is
// logged once more, one outside it not at all; the certificate in use
// once expired is logged at Error once; with no window nothing is logged.
func TestCheckExpiryWarnsOncePerCertificate(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	writePairUntil(t, 1, time.Now().Add(time.Hour), cert, key)
	s := New(cert, key, "", tls.NoClientCert, []string{"h2"})
	s.WarnBefore(2 * time.Hour)
	if err := s.Load(time.Now()); err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for range 3 {
		s.check(t.Context(), log)
		s.CheckExpiry(t.Context(), log, time.Now())
	}
	if out := logs.String(); strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, "expires soon") ||
		!strings.Contains(out, "s.crt") || !strings.Contains(out, "expires_in=") || strings.Contains(out, "level=ERROR") {
		t.Fatalf("a certificate expiring within the window is not warned about once, naming its file:\n%s", out)
	}
	// Renewed, still short-lived: a new certificate, warned about once.
	writePairUntil(t, 2, time.Now().Add(90*time.Minute), cert, key)
	for range 3 {
		s.check(t.Context(), log)
		s.CheckExpiry(t.Context(), log, time.Now())
	}
	if got := s.Leaf().SerialNumber.Int64(); got != 2 {
		t.Fatalf("serving serial %d, want 2", got)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 {
		t.Fatalf("%d warnings after a renewal to another short-lived certificate, want 2:\n%s", n, logs.String())
	}
	// Past its NotAfter (the process kept serving it): an error, once.
	later := s.Leaf().NotAfter.Add(time.Second)
	for range 3 {
		s.CheckExpiry(t.Context(), log, later)
	}
	if out := logs.String(); strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "has expired") {
		t.Fatalf("an expired certificate in use is not logged at Error once:\n%s", out)
	}
	// Renewed for 30 days: outside the window, nothing more.
	before := len(logs.String())
	writePairUntil(t, 3, time.Now().Add(30*24*time.Hour), cert, key)
	s.check(t.Context(), log)
	s.CheckExpiry(t.Context(), log, time.Now())
	if out := logs.String()[before:]; strings.Contains(out, "level=WARN") || strings.Contains(out, "level=ERROR") {
		t.Fatalf("a certificate valid beyond the window is reported:\n%s", out)
	}
	// No window: no warning, even at the last second.
	s.WarnBefore(0)
	s.CheckExpiry(t.Context(), log, s.Leaf().NotAfter.Add(-time.Second))
	if out := logs.String()[before:]; strings.Contains(out, "level=WARN") {
		t.Fatalf("warned with no window:\n%s", out)
	}
}

// TestObserveReportsNotAfterPerListener: the expiry gauge reports the
// NotAfter of the certificate in use, in seconds since the epoch, under
// its listener's label, and follows a reload.
func TestObserveReportsNotAfterPerListener(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	dir := t.TempDir()
	stores := map[string]*Store{}
	for i, listener := range []string{"grpc", "admin"} {
		cert, key := filepath.Join(dir, listener+".crt"), filepath.Join(dir, listener+".key")
		writePairUntil(t, int64(i+1), time.Now().Add(time.Duration(i+1)*time.Hour), cert, key)
		s := New(cert, key, "", tls.NoClientCert, nil)
		if err := s.Observe(mp.Meter("test"), listener); err != nil {
			t.Fatal(err)
		}
		stores[listener] = s
	}
	if got := collectExpiry(t, r); len(got) != 0 {
		t.Fatalf("before the first load: %v, want no series", got)
	}
	for _, s := range stores {
		if err := s.Load(time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int64{"grpc": stores["grpc"].Leaf().NotAfter.Unix(), "admin": stores["admin"].Leaf().NotAfter.Unix()}
	if got := collectExpiry(t, r); !maps.Equal(got, want) {
		t.Fatalf("expiry gauge %v, want %v", got, want)
	}
	renewed := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	writePairUntil(t, 3, renewed, stores["grpc"].certFile, stores["grpc"].keyFile)
	stores["grpc"].check(t.Context(), slog.New(slog.DiscardHandler))
	want["grpc"] = renewed.Unix()
	if got := collectExpiry(t, r); !maps.Equal(got, want) {
		t.Fatalf("after a reload, expiry gauge %v, want %v", got, want)
	}
}

// collectExpiry returns the expiry gauge's values by listener.
func collectExpiry(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	m, ok := metrictest.Metric(t, r, observe.MetricTLSCertificateExpiry)
	if !ok {
		return got
	}
	if m.Unit != "s" {
		t.Errorf("unit %q, want s", m.Unit)
	}
	if _, gauge := m.Data.(metricdata.Gauge[int64]); !gauge {
		t.Fatalf("%s is no int64 gauge", m.Name)
	}
	for _, p := range metrictest.Int64Points(m) {
		l, _ := p.Attributes.Value(observe.LabelListener)
		got[l.AsString()] = p.Value
	}
	return got
}

// TestWatchChecksExpiryAtEveryTick: Watch looks at the expiry of the
// certificate in use at its ticks, not only when one loads: a renewal to a
// certificate that expires within the window is warned about from the
// tick that loads it.
func TestWatchChecksExpiryAtEveryTick(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	writePairUntil(t, 1, time.Now().Add(30*24*time.Hour), cert, key)
	s := New(cert, key, "", tls.NoClientCert, []string{"h2"})
	s.WarnBefore(14 * 24 * time.Hour)
	if err := s.Load(time.Now()); err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Watch(ctx, 5*time.Millisecond, log) }()
	defer func() { cancel(); <-done }()
	writePairUntil(t, 2, time.Now().Add(24*time.Hour), cert, key)
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "a Warn line about the renewed certificate", func() bool {
		return strings.Contains(logs.String(), "level=WARN msg=\"TLS certificate in use expires soon")
	})
	if s.Leaf().SerialNumber.Int64() != 2 || strings.Count(logs.String(), "level=WARN") != 1 {
		t.Fatalf("serial %d:\n%s", s.Leaf().SerialNumber.Int64(), logs.String())
	}
}

// TestObserveCountsReloads: rmqproxy_tls_certificate_reloads_total counts,
// under the listener's label, the changed files that loaded (result ok)
// and those refused (result failed: a key that does not match the
// certificate, a file gone), from zero; files that did not change count
// nothing.
func TestObserveCountsReloads(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	writePair(t, 1, cert, key)
	s := New(cert, key, "", tls.NoClientCert, nil)
	s.SetSettle(0) // each look decides: settling is TestHalfRenewedPairSettles's
	if err := s.Observe(mp.Meter("test"), "admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.Load(time.Now()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	expect := func(step string, ok, failed int64) {
		t.Helper()
		want := map[[2]string]int64{{"admin", "ok"}: ok, {"admin", "failed"}: failed}
		if got := collectReloads(t, r); !maps.Equal(got, want) {
			t.Fatalf("%s: %s %v, want %v", step, observe.MetricTLSCertificateReloads, got, want)
		}
	}
	expect("after the first load", 0, 0)
	s.check(t.Context(), log)
	expect("files unchanged", 0, 0)
	writePair(t, 2, cert, key)
	s.check(t.Context(), log)
	expect("a renewed pair", 1, 0)
	// The key of another pair: it does not match the certificate.
	otherCert, otherKey := filepath.Join(dir, "o.crt"), filepath.Join(dir, "o.key")
	writePair(t, 3, otherCert, otherKey)
	if err := os.Rename(otherKey, key); err != nil {
		t.Fatal(err)
	}
	s.check(t.Context(), log)
	s.check(t.Context(), log)
	expect("a key that does not match", 1, 1)
	if got := s.Leaf().SerialNumber.Int64(); got != 2 {
		t.Fatalf("serving serial %d after a refused change, want 2", got)
	}
	if err := os.Remove(cert); err != nil {
		t.Fatal(err)
	}
	s.check(t.Context(), log)
	expect("the certificate file gone", 1, 2)
	writePair(t, 4, cert, key)
	s.check(t.Context(), log)
	expect("a good pair again", 2, 2)
}

// collectReloads returns the reload counter's values by listener and
// result.
func collectReloads(t *testing.T, r *sdkmetric.ManualReader) map[[2]string]int64 {
	t.Helper()
	got := map[[2]string]int64{}
	m, ok := metrictest.Metric(t, r, observe.MetricTLSCertificateReloads)
	if !ok {
		return got
	}
	if sum, _ := m.Data.(metricdata.Sum[int64]); !sum.IsMonotonic {
		t.Errorf("%s is not a monotonic counter", m.Name)
	}
	for _, p := range metrictest.Int64Points(m) {
		l, _ := p.Attributes.Value(observe.LabelListener)
		res, _ := p.Attributes.Value(observe.LabelResult)
		got[[2]string{l.AsString(), res.AsString()}] = p.Value
	}
	return got
}

// TestLoadRefusesAKeyNoCipherSuiteFits: with cipher suites set, a changed
// certificate whose key none of them goes with (an RSA key for ECDSA
// suites) is a change that does not load: counted as failed, logged
// naming the setting, the previous certificate still served.
func TestLoadRefusesAKeyNoCipherSuiteFits(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	writePair(t, 1, cert, key) // ECDSA
	s := New(cert, key, "", tls.NoClientCert, nil)
	s.SetCipherSuites("grpc.tls.cipherSuites", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256})
	s.SetSettle(0) // the look decides: settling is TestHalfRenewedPairSettles's
	if err := s.Load(time.Now()); err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rsaKey.PublicKey, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	s.check(t.Context(), slog.New(slog.NewTextHandler(&logs, nil)))
	if s.Failures() != 1 || s.Reloads() != 0 || s.Leaf().SerialNumber.Int64() != 1 {
		t.Fatalf("an RSA certificate for ECDSA suites: %d failed, %d loaded, serving serial %d; want 1, 0 and 1", s.Failures(), s.Reloads(), s.Leaf().SerialNumber.Int64())
	}
	if out := logs.String(); !strings.Contains(out, "grpc.tls.cipherSuites lists no suite for the RSA key of the certificate") {
		t.Errorf("the refusal does not name the setting:\n%s", out)
	}
}

// TestCertificateNotYetValidIsLoadedOnceValid: renewed files whose
// certificate is not valid yet (issued by a host whose clock is ahead, or
// with a NotBefore a moment away) are refused and the previous certificate
// kept; once its NotBefore has passed, the next look loads them, although
// the files did not change again (they were never looked at again, and
// the previous certificate was served until it expired).
func TestCertificateNotYetValidIsLoadedOnceValid(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	writePair(t, 1, cert, key)
	s := New(cert, key, "", tls.NoClientCert, nil)
	s.SetSettle(0)
	if err := s.Load(time.Now()); err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	notBefore := time.Now().Add(2 * time.Second).Truncate(time.Second)
	certtest.SelfSigned(t, certtest.Spec{Serial: 2, Hosts: []string{"localhost"}, NotBefore: notBefore,
		NotAfter: time.Now().Add(time.Hour).Truncate(time.Second)}).WriteFiles(t, cert, key)
	s.check(t.Context(), log)
	if got := s.Leaf().SerialNumber.Int64(); got != 1 || s.Failures() != 1 {
		t.Fatalf("a certificate not valid yet: serving serial %d, %d failures; want 1 (the previous) and 1", got, s.Failures())
	}
	if !strings.Contains(logs.String(), "not now") {
		t.Errorf("the refusal does not say the certificate is not valid yet:\n%s", logs.String())
	}
	waitfor.True(t, 10*time.Second, 50*time.Millisecond, "the new certificate's NotBefore to pass", func() bool { return time.Now().After(notBefore) })
	s.check(t.Context(), log)
	if got := s.Leaf().SerialNumber.Int64(); got != 2 || s.Reloads() != 1 {
		t.Fatalf("once the certificate on disk is valid: serving serial %d, %d reloads; want 2 and 1", got, s.Reloads())
	}
	if s.Failures() != 1 {
		t.Errorf("%d failures, want 1 (the first look only)", s.Failures())
	}
}
