package httpserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/handshake"
	"github.com/rmqproxy/rmqproxy/adapters/internal/listenhint"
)

// Options describe one server. Module, Setting and Address make the errors
// of [Server.Start] say what to change; the timeouts go to [http.Server]
// as they are (zero means none).
type Options struct {
	// Module prefixes every error: "admin" gives "admin: cannot listen ...".
	Module string
	// Setting is the configuration key of Address, such as "admin.address".
	Setting string
	// Address is the host:port to bind; port 0 picks a free one.
	Address string
	// PortHolder says who probably holds a taken port, in the hint of the
	// "address in use" error; "another process" when empty.
	PortHolder string
	// Name is the server in log records: "admin API" logs "admin API
	// stopped serving" when serving fails.
	Name string

	Handler http.Handler
	// TLS, when set, makes the server speak HTTPS only: a plain HTTP
	// request gets a 400 "Client sent an HTTP request to an HTTPS server"
	// and the connection is closed. The handshakes run in a
	// [handshake.Listener], within HandshakeTimeout, before net/http sees
	// the connections.
	TLS *tls.Config
	// HandshakeTimeout bounds each TLS handshake (0: none).
	HandshakeTimeout time.Duration
	// Handshakes, when set, counts and logs the failed TLS handshakes.
	Handshakes        *handshake.Failures
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration

	// Logger receives [http.Server]'s own complaints (at Debug: they are
	// about misbehaving clients) and a failure to serve (at Error). Nil
	// discards them.
	Logger *slog.Logger
}

// Server is an HTTP server that [Server.Start] binds and serves and
// [Server.Stop] shuts down. It is started at most once. Use [New].
type Server struct {
	opts Options

	mu     sync.Mutex // guards the fields below
	srv    *http.Server
	ln     net.Listener
	cancel context.CancelFunc // cancels the root context of all requests
	done   chan struct{}      // closed when the serving goroutine exits
}

// New returns a server for opts. It does not listen yet.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PortHolder == "" {
		opts.PortHolder = "another process"
	}
	return &Server{opts: opts}
}

// SetHandler replaces the handler given in the options; call it before
// Start.
func (s *Server) SetHandler(h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Handler = h
}

// SetTLS makes the server speak HTTPS with cfg (see [Options.TLS]); call it
// before Start.
func (s *Server) SetTLS(cfg *tls.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.TLS = cfg
}

// Start binds the address and serves in a goroutine that [Server.Stop]
// stops. A taken port fails here, with an error naming the setting.
func (s *Server) Start(ctx context.Context) error {
	o := &s.opts
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return fmt.Errorf("%s: server already started", o.Module)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.Address)
	if err != nil {
		return fmt.Errorf("%s: cannot listen on %s (setting %s): %w; %s", o.Module, o.Address, o.Setting, err,
			listenhint.Hint(err, o.Setting, o.PortHolder))
	}
	if o.TLS != nil {
		ln = handshake.NewListener(ln, o.TLS, o.HandshakeTimeout, o.Handshakes)
	}
	root, cancel := context.WithCancel(context.Background()) // the server's root context, cancelled in Stop
	s.srv = &http.Server{
		Handler:           o.Handler,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return root },
		ErrorLog:          newErrorLog(o.Logger),
	}
	s.ln, s.cancel, s.done = ln, cancel, make(chan struct{})
	srv, done := s.srv, s.done
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Error(o.Name+" stopped serving", "error", err)
		}
	}()
	return nil
}

// Addr returns the bound address, or nil before a successful Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Stop stops accepting, lets in-flight requests finish until ctx is done,
// then cancels the root context and closes every connection. It returns
// once the serving goroutine has exited, with an error wrapping ctx's when
// requests were cut off.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv, cancel, done := s.srv, s.cancel, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	cancel()
	if err != nil {
		_ = srv.Close()
		err = fmt.Errorf("%s: graceful shutdown: %w", s.opts.Module, err)
	}
	<-done
	return err
}

// Route is an endpoint one adapter contributes to the HTTP servers of
// others (such as /metrics, from adapters/otel, on the health and admin
// ports), through the fx value group [RoutesGroup].
type Route struct {
	// Pattern is an http.ServeMux pattern, such as "GET /metrics".
	Pattern string
	Handler http.Handler
}

// RoutesGroup is the fx value group of [Route]s the health and admin
// servers mount.
const RoutesGroup = "httproutes"

// newErrorLog returns the ErrorLog of an [http.Server] logging to l; a
// variable so that a test can replace what net/http logs, which nothing
// depends on.
var newErrorLog = func(l *slog.Logger) *log.Logger { return log.New(errorLog{log: l}, "", 0) }

// errorLog logs the lines of an [http.Server]'s ErrorLog at Debug.
type errorLog struct{ log *slog.Logger }

func (w errorLog) Write(p []byte) (int, error) {
	w.log.LogAttrs(context.Background(), slog.LevelDebug, strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
