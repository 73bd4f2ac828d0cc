package httpserve_test

import (
	"bytes"
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

	"go.uber.org/goleak"

	"github.com/rmqproxy/rmqproxy/adapters/internal/httpserve"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuffer collects JSON log lines; an Error record fails the test.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	buf := &logBuffer{}
	t.Cleanup(func() {
		if strings.Contains(buf.String(), `"level":"ERROR"`) {
			t.Errorf("unexpected Error log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func options(t *testing.T, h http.Handler) (httpserve.Options, *logBuffer) {
	t.Helper()
	logger, logs := newLogger(t)
	return httpserve.Options{
		Module: "test", Setting: "test.address", Address: "127.0.0.1:0", Name: "test server",
		Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, Logger: logger,
	}, logs
}

// start runs a real server on 127.0.0.1:0, stopped at cleanup unless the
// test stops it, and returns it with an HTTP client whose idle connections
// are closed at cleanup.
func start(t *testing.T, h http.Handler) (*httpserve.Server, *http.Client, *logBuffer) {
	t.Helper()
	opts, logs := options(t, h)
	s := httpserve.New(opts)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
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

func TestGracefulStop(t *testing.T) {
	h := newBlocking()
	s, c, _ := start(t, h)
	result := make(chan error, 1)
	go func() {
		_, err := get(context.Background(), c, s)
		result <- err
	}()
	<-h.entered // the request is in flight

	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned before the in-flight request finished: %v", err)
	case err := <-result:
		t.Fatalf("request finished before release: %v", err)
	case <-time.After(50 * time.Millisecond): // a negative check: nothing may happen yet
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
	defer close(h.release)
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
	waitFor(t, 5*time.Second, func() error {
		if out := logs.String(); !strings.Contains(out, `"level":"DEBUG"`) || !strings.Contains(out, "handler bug") {
			return errors.New("no Debug record of the panic:\n" + out)
		}
		return nil
	})
}

func waitFor(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	tick, deadline := time.NewTicker(10*time.Millisecond), time.After(d)
	defer tick.Stop()
	for err := cond(); err != nil; err = cond() {
		select {
		case <-deadline:
			t.Fatalf("not within %v: %v", d, err)
		case <-tick.C:
		}
	}
}
