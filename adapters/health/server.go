package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/httpserve"
)

// Check is one readiness condition contributed by an adapter, such as
// "postgres" pinging its pool or "localbroker" reporting that recovery has
// finished. Check returns nil when ready; it must return promptly once ctx
// is done.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Result is the outcome of one check in a /readyz answer.
type Result struct {
	Name  string `json:"name"`
	Error string `json:"error,omitempty"`
}

// Report is the JSON body of /readyz.
type Report struct {
	Status  string   `json:"status"` // "ready", "degraded" or "not ready"
	Failing []Result `json:"failing"`
	Passing []string `json:"passing"`
	// Degraded lists checks that serve, but not as well as they should
	// (e.g. enforcing a security policy that may be stale because its
	// database is unreachable); they do not make the proxy unready.
	Degraded []Result `json:"degraded,omitempty"`
}

// degradedError marks a check's error as degradation, not failure.
type degradedError struct{ err error }

func (d degradedError) Error() string { return d.err.Error() }
func (d degradedError) Unwrap() error { return d.err }

// Degraded wraps err so that /readyz lists it under "degraded" and stays
// ready (200).
func Degraded(err error) error {
	if err == nil {
		return nil
	}
	return degradedError{err}
}

// expectedError marks a check's error as a failure the proxy brings about
// on purpose.
type expectedError struct{ err error }

func (e expectedError) Error() string { return e.err.Error() }
func (e expectedError) Unwrap() error { return e.err }

// Expected wraps err, a failure the proxy brings about on purpose (a
// graceful stop reporting not ready while it drains), so that it is
// logged at Info when the check starts failing: /readyz and
// grpc.health.v1 report it as any failure, but an operator's alert on
// Warn lines does not fire for a normal stop.
func Expected(err error) error {
	if err == nil {
		return nil
	}
	return expectedError{err}
}

const maxErrorText = 300 // a check's error is cut to this length in the answer

// Server serves /healthz and /readyz. Use [New]; Start binds and serves,
// Stop shuts down.
type Server struct {
	cfg    Config
	checks []Check
	log    *slog.Logger

	stateMu sync.Mutex      // guards failing
	failing map[string]bool // last outcome per check, to log changes only

	srv *httpserve.Server // the listener, the serving goroutine and the root context
	// routes are contributed by other adapters (see Mount).
	routes []httpserve.Route
}

// New returns a server for cfg running checks. Check names must be unique
// and non-empty, and every Check func non-nil: a bad check is a wiring bug
// that fails startup with the offending name.
func New(cfg Config, checks []Check, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = DefaultConfig().CheckTimeout
	}
	seen := map[string]bool{}
	for _, c := range checks {
		switch {
		case c.Name == "":
			return nil, errors.New("health: a readiness check has no name")
		case c.Check == nil:
			return nil, fmt.Errorf("health: readiness check %q has no Check func", c.Name)
		case seen[c.Name]:
			return nil, fmt.Errorf("health: two readiness checks are named %q", c.Name)
		}
		seen[c.Name] = true
	}
	sorted := append([]Check(nil), checks...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	s := &Server{cfg: cfg, checks: sorted, log: logger.With("component", "health"), failing: map[string]bool{}}
	s.srv = httpserve.New(httpserve.Options{
		Module:            "health",
		Setting:           "health.address",
		Address:           cfg.Address,
		Name:              "health server",
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      writeTimeout(cfg),
		IdleTimeout:       2 * time.Minute,
		Logger:            s.log,
	})
	return s, nil
}

// writeTimeout bounds one answer: a readiness probe, or a CPU profile or
// trace of up to 110 seconds when pprof is on.
func writeTimeout(cfg Config) time.Duration {
	if cfg.Pprof {
		return 2 * time.Minute
	}
	return cfg.CheckTimeout + 10*time.Second
}

// Start binds cfg.Address and serves in a goroutine that Stop ends. A taken
// port fails here with an error naming health.address.
func (s *Server) Start(ctx context.Context) error {
	if err := s.srv.Start(ctx); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "health endpoints listening", "address", s.srv.Addr().String(), "readiness_checks", len(s.checks))
	return nil
}

// Mount adds routes other adapters contribute (such as /metrics); call it
// before Start.
func (s *Server) Mount(routes ...httpserve.Route) {
	s.routes = append(s.routes, routes...)
	s.srv.SetHandler(s.Handler())
}

// Addr returns the bound address, or nil before Start.
func (s *Server) Addr() net.Addr { return s.srv.Addr() }

// Stop stops accepting, lets running probes finish until ctx is done, then
// cancels them and closes every connection. It returns once the serving
// goroutine has exited.
func (s *Server) Stop(ctx context.Context) error { return s.srv.Stop(ctx) }

// Handler returns the health endpoints' handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	live := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	}
	mux.HandleFunc("GET /livez", live)
	mux.HandleFunc("GET /healthz", live)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rep := s.Ready(r.Context())
		status := http.StatusOK
		if len(rep.Failing) > 0 {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(rep)
	})
	for _, r := range s.routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	if s.cfg.Pprof {
		// No /debug/pprof/cmdline: secrets may be given as flags.
		mux.Handle("GET /debug/pprof/", localOnly(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/cmdline", http.NotFoundHandler())
		mux.Handle("GET /debug/pprof/profile", localOnly(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", localOnly(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", localOnly(http.HandlerFunc(pprof.Trace)))
	}
	return mux
}

// localOnly serves the runtime profiles only to a client on this host that
// addresses it by a loopback name: profiles can hold message contents and
// secrets and cost CPU, health.address usually listens on every interface
// for /metrics and the probes, and a web page must not reach the profiles
// through DNS rebinding.
func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !peer.Addr().Unmap().IsLoopback() || !httpserve.LoopbackHostHeader(r.Host) {
			http.Error(w, "the runtime profiles (health.pprof) are served only to clients on this host that address it as localhost, 127.0.0.1 or [::1]; "+
				"reach them through an SSH tunnel or kubectl port-forward", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Ready runs every check concurrently, each bounded by the configured
// timeout, waits for all of them and reports the outcome. Changes of a
// check's outcome are logged (Warn when it starts failing, Info when it
// recovers), not every probe.
func (s *Server) Ready(ctx context.Context) Report {
	errs := make([]error, len(s.checks))
	var wg sync.WaitGroup
	for i, c := range s.checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
			defer cancel()
			errs[i] = run(cctx, c, s.cfg.CheckTimeout)
		})
	}
	wg.Wait()

	rep := Report{Status: "ready", Failing: []Result{}, Passing: []string{}}
	for i, c := range s.checks {
		var d degradedError
		if errs[i] == nil {
			rep.Passing = append(rep.Passing, c.Name)
		} else {
			text := errs[i].Error()
			if len(text) > maxErrorText {
				text = text[:maxErrorText] + "..."
			}
			if errors.As(errs[i], &d) {
				rep.Degraded = append(rep.Degraded, Result{Name: c.Name, Error: text})
			} else {
				rep.Failing = append(rep.Failing, Result{Name: c.Name, Error: text})
			}
		}
		s.noteOutcome(ctx, c.Name, errs[i])
	}
	switch {
	case len(rep.Failing) > 0:
		rep.Status = "not ready"
	case len(rep.Degraded) > 0:
		rep.Status = "degraded"
	}
	return rep
}

// run calls one check, turning a panic into a failure so that a buggy check
// makes the proxy unready rather than crashing it.
func run(ctx context.Context, c Check, timeout time.Duration) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v", p)
		}
	}()
	if err := c.Check(ctx); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %v (health.checkTimeout): %w", timeout, err)
		}
		return err
	}
	return nil
}

func (s *Server) noteOutcome(ctx context.Context, name string, err error) {
	s.stateMu.Lock()
	was, known := s.failing[name]
	s.failing[name] = err != nil
	s.stateMu.Unlock()
	switch {
	case err != nil && !was:
		level := slog.LevelWarn
		if errors.As(err, new(expectedError)) {
			level = slog.LevelInfo
		}
		s.log.Log(ctx, level, "readiness check failing", "check", name, "error", err)
	case err == nil && was && known:
		s.log.InfoContext(ctx, "readiness check passing again", "check", name)
	}
}
