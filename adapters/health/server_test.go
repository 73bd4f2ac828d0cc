package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/adapters/internal/httpserve"
	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

func newLogger(t *testing.T) (*slog.Logger, *logbuf.Buffer) {
	t.Helper()
	buf := &logbuf.Buffer{}
	t.Cleanup(func() {
		if strings.Contains(buf.String(), `"level":"ERROR"`) {
			t.Errorf("unexpected Error log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// start runs a real server on 127.0.0.1:0 and returns its base URL and an
// HTTP client whose idle connections are closed at cleanup.
func start(t *testing.T, checks ...health.Check) (string, *http.Client, *logbuf.Buffer) {
	t.Helper()
	return startWith(t, health.Config{Address: "127.0.0.1:0", CheckTimeout: time.Second}, checks...)
}

func startWith(t *testing.T, cfg health.Config, checks ...health.Check) (string, *http.Client, *logbuf.Buffer) {
	t.Helper()
	logger, logs := newLogger(t)
	s, err := health.New(cfg, checks, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return "http://" + s.Addr().String(), &http.Client{Transport: tr, Timeout: 10 * time.Second}, logs
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func pass(name string) health.Check {
	return health.Check{Name: name, Check: func(context.Context) error { return nil }}
}

func fail(name, msg string) health.Check {
	return health.Check{Name: name, Check: func(context.Context) error { return errors.New(msg) }}
}

func TestHealthz(t *testing.T) {
	base, c, _ := start(t, fail("broker", "down")) // liveness ignores readiness
	for _, path := range []string{"/healthz", "/livez"} {
		status, body := get(t, c, base+path)
		if status != 200 || body != "ok\n" {
			t.Fatalf("%s: %d %q", path, status, body)
		}
	}
	resp, err := c.Post(base+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz: %d", resp.StatusCode)
	}
}

// Routes of the httproutes group (such as /metrics from adapters/otel)
// are served next to the health endpoints.
func TestModuleMountsContributedRoutes(t *testing.T) {
	var s *health.Server
	app := fxtest.New(t,
		fx.Supply(health.Config{Address: "127.0.0.1:0", CheckTimeout: time.Second}, slog.New(slog.DiscardHandler)),
		fx.Provide(fx.Annotate(func() httpserve.Route {
			return httpserve.Route{Pattern: "GET /metrics", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("metrics\n")) })}
		}, fx.ResultTags(`group:"`+httpserve.RoutesGroup+`"`))),
		health.Module, fx.Populate(&s))
	app.RequireStart()
	defer app.RequireStop()
	c := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	if status, body := get(t, c, "http://"+s.Addr().String()+"/metrics"); status != 200 || body != "metrics\n" {
		t.Fatalf("GET /metrics: %d %q", status, body)
	}
}

func TestPprofOnlyWhenEnabled(t *testing.T) {
	base, c, _ := start(t)
	if status, _ := get(t, c, base+"/debug/pprof/"); status != http.StatusNotFound {
		t.Fatalf("pprof off: GET /debug/pprof/ answered %d, want 404", status)
	}
	base, c, _ = startWith(t, health.Config{Address: "127.0.0.1:0", CheckTimeout: time.Second, Pprof: true})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/profile?seconds=1"} {
		if status, body := get(t, c, base+path); status != http.StatusOK || body == "" {
			t.Fatalf("pprof on: GET %s answered %d with %d bytes", path, status, len(body))
		}
	}
	// The command line can hold secrets given as flags.
	if status, _ := get(t, c, base+"/debug/pprof/cmdline"); status != http.StatusNotFound {
		t.Fatalf("pprof on: GET /debug/pprof/cmdline answered %d, want 404", status)
	}
	// A web page reaching the port by DNS rebinding sends its own Host:
	// every profile endpoint refuses it (the CPU profile and the trace at
	// once, not after their second).
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/profile?seconds=1",
		"/debug/pprof/symbol", "/debug/pprof/trace?seconds=1"} {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "rebound.example:9090"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("pprof on: GET %s with Host %s answered %d, want 403", path, req.Host, resp.StatusCode)
		}
	}
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name    string
		checks  []health.Check
		status  int
		want    health.Report
		errText map[string]string // substring of each failing check's error
	}{
		{name: "no checks", status: 200, want: health.Report{Status: "ready", Failing: []health.Result{}, Passing: []string{}}},
		{name: "all pass", checks: []health.Check{pass("b"), pass("a")}, status: 200,
			want: health.Report{Status: "ready", Failing: []health.Result{}, Passing: []string{"a", "b"}}},
		{name: "one fails", checks: []health.Check{pass("broker"), fail("postgres", "connection refused")}, status: 503,
			want: health.Report{Status: "not ready", Failing: []health.Result{{Name: "postgres", Error: "connection refused"}}, Passing: []string{"broker"}}},
		{name: "panic is a failure", checks: []health.Check{{Name: "buggy", Check: func(context.Context) error { panic("boom") }}}, status: 503,
			want: health.Report{Status: "not ready", Failing: []health.Result{{Name: "buggy", Error: "check panicked: boom"}}, Passing: []string{}}},
		{name: "long error is cut", checks: []health.Check{fail("x", strings.Repeat("e", 1000))}, status: 503,
			want: health.Report{Status: "not ready", Failing: []health.Result{{Name: "x", Error: strings.Repeat("e", 300) + "..."}}, Passing: []string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, c, _ := start(t, tt.checks...)
			status, body := get(t, c, base+"/readyz")
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			var got health.Report
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestReadyChecksRunConcurrentlyWithTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := func(name string) health.Check {
			return health.Check{Name: name, Check: func(ctx context.Context) error {
				<-ctx.Done() // never answers by itself
				return ctx.Err()
			}}
		}
		s, err := health.New(health.Config{Address: "127.0.0.1:0", CheckTimeout: 2 * time.Second}, []health.Check{slow("a"), slow("b"), pass("c")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		rep := s.Ready(t.Context())
		if took := time.Since(begin); took != 2*time.Second {
			t.Fatalf("took %v of virtual time; checks should run concurrently, each bounded by 2s", took)
		}
		if len(rep.Failing) != 2 || !strings.Contains(rep.Failing[0].Error, "no answer within 2s (health.checkTimeout)") {
			t.Fatalf("report %+v", rep)
		}
		if !reflect.DeepEqual(rep.Passing, []string{"c"}) {
			t.Fatalf("passing %v", rep.Passing)
		}
	})
}

func TestReadinessChangesAreLoggedOnce(t *testing.T) {
	var mu sync.Mutex
	var failWith error
	check := health.Check{Name: "broker", Check: func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return failWith
	}}
	logger, logs := newLogger(t)
	s, err := health.New(health.DefaultConfig(), []health.Check{check}, logger)
	if err != nil {
		t.Fatal(err)
	}
	set := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failWith = err
	}
	s.Ready(t.Context())
	set(errors.New("disk full"))
	s.Ready(t.Context())
	s.Ready(t.Context())
	set(nil)
	s.Ready(t.Context())
	s.Ready(t.Context())
	out := logs.String()
	if n := strings.Count(out, "readiness check failing"); n != 1 {
		t.Errorf("failing logged %d times:\n%s", n, out)
	}
	if n := strings.Count(out, "readiness check passing again"); n != 1 {
		t.Errorf("recovery logged %d times:\n%s", n, out)
	}
	if !strings.Contains(out, `"component":"health"`) || !strings.Contains(out, `"check":"broker"`) {
		t.Errorf("log lacks component or check:\n%s", out)
	}
}

// TestExpectedFailureIsLoggedAtInfo: a check whose failure the proxy
// brings about on purpose (the drain of a graceful stop) makes the proxy
// not ready like any failure, but its log line is Info: a normal stop
// logged a Warn. An unexpected failure still warns.
func TestExpectedFailureIsLoggedAtInfo(t *testing.T) {
	logger, logs := newLogger(t)
	s, err := health.New(health.DefaultConfig(), []health.Check{
		{Name: "shutdown", Check: func(context.Context) error { return health.Expected(errors.New("shutting down")) }},
		fail("broker", "disk full"),
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	rep := s.Ready(t.Context())
	if rep.Status != "not ready" || len(rep.Failing) != 2 || rep.Failing[1] != (health.Result{Name: "shutdown", Error: "shutting down"}) {
		t.Errorf("report %+v, want both failing, the expected one with its own message", rep)
	}
	var levels = map[string]string{}
	for line := range strings.Lines(logs.String()) {
		var rec struct{ Level, Msg, Check string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Msg == "readiness check failing" {
			levels[rec.Check] = rec.Level
		}
	}
	if levels["shutdown"] != "INFO" || levels["broker"] != "WARN" {
		t.Errorf("levels of the failing lines %v, want shutdown INFO and broker WARN:\n%s", levels, logs.String())
	}
	if health.Expected(nil) != nil {
		t.Error("Expected(nil) is not nil")
	}
}

func TestNewRejectsBadChecks(t *testing.T) {
	for name, checks := range map[string][]health.Check{
		"empty name": {{Check: func(context.Context) error { return nil }}},
		"nil func":   {{Name: "x"}},
		"duplicate":  {pass("x"), pass("x")},
	} {
		if _, err := health.New(health.DefaultConfig(), checks, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestStartFailsWhenAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := health.New(health.Config{Address: ln.Addr().String(), CheckTimeout: time.Second}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(t.Context())
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "health.address") {
		t.Fatalf("start: %v", err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestModuleCollectsReadinessGroup(t *testing.T) {
	logger, _ := newLogger(t)
	var srv *health.Server
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(health.Config{Address: "127.0.0.1:0", CheckTimeout: time.Second}, logger),
		// Two other "adapters" contribute checks.
		fx.Module("broker", fx.Provide(health.AsCheck(func() health.Check { return pass("broker") }))),
		fx.Module("postgres", fx.Provide(health.AsCheck(func() health.Check { return fail("postgres", "no connection") }))),
		health.Module,
		fx.Populate(&srv),
	)
	app.RequireStart()
	tr := &http.Transport{}
	c := &http.Client{Transport: tr}
	status, body := get(t, c, "http://"+srv.Addr().String()+"/readyz")
	tr.CloseIdleConnections()
	app.RequireStop()
	if status != 503 || !strings.Contains(body, `"failing":[{"name":"postgres","error":"no connection"}]`) || !strings.Contains(body, `"passing":["broker"]`) {
		t.Fatalf("%d %s", status, body)
	}
}

func TestConfig(t *testing.T) {
	if c := health.DefaultConfig(); c.Address != ":9090" || c.Validate() != nil {
		t.Fatalf("defaults %+v: %v", c, c.Validate())
	}
	for _, tt := range []struct {
		cfg health.Config
		ok  bool
	}{
		{health.Config{Address: "127.0.0.1:0", CheckTimeout: time.Second}, true},
		{health.Config{Address: "", CheckTimeout: time.Second}, false},
		{health.Config{Address: "9090", CheckTimeout: time.Second}, false},
		{health.Config{Address: ":99999", CheckTimeout: time.Second}, false},
		{health.Config{Address: ":9090", CheckTimeout: 0}, false},
	} {
		if err := tt.cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: %v", tt.cfg, err)
		}
	}
}
