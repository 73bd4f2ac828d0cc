package health

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestProfilesOnlyForLocalClients: health.address listens on every
// interface by default (for /metrics and the probes); the runtime profiles
// answer only a loopback peer that names the host by a loopback name.
func TestProfilesOnlyForLocalClients(t *testing.T) {
	served := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	cases := []struct {
		peer, host string
		want       int
	}{
		{"127.0.0.1:50000", "127.0.0.1:9090", http.StatusOK},
		{"127.0.0.1:50000", "localhost:9090", http.StatusOK},
		{"[::1]:50000", "[::1]:9090", http.StatusOK},
		{"[::ffff:127.0.0.1]:50000", "localhost", http.StatusOK},
		{"192.0.2.7:50000", "127.0.0.1:9090", http.StatusForbidden},
		{"[2001:db8::7]:50000", "localhost:9090", http.StatusForbidden},
		{"127.0.0.1:50000", "proxy.example:9090", http.StatusForbidden},
		{"127.0.0.1:50000", "192.0.2.1:9090", http.StatusForbidden},
		{"not-an-address", "localhost", http.StatusForbidden},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodGet, "/debug/pprof/heap", nil)
		r.RemoteAddr, r.Host = c.peer, c.host
		w := httptest.NewRecorder()
		localOnly(served).ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("peer %s, Host %s: %d, want %d", c.peer, c.host, w.Code, c.want)
		}
	}
}
