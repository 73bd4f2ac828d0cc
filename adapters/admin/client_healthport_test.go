package admin_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestClientAtTheHealthPort: the admin commands pointed at the health
// port (--admin.address 127.0.0.1:9090, where the README says "health and
// metrics") said "bad request: ... answered 404 Not Found: \"404 page not
// found\" (is ... the rmqproxy admin API?)": a bad request that was not
// the user's request, and no word of where the admin API is. The error
// now says the address is not an admin API, that the health port answers
// so, and how to give the admin API's address.
func TestClientAtTheHealthPort(t *testing.T) {
	hs, err := health.New(health.DefaultConfig(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hs.Handler())
	t.Cleanup(srv.Close)
	c, err := admin.NewClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Topics(t.Context())
	de := wantReason(t, err, domain.ReasonUnavailable)
	for _, want := range []string{
		srv.URL + " is not an rmqproxy admin API: it answered 404 Not Found to GET /v1/topics",
		"as rmqproxy's health port, health.address, does",
		"The admin API listens on the proxy's admin.address (default 127.0.0.1:8082): give that address with --admin.address HOST:PORT, RMQPROXY_ADMIN_ADDRESS or admin.address in --config FILE",
	} {
		if !strings.Contains(de.Msg, want) {
			t.Errorf("message lacks %q: %s", want, de.Msg)
		}
	}
}
