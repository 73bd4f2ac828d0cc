package certreload

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/test/testenv/certtest"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// newPair returns the PEM of a self-signed certificate of serial for
// localhost, valid now, and of its key.
func newPair(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	c := certtest.SelfSigned(t, certtest.Spec{Serial: serial, Hosts: []string{"localhost"}})
	return c.CertPEM(), c.KeyPEM(t)
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// watched is a store of two files, watched every 5 ms with settle, and a
// TLS server of it on 127.0.0.1.
type watched struct {
	*Store
	cert, key string
	addr      string
	logs      *logbuf.Buffer
}

func watch(t *testing.T, settle time.Duration) *watched {
	t.Helper()
	// The files are read through a symbolic link to their directory, which
	// a test may swap.
	dir := filepath.Join(t.TempDir(), "v1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(t.TempDir(), "live")
	if err := os.Symlink(dir, live); err != nil {
		t.Fatal(err)
	}
	w := &watched{cert: filepath.Join(live, "s.crt"), key: filepath.Join(live, "s.key"), logs: &logbuf.Buffer{}}
	c, k := newPair(t, 1)
	writeFile(t, w.cert, c)
	writeFile(t, w.key, k)
	w.Store = New(w.cert, w.key, "", tls.NoClientCert, nil)
	w.SetSettle(settle)
	if err := w.Load(time.Now()); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", w.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	w.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served, watching := make(chan struct{}), make(chan struct{})
	go func() { // completes each handshake, then closes the connection
		defer close(served)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).HandshakeContext(ctx)
			_ = c.Close()
		}
	}()
	go func() {
		defer close(watching)
		w.Watch(ctx, 5*time.Millisecond, slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}()
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		<-served
		<-watching
	})
	return w
}

// serial returns the serial number of the certificate a TLS client gets.
func (w *watched) serial() (int64, error) {
	c, err := tls.Dial("tcp", w.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

func (w *watched) waitSerial(t *testing.T, want int64) {
	t.Helper()
	waitfor.Condition(t, 10*time.Second, 5*time.Millisecond, func() error {
		got, err := w.serial()
		if err == nil && got != want {
			err = errors.New("serving serial " + big.NewInt(got).String())
		}
		return err
	})
}

// TestHalfRenewedPairSettles: a renewal that writes the certificate, then
// (after the watcher has seen the certificate with the old key) the key,
// is loaded and served to a TLS client without a failed reload or an
// Error line; meanwhile the old certificate is served.
func TestHalfRenewedPairSettles(t *testing.T) {
	w := watch(t, time.Minute) // only the key's arrival ends the wait
	w.waitSerial(t, 1)
	c, k := newPair(t, 2)
	writeFile(t, w.cert, c)
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the watcher saw the certificate without its key", func() bool {
		return strings.Contains(w.logs.String(), "waiting for them to settle") || w.Failures() > 0
	})
	if got, err := w.serial(); err != nil || got != 1 {
		t.Fatalf("half renewed: serving serial %d (%v), want 1", got, err)
	}
	writeFile(t, w.key, k) // not atomic either: the watcher may see it half written
	w.waitSerial(t, 2)
	if w.Failures() != 0 || w.Reloads() != 1 || strings.Contains(w.logs.String(), "level=ERROR") {
		t.Fatalf("a pair written as two files: %d failed, %d loaded; want 0 and 1:\n%s", w.Failures(), w.Reloads(), w.logs.String())
	}
}

// TestBrokenPairIsRefusedOnce: a certificate whose key never comes is
// refused once the settle time has passed: one failed reload, one Error
// line, the old certificate still served; a good pair written afterwards
// is loaded.
func TestBrokenPairIsRefusedOnce(t *testing.T) {
	w := watch(t, 50*time.Millisecond)
	w.waitSerial(t, 1)
	c, _ := newPair(t, 2)
	writeFile(t, w.cert, c)
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the broken pair refused", func() bool { return w.Failures() > 0 })
	if got, err := w.serial(); err != nil || got != 1 {
		t.Fatalf("after the broken pair: serving serial %d (%v), want 1", got, err)
	}
	// The good pair replaces both files at once (a symbolic link to their
	// directory swapped, as Kubernetes updates a mounted Secret), so that
	// no look sees one without the other.
	dir := filepath.Dir(w.cert)
	c, k := newPair(t, 3)
	next := filepath.Join(t.TempDir(), "v3")
	if err := os.Mkdir(next, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(next, "s.crt"), c)
	writeFile(t, filepath.Join(next, "s.key"), k)
	if err := os.Symlink(next, dir+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir+".new", dir); err != nil {
		t.Fatal(err)
	}
	w.waitSerial(t, 3)
	if out := w.logs.String(); w.Failures() != 1 || w.Reloads() != 1 || strings.Count(out, "level=ERROR") != 1 ||
		!strings.Contains(out, "private key does not match public key") {
		t.Fatalf("a broken pair, then a good one: %d failed, %d loaded; want 1 and 1, one Error line on the key:\n%s", w.Failures(), w.Reloads(), out)
	}
}

// TestRecreatedFilesSettle: a rotation that deletes the certificate and
// key files and writes them anew (as mv-based tools do), seen by the
// watcher with a file missing, is loaded and served to a TLS client
// without a failed reload or an Error line; so is a symbolic link to the
// files' directory removed and made again to a new one.
func TestRecreatedFilesSettle(t *testing.T) {
	w := watch(t, time.Minute) // only the files' return ends the wait
	w.waitSerial(t, 1)
	// seenMissing waits for the watcher to see what missing, in the logs
	// written from offset from on.
	seenMissing := func(from int, what string) {
		t.Helper()
		waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the watcher saw "+what+" missing", func() bool {
			return strings.Contains(w.logs.String()[from:], "cannot be read") || w.Failures() > 0
		})
	}
	if err := os.Remove(w.cert); err != nil {
		t.Fatal(err)
	}
	seenMissing(0, "the certificate")
	c, k := newPair(t, 2)
	writeFile(t, w.cert, c)
	if err := os.Remove(w.key); err != nil {
		t.Fatal(err)
	}
	writeFile(t, w.key, k)
	w.waitSerial(t, 2)
	if out := w.logs.String(); w.Failures() != 0 || w.Reloads() != 1 || strings.Contains(out, "level=ERROR") {
		t.Fatalf("files deleted and written anew: %d failed, %d loaded; want 0 and 1:\n%s", w.Failures(), w.Reloads(), out)
	}

	// The link to the directory removed, then made to a new directory.
	live := filepath.Dir(w.cert)
	next := filepath.Join(t.TempDir(), "v3")
	if err := os.Mkdir(next, 0o700); err != nil {
		t.Fatal(err)
	}
	c, k = newPair(t, 3)
	writeFile(t, filepath.Join(next, "s.crt"), c)
	writeFile(t, filepath.Join(next, "s.key"), k)
	from := len(w.logs.String())
	if err := os.Remove(live); err != nil {
		t.Fatal(err)
	}
	seenMissing(from, "the linked directory")
	if err := os.Symlink(next, live); err != nil {
		t.Fatal(err)
	}
	w.waitSerial(t, 3)
	if out := w.logs.String(); w.Failures() != 0 || w.Reloads() != 2 || strings.Contains(out, "level=ERROR") {
		t.Fatalf("a directory link made anew: %d failed, %d loaded; want 0 and 2:\n%s", w.Failures(), w.Reloads(), out)
	}
}

// TestMissingFileIsRefusedAfterSettling: a key file deleted and not
// written again is refused once the settle time has passed (a Debug line
// on the wait first): one failed reload, one Error line naming it, the old
// certificate still served; the files written again are loaded.
func TestMissingFileIsRefusedAfterSettling(t *testing.T) {
	w := watch(t, 50*time.Millisecond)
	w.waitSerial(t, 1)
	if err := os.Remove(w.key); err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the missing key refused", func() bool { return w.Failures() > 0 })
	if got, err := w.serial(); err != nil || got != 1 {
		t.Fatalf("with the key missing: serving serial %d (%v), want 1", got, err)
	}
	out := w.logs.String()
	wait, refused := strings.Index(out, "waiting for them to settle"), strings.Index(out, "level=ERROR")
	if w.Failures() != 1 || strings.Count(out, "level=ERROR") != 1 || wait < 0 || wait > refused ||
		!strings.Contains(out[refused:], "s.key") {
		t.Fatalf("a missing key: %d failed; want 1, one Error line naming s.key after a Debug line on the wait:\n%s", w.Failures(), out)
	}
	c, k := newPair(t, 2)
	writeFile(t, w.cert, c)
	writeFile(t, w.key, k)
	w.waitSerial(t, 2)
	if w.Failures() != 1 || w.Reloads() != 1 {
		t.Fatalf("the files written again: %d failed, %d loaded; want 1 and 1:\n%s", w.Failures(), w.Reloads(), w.logs.String())
	}
}
