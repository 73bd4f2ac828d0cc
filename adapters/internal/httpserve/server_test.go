package httpserve_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/httpserve"
	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// records is a slog.Handler that keeps every record, at every level; a
// record at Error fails the test, which expects none.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }

func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// find returns the first record whose message contains s.
func (h *records) find(s string) (slog.Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if strings.Contains(r.Message, s) {
			return r, true
		}
	}
	return slog.Record{}, false
}

func newRecords(t *testing.T) *records {
	t.Helper()
	h := &records{}
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, r := range h.recs {
			if r.Level >= slog.LevelError {
				t.Errorf("unexpected Error record %q", r.Message)
			}
		}
	})
	return h
}

func options(t *testing.T, h http.Handler) (httpserve.Options, *records) {
	t.Helper()
	logs := newRecords(t)
	return httpserve.Options{
		Module: "test", Setting: "test.address", Address: "127.0.0.1:0", Name: "test server",
		Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, Logger: slog.New(logs),
	}, logs
}

// start runs a real server on 127.0.0.1:0 and returns it with an HTTP
// client. Cleanup closes the client's idle connections, then stops the
// server (again, if the test did) within the test's deadline.
func start(t *testing.T, h http.Handler) (*httpserve.Server, *http.Client, *records) {
	t.Helper()
	opts, logs := options(t, h)
	s := httpserve.New(opts)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := s.Stop(context.WithoutCancel(t.Context())); err != nil {
			t.Errorf("stop at cleanup: %v", err)
		}
	})
	return s, &http.Client{Transport: tr, Timeout: 10 * time.Second}, logs
}

func get(ctx context.Context, c *http.Client, s *httpserve.Server) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr().String()+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(resp.Status + ": " + string(b))
	}
	return string(b), nil
}

func TestServesUntilStopped(t *testing.T) {
	s, c, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.Context().Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "hello")
	}))
	tcp, ok := s.Addr().(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() || tcp.Port == 0 {
		t.Fatalf("Addr %v", s.Addr())
	}
	if body, err := get(t.Context(), c, s); err != nil || body != "hello" {
		t.Fatalf("GET: %q %v", body, err)
	}
	if err := s.Start(t.Context()); err == nil || err.Error() != "test: server already started" {
		t.Fatalf("second Start: %v", err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.Transport.(*http.Transport).CloseIdleConnections()
	if _, err := get(t.Context(), c, s); err == nil {
		t.Fatal("server still answers after Stop")
	}
}

func TestBeforeStart(t *testing.T) {
	opts, _ := options(t, http.NotFoundHandler())
	s := httpserve.New(opts)
	if s.Addr() != nil {
		t.Fatalf("Addr before Start: %v", s.Addr())
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
}

func TestListenErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	inUse := taken.Addr().String()
	tests := []struct {
		name, address, holder string
		inUse                 bool
		prefix, suffix        string
	}{
		{name: "address in use", address: inUse, inUse: true,
			prefix: "test: cannot listen on " + inUse + " (setting test.address): ",
			suffix: "; another process uses this port: stop it, or set test.address to a free address"},
		{name: "address in use, holder named", address: inUse, holder: "another rmqproxy", inUse: true,
			prefix: "test: cannot listen on " + inUse + " (setting test.address): ",
			suffix: "; another rmqproxy uses this port: stop it, or set test.address to a free address"},
		{name: "bad port", address: "127.0.0.1:99999",
			prefix: "test: cannot listen on 127.0.0.1:99999 (setting test.address): ", suffix: "; check test.address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, _ := options(t, http.NotFoundHandler())
			opts.Address, opts.PortHolder = tt.address, tt.holder
			s := httpserve.New(opts)
			err := s.Start(t.Context())
			if err == nil {
				_ = s.Stop(t.Context())
				t.Fatal("no error")
			}
			if errors.Is(err, syscall.EADDRINUSE) != tt.inUse {
				t.Errorf("errors.Is(err, EADDRINUSE) = %t: %v", !tt.inUse, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tt.prefix) || !strings.HasSuffix(msg, tt.suffix) {
				t.Errorf("error %q\nwant %q ... %q", msg, tt.prefix, tt.suffix)
			}
			if s.Addr() != nil {
				t.Errorf("Addr after a failed Start: %v", s.Addr())
			}
			if err := s.Stop(t.Context()); err != nil {
				t.Errorf("Stop after a failed Start: %v", err)
			}
		})
	}
}

// blocking is a handler that signals entered for each request and then
// waits for release or for the request's context; cancelled receives the
// context's error when that ends the wait.
type blocking struct {
	entered   chan struct{}
	release   chan struct{}
	cancelled chan error
}

func newBlocking() *blocking {
	return &blocking{entered: make(chan struct{}, 1), release: make(chan struct{}), cancelled: make(chan error, 1)}
}

func (b *blocking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		_, _ = io.WriteString(w, "done")
	case <-r.Context().Done():
		b.cancelled <- r.Context().Err()
		http.Error(w, "cut off", http.StatusServiceUnavailable) // if the connection is still there
	}
}

// TestGracefulStop stops a server while a request is in flight: the server
// stops accepting at once, and Stop returns only after the request has
// finished, successfully.
func TestGracefulStop(t *testing.T) {
	h := newBlocking()
	s, c, _ := start(t, h)
	addr := s.Addr().String()
	result := make(chan error, 1)
	go func() {
		_, err := get(context.Background(), c, s)
		result <- err
	}()
	<-h.entered // the request is in flight

	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(context.Background()) }()
	var d net.Dialer
	waitfor.Condition(t, 5*time.Second, 10*time.Millisecond, func() error {
		conn, err := d.DialContext(t.Context(), "tcp", addr)
		if err != nil {
			return nil // no longer accepting
		}
		conn.Close()
		return errors.New("still accepting connections after Stop began")
	})
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned while a request was in flight: %v", err)
	case err := <-result:
		t.Fatalf("the in-flight request ended before it was released: %v", err)
	default:
	}
	close(h.release)
	if err := <-result; err != nil {
		t.Fatalf("in-flight request failed: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func TestStopDeadlineCancelsRequests(t *testing.T) {
	h := newBlocking()
	t.Cleanup(func() { close(h.release) })
	s, c, _ := start(t, h)
	result := make(chan error, 1)
	go func() {
		_, err := get(context.Background(), c, s)
		result <- err
	}()
	<-h.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the stop deadline has passed
	err := s.Stop(ctx)
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "test: graceful shutdown: ") {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-h.cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("the request's context ended with %v, want the root context cancelled", err)
	}
	if err := <-result; err == nil {
		t.Fatal("request cut by the shutdown succeeded")
	}
}

func TestServerErrorsLogAtDebug(t *testing.T) {
	s, c, logs := start(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("handler bug") // net/http recovers and reports it on ErrorLog
	}))
	if _, err := get(t.Context(), c, s); err == nil {
		t.Fatal("a panicking handler answered")
	}
	// net/http logs the panic before it closes the connection the failed
	// request was waiting on, so the record is there already.
	r, ok := logs.find("handler bug")
	if !ok || r.Level != slog.LevelDebug {
		t.Fatalf("the panic is not logged at Debug: %v %v", ok, r.Level)
	}
}
