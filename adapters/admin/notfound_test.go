package admin_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/internal/httpserve"
	"github.com/rmqproxy/rmqproxy/application"
)

// TestNotFoundListsWhatIsServed: the 404 of an unknown path listed
// /v1/topics, /v1/groups and /v1/clients but not /metrics, which the API
// served too (otel mounts it): an operator who mistyped /metric was not
// told where the metrics are. It lists every path served, mounted ones
// included, and only those.
func TestNotFoundListsWhatIsServed(t *testing.T) {
	logger, _ := newLogger(t)
	for _, mounted := range []bool{false, true} {
		srv := admin.New(admin.Config{Enabled: true, Address: "127.0.0.1:0"}, application.NewAdmin(newFakeStore(), fixedClock{}), logger)
		if mounted {
			srv.Mount(httpserve.Route{Pattern: "GET /metrics", Handler: http.NotFoundHandler()})
		}
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/metric", nil)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		body := rec.Body.String()
		if rec.Code != http.StatusNotFound {
			t.Fatalf("GET /metric: %d %s", rec.Code, body)
		}
		for _, p := range []string{"/v1/topics", "/v1/groups", "/v1/clients"} {
			if !strings.Contains(body, p) {
				t.Errorf("404 does not list %s: %s", p, body)
			}
		}
		if strings.Contains(body, "/metrics") != mounted {
			t.Errorf("with /metrics mounted %v, the 404 says: %s", mounted, body)
		}
	}
}
