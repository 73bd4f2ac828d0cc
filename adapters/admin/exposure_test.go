package admin_test

import (
	"io"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
)

func TestCheckExposure(t *testing.T) {
	tlsOn := admin.TLSConfig{Enabled: true, CertFile: "c.pem", KeyFile: "k.pem", ReloadInterval: time.Second}
	for _, tt := range []struct {
		address string
		auth    bool
		tls     admin.TLSConfig
		want    string // "" when allowed
	}{
		{"127.0.0.1:8082", false, admin.TLSConfig{}, ""},
		{"127.1.2.3:8082", false, admin.TLSConfig{}, ""},
		{"[::1]:8082", false, admin.TLSConfig{}, ""},
		{"localhost:8082", false, admin.TLSConfig{}, ""},
		{"LocalHost.:8082", false, admin.TLSConfig{}, ""},
		{"[::ffff:127.0.0.1]:8082", false, admin.TLSConfig{}, ""},
		{":8082", false, admin.TLSConfig{}, "needs auth.enabled true (every admin call then needs a Super user's signature) and admin.tls.enabled true"},
		{"0.0.0.0:8082", true, admin.TLSConfig{}, "needs admin.tls.enabled true"},
		{"[::]:8082", false, tlsOn, "needs auth.enabled true"},
		{"10.0.0.5:8082", false, tlsOn, "needs auth.enabled true"},
		{"admin.example.com:8082", true, admin.TLSConfig{}, "needs admin.tls.enabled true"},
		{"localhost.example.com:8082", false, admin.TLSConfig{}, "needs auth.enabled"},
		{"0.0.0.0:8082", true, tlsOn, ""},
		{"10.0.0.5:8082", true, tlsOn, ""},
	} {
		cfg := admin.Config{Enabled: true, Address: tt.address, TLS: tt.tls}
		err := cfg.CheckExposure(tt.auth)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s auth=%v tls=%v: %v", tt.address, tt.auth, tt.tls.Enabled, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "admin.address")):
			t.Errorf("%s auth=%v tls=%v: got %v, want an error containing %q", tt.address, tt.auth, tt.tls.Enabled, err, tt.want)
		}
	}
	if err := (admin.Config{Enabled: false, Address: ":8082"}).CheckExposure(false); err != nil {
		t.Errorf("a disabled API is never exposed: %v", err)
	}
	for _, tc := range []admin.TLSConfig{{Enabled: true}, {Enabled: true, CertFile: "c.pem"}, {ReloadInterval: -1}} {
		if err := (admin.Config{Enabled: true, Address: "127.0.0.1:0", TLS: tc}).Validate(); err == nil {
			t.Errorf("tls %+v validated", tc)
		}
	}
}

// TestAdminAccess: each admin call maps to the resource and action it
// touches, as the Remoting admin codes do.
func TestAdminAccess(t *testing.T) {
	ip := netip.MustParseAddr("10.1.2.3")
	for _, tt := range []struct {
		method, path, body string
		want               string
	}{
		{"GET", "/v1/topics", "", "Cluster: List"},
		{"POST", "/v1/topics", `{"name":"orders","queueCount":4}`, "Topic:orders Create"},
		{"POST", "/v1/topics", `not json`, "Topic: Create"},
		{"GET", "/v1/topics/orders", "", "Topic:orders Get"},
		{"PUT", "/v1/topics/orders", `{}`, "Topic:orders Update"},
		{"DELETE", "/v1/topics/orders", "", "Topic:orders Delete"},
		{"DELETE", "/v1/topics/a%2Fb", "", "Topic:a/b Delete"},
		{"GET", "/v1/groups", "", "Cluster: List"},
		{"POST", "/v1/groups", `{"name":"g1"}`, "Group:g1 Create"},
		{"GET", "/v1/groups/g1", "", "Group:g1 Get"},
		{"GET", "/v1/groups/g1/stats", "", "Group:g1 Get"},
		{"PUT", "/v1/groups/g1", `{}`, "Group:g1 Update"},
		{"DELETE", "/v1/groups/g1", "", "Group:g1 Delete"},
		{"GET", "/v1/clients", "", "Cluster: Get"},
		{"POST", "/v1/clients/c1/stack", `{}`, "Cluster: Get"},
		{"POST", "/v1/clients/c1/verify", `{"topic":"orders","messageId":"m"}`, "Topic:orders Sub"},
		{"POST", "/v1/clients/c1/verify", `{"topic":7}`, "Topic: Sub"},
		{"GET", "/metrics", "", "Cluster: Get"},
		{"GET", "/v1/other", "", "Cluster: Get"},
		{"PATCH", "/v1/topics/orders", "", "Cluster: Get"},
	} {
		r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		reqs := admin.AdminAccess(r, ip)
		if len(reqs) != 1 || reqs[0].SourceIP != ip {
			t.Fatalf("%s %s: %+v", tt.method, tt.path, reqs)
		}
		if got := reqs[0].Resource.Key() + " " + reqs[0].Actions.String(); got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.method, tt.path, got, tt.want)
		}
		// The body is still there for the handler.
		if rest, err := io.ReadAll(r.Body); err != nil || string(rest) != tt.body {
			t.Errorf("%s %s: body left %q (%v), want %q", tt.method, tt.path, rest, err, tt.body)
		}
	}
}
