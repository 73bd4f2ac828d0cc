package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestAdminSignatureBindsTheCall: with auth.enabled the CLI's calls, with
// and without bodies, are accepted; a captured call cannot be made again,
// nor its signature used for another method, path or body, nor can an old
// CLI's date-only signature be used; each refusal is in the audit log
// (PostgreSQL) with its reason and the request id the API answered.
func TestAdminSignatureBindsTheCall(t *testing.T) {
	testenv.LocalOnly(t, "the admin API's authentication does not depend on the mode")
	s := newSecured(t)
	c := s.start(t)
	since := time.Now().Add(-time.Minute)
	t.Setenv("RMQPROXY_ADMIN_SECRET_KEY", adminSecret)
	signedFlags := []string{"--admin.address=" + c.AdminAddr, "--admin.accessKey=admin"}
	for _, args := range [][]string{
		{"topic", "create", "sig-topic", "--queues", "4"},
		{"topic", "update", "sig-topic", "--description", "signed"},
		{"group", "create", "sig-group", "--maxDeliveryAttempts", "3"},
		{"group", "stats", "sig-group"},
		{"topic", "list"},
		{"client", "list"},
	} {
		if code, out := testenv.CLI(t, append(args, signedFlags...)...); code != 0 {
			t.Fatalf("rmqproxy %s: exit %d: %s", strings.Join(args, " "), code, out)
		}
	}

	base := "http://" + c.AdminAddr
	request := func(method, path, body string) *http.Request {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" || method == http.MethodPost {
			req.Header.Set("Content-Type", "application/json")
		}
		return req
	}
	send := func(req *http.Request) (int, string, string) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get(admin.HeaderRequestID)
	}
	copyHeaders := func(from, to *http.Request) *http.Request {
		for _, h := range []string{admin.HeaderAuthorization, admin.HeaderDateTime, admin.HeaderContentSHA256, admin.HeaderNonce} {
			to.Header.Set(h, from.Header.Get(h))
		}
		return to
	}
	wantReasons := map[string]string{} // request id → audit reason

	list := request(http.MethodGet, "/v1/topics", "")
	admin.SignRequest(list, "admin", []byte(adminSecret), nil, time.Now())
	// Its signature on another method and path, another body: refused,
	// and nothing is deleted or created.
	code, msg, id := send(copyHeaders(list, request(http.MethodDelete, "/v1/topics/sig-topic", "")))
	if code != http.StatusUnauthorized {
		t.Fatalf("DELETE with a GET's signature: %d %s", code, msg)
	}
	wantReasons[id] = application.ReasonBadSignature
	code, msg, id = send(copyHeaders(list, request(http.MethodPost, "/v1/topics", `{"name":"evil"}`)))
	if code != http.StatusUnauthorized {
		t.Fatalf("POST with a GET's signature: %d %s", code, msg)
	}
	wantReasons[id] = application.ReasonContentMismatch
	// The call itself, once; again: refused.
	replay := copyHeaders(list, request(http.MethodGet, "/v1/topics", ""))
	if code, msg, _ := send(list); code != http.StatusOK || !strings.Contains(msg, "sig-topic") || strings.Contains(msg, "evil") {
		t.Fatalf("the signed call: %d %s", code, msg)
	}
	code, msg, id = send(replay)
	if code != http.StatusUnauthorized || !strings.Contains(msg, "already made") {
		t.Fatalf("the call again: %d %s", code, msg)
	}
	wantReasons[id] = application.ReasonReplayedNonce
	// An old CLI's signature: the date-time only.
	old := request(http.MethodGet, "/v1/topics", "")
	auth, dt := application.SignRequest("admin", []byte(adminSecret), time.Now())
	old.Header.Set(admin.HeaderAuthorization, auth)
	old.Header.Set(admin.HeaderDateTime, dt)
	code, msg, id = send(old)
	if code != http.StatusUnauthorized || !strings.Contains(msg, "rmqproxy CLI") {
		t.Fatalf("an old CLI's signature: %d %s", code, msg)
	}
	wantReasons[id] = application.ReasonIncompleteSignature
	if code, out := testenv.CLI(t, append([]string{"topic", "describe", "sig-topic"}, signedFlags...)...); code != 0 || !strings.Contains(out, "signed") {
		t.Fatalf("sig-topic after the refused calls: exit %d: %s", code, out)
	}

	testenv.WaitFor(t, 15*time.Second, func() error {
		evs, err := s.store.QueryAudit(t.Context(), domain.AuditQuery{Since: since, Category: domain.AuditAuthn, Limit: 1000})
		if err != nil {
			return err
		}
		got := map[string]domain.AuditEvent{}
		for _, e := range evs {
			got[e.RequestID] = e
		}
		for id, reason := range wantReasons {
			e, ok := got[id]
			if !ok {
				return fmt.Errorf("no authentication event for request %s (%s)", id, reason)
			}
			if e.Reason != reason || e.Protocol != "admin-http" || e.Principal != "admin" || e.Decision != domain.AuditDeny {
				return fmt.Errorf("request %s audited %+v, want reason %s", id, e, reason)
			}
		}
		return nil
	})
}
