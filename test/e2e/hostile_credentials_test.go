package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// queryRoute calls QueryRoute with hand-made metadata; a call the gRPC
// client itself refuses to send returns its error.
func queryRoute(t *testing.T, addr string, md ...string) (*v2.Status, error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, append([]string{"x-mq-client-id", "raw-client", "x-mq-language", "GO", "x-mq-protocol", "v2", "x-mq-client-version", "5.1.4"}, md...)...)
	resp, err := v2.NewMessagingServiceClient(conn).QueryRoute(ctx, &v2.QueryRouteRequest{Topic: &v2.Resource{Name: "orders-eu"}, Endpoints: &v2.Endpoints{Addresses: []*v2.Address{{Host: "127.0.0.1", Port: 8081}}}})
	if err != nil {
		return nil, err
	}
	return resp.GetStatus(), nil
}

// TestHostileCredentials is "must be shown" 5 for credentials: access keys
// and admin paths with SQL metacharacters, unicode, NUL, invalid UTF-8
// and huge values answer UNAUTHORIZED (gRPC) or 401/4xx (admin API), never
// an internal error, and their audit events are stored (cleaned and
// bounded, SQL text literally) without stalling the audit writer: nothing
// is dropped and every event is written.
func TestHostileCredentials(t *testing.T) {
	s := newSecured(t)
	c := s.start(t)
	createTopics(t, c, "orders-eu")
	now := time.Now().UTC()
	grpcKeys := []string{
		"x'; DROP TABLE rmqproxy.users;--",
		"名前-ü",
		"a\x00b",
		"\xff\xfe",
		strings.Repeat("k", 5000),
		"admin\r\nx-mq-authorization-ak: admin",
	}
	sent := 0
	for _, ak := range grpcKeys {
		st, err := queryRoute(t, c.GRPCAddr, signed(ak, adminSecret, now, false)...)
		if err != nil {
			// The client refuses header values the HTTP/2 spec forbids;
			// nothing reached the proxy.
			t.Logf("access key %q: not sent by the gRPC client: %v", clipForLog(ak), err)
			continue
		}
		sent++
		if st.GetCode() != v2.Code_UNAUTHORIZED {
			t.Errorf("access key %q: %v, want UNAUTHORIZED", clipForLog(ak), st)
		}
	}

	// What the gRPC client refuses to send, written on a raw HTTP/2
	// connection: a Telemetry stream authenticates when it opens. A value
	// HTTP/2 forbids (NUL, CR, LF) resets the stream before rmqproxy sees
	// it; the others are answered and audited.
	h2, err := testenv.DialH2(c.GRPCAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h2.Close)
	rawIDs := map[uint32]string{}
	for _, ak := range []string{"名前-ü", "\xff\xfe", "a\x00b", "admin\r\nx-mq-authorization-ak: admin", "x'; DROP TABLE rmqproxy.users;--"} {
		md := signed(ak, adminSecret, now, false)
		id, err := h2.OpenStreamWithHeaders("/apache.rocketmq.v2.MessagingService/Telemetry", "hostile-raw",
			hpack.HeaderField{Name: md[0], Value: md[1]}, hpack.HeaderField{Name: md[2], Value: md[3]})
		if err != nil {
			t.Fatal(err)
		}
		rawIDs[id] = ak
	}
	reset := 0
	testenv.WaitFor(t, 10*time.Second, func() error {
		reset = 0
		for id, ak := range rawIDs {
			st := h2.Stream(id)
			// (After its trailers the server resets a stream the client
			// did not end; that is not a refusal.)
			switch {
			case st.Ended && (st.GRPCStatus != "0" || st.DataBytes == 0):
				return fmt.Errorf("raw stream for %q: %+v, want a status command (the UNAUTHORIZED answer) and OK trailers", clipForLog(ak), st)
			case st.Ended:
			case st.Reset:
				reset++
			default:
				return fmt.Errorf("raw stream for %q: no answer yet", clipForLog(ak))
			}
		}
		return nil
	})
	sent += len(rawIDs) - reset
	t.Logf("raw HTTP/2: %d hostile access keys answered, %d streams reset by the HTTP/2 layer", len(rawIDs)-reset, reset)
	if reset > 2 {
		t.Errorf("%d raw streams reset; only the NUL and CR LF values are invalid HTTP/2", reset)
	}

	// The admin API: unsigned and signed (as the Super user) calls on
	// hostile paths.
	hostilePaths := []string{
		"/v1/topics/" + url.PathEscape("x'; DROP TABLE rmqproxy.audit_events;--"),
		"/v1/topics/" + url.PathEscape("名前"),
		"/v1/topics/a%00b",
		"/v1/topics/%FF%FE",
		"/v1/topics/" + strings.Repeat("t", 20000),
	}
	call := func(path string, sign bool) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+c.AdminAddr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sign {
			admin.SignRequest(req, "admin", []byte(adminSecret), nil, time.Now())
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, p := range hostilePaths {
		if code := call(p, false); code != http.StatusUnauthorized {
			t.Errorf("unsigned GET %.60s: %d, want 401", p, code)
		}
		if code := call(p, true); code < 400 || code >= 500 {
			t.Errorf("signed GET %.60s: %d, want a 4xx", p, code)
		}
	}
	// A hostile access key on the admin API.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+c.AdminAddr+"/v1/topics", nil)
	admin.SignRequest(req, "x'; DROP TABLE rmqproxy.users;--", []byte(adminSecret), nil, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("hostile access key on the admin API: %d", resp.StatusCode)
	}

	// Every event reached PostgreSQL: the gRPC failures, 2 events per
	// admin path (the unsigned failure, the signed decision), the hostile
	// admin access key; SQL text stored literally; nothing dropped.
	want := sent + 2*len(hostilePaths) + 1
	testenv.WaitFor(t, 15*time.Second, func() error {
		m := scrapeAt(t, c.HealthAddr)
		if d := metricValue(m, "rmqproxy_audit_dropped_total", nil); d != 0 {
			return fmt.Errorf("%v audit events dropped", d)
		}
		if b := metricValue(m, "rmqproxy_audit_buffered_events", nil); b != 0 {
			return fmt.Errorf("%v audit events still buffered", b)
		}
		evs, err := s.store.QueryAudit(t.Context(), domain.AuditQuery{Since: now.Add(-time.Minute), Limit: 10000})
		if err != nil {
			return err
		}
		n, literal := 0, 0
		for _, e := range evs {
			hostile := e.Principal != "admin" && e.Category == domain.AuditAuthn && (e.Protocol == "grpc" || e.Protocol == "admin-http")
			if e.Protocol == "admin-http" && strings.HasPrefix(e.Operation, "admin GET /v1/topics/") {
				hostile = true
			}
			if !hostile {
				continue
			}
			n++
			if strings.Contains(e.Principal, "\x00") || strings.Contains(e.Operation, "\x00") || len(e.Principal) > 256 || len(e.Operation) > 128 {
				return fmt.Errorf("event not cleaned: %+v", e)
			}
			if e.Principal == "x'; DROP TABLE rmqproxy.users;--" || strings.Contains(e.Operation, "DROP TABLE rmqproxy.audit_events;--") {
				literal++
			}
		}
		if n != want {
			return fmt.Errorf("%d hostile events in the audit log, want %d", n, want)
		}
		if literal == 0 {
			return fmt.Errorf("no SQL text stored literally")
		}
		return nil
	})
	// The writer still writes: the tables are there and a later event lands.
	if code := call("/v1/topics", true); code != http.StatusOK {
		t.Fatalf("list after the hostile calls: %d", code)
	}
}

func clipForLog(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
