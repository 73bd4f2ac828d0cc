package certreload

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
)

// writePair writes a self-signed certificate of serial, valid now, and
// its key.
func writePair(t *testing.T, serial int64, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
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
