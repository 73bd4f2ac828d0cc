package admin_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
)

// FuzzClientRequests drives the client endpoints with arbitrary client
// ids, query strings and bodies: they never panic, never answer 5xx (no
// client is connected, so every request is refused by its input or as
// NOT_FOUND), and every error answer is a JSON ErrorBody with a known code.
func FuzzClientRequests(f *testing.F) {
	for _, s := range []struct {
		route     uint8
		id, query string
		body      string
	}{
		{0, "", "group=g&topic=t", ``},
		{0, "", "tpoic=t", ``},
		{0, "", "%zz", ``},
		{1, "vm@123@0@abc", "", `{}`},
		{1, "", "", `{"nonce":"1"}`},
		{2, "c1", "", `{"topic":"t","messageId":"01AB"}`},
		{2, "c1", "", `{"topic":"a b","messageId":""}`},
		{2, "%2F..", "", `{"topic":7}`},
		{2, "c1", "", "\xff"},
	} {
		f.Add(s.route, s.id, s.query, []byte(s.body))
	}
	log := slog.New(slog.DiscardHandler)
	cfg := application.DefaultConfig()
	f.Fuzz(func(t *testing.T, route uint8, id, query string, body []byte) {
		s := admin.New(admin.Config{Enabled: true}, application.NewAdmin(newFakeStore(), fixedClock{}), log)
		s.UseClientOps(application.NewClientOps(cfg, application.NewSessions(cfg, fixedClock{}, log), nil, nil, log))
		method, path := "GET", "/v1/clients?"+query
		switch route % 3 {
		case 1:
			method, path = "POST", "/v1/clients/"+url.PathEscape(id)+"/stack"
		case 2:
			method, path = "POST", "/v1/clients/"+url.PathEscape(id)+"/verify"
		}
		u, err := url.Parse(path)
		if err != nil {
			return // not a request an HTTP client can send
		}
		req := httptest.NewRequest(method, "http://127.0.0.1:8082/", bytes.NewReader(body))
		req.URL = u
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", method, path, body, rec.Code, rec.Body.String())
		}
		if rec.Code >= 400 {
			var eb admin.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
				t.Fatalf("error answer is not JSON: %s", rec.Body.String())
			}
			if _, ok := admin.ReasonOfCode(eb.Code); !ok && eb.Code != "METHOD_NOT_ALLOWED" || eb.Message == "" {
				t.Fatalf("error answer %+v", eb)
			}
		}
	})
}
