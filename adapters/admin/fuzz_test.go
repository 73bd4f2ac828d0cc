package admin_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
)

var routes = []struct{ method, path string }{
	{"POST", "/v1/topics"},
	{"PUT", "/v1/topics/"},
	{"POST", "/v1/groups"},
	{"PUT", "/v1/groups/"},
	{"GET", "/v1/topics/"},
	{"DELETE", "/v1/groups/"},
	{"GET", "/v1/groups/"}, // + name + /stats
}

// FuzzRequest drives the real handler with arbitrary bodies and names on
// every route that decodes input: it never panics, never answers 500 (the
// store never fails, so any 500 is a bug in decoding or mapping), and every
// error answer is a JSON ErrorBody with a known code.
func FuzzRequest(f *testing.F) {
	seeds := []struct {
		route uint8
		name  string
		body  string
	}{
		{0, "", `{"name":"t","type":"FIFO","queueCount":4,"description":"d"}`},
		{0, "", `{"name":"t","type":"fifo","queueCount":-1}`},
		{0, "", `{"name":"t","queueCount":1e3}`},
		{1, "t", `{"type":"MIXED","queueCount":16,"description":null}`},
		{1, "a%b|c", `{}`},
		{2, "", `{"name":"g","maxDeliveryAttempts":3,"retryPolicy":{"exponential":{"initial":"1s","max":"2h","multiplier":2}},"orderly":true}`},
		{2, "", `{"name":"g","retryPolicy":{"customized":["1s","5s","1h30m"]}}`},
		{2, "", `{"name":"g","retryPolicy":{"exponential":{"initial":"1s","max":"2h","multiplier":1e400}}}`},
		{3, "g", `{"retryPolicy":{"customized":["-1s"]}}`},
		{3, "g", `{"retryPolicy":{"exponential":{}}}`},
		{0, "", `{"name":"t"}{}`},
		{0, "", `[`},
		{0, "", "\xff"},
		{4, "..", ``},
		{5, "%2F", ``},
		{6, "g", ``},
	}
	for _, s := range seeds {
		f.Add(s.route, s.name, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, route uint8, name string, body []byte) {
		store := newFakeStore()
		s := admin.New(admin.Config{Enabled: true}, application.NewAdmin(store, fixedClock{}), slog.New(slog.DiscardHandler))
		h := s.Handler()
		for _, seed := range []string{"t", "g"} { // something to update
			store.topics[seed] = domain.Topic{Name: seed, Type: domain.MessageTypeNormal, QueueCount: 8, Permission: domain.PermReadWrite}
			store.groups[seed] = domain.NewConsumerGroup(seed)
		}
		r := routes[int(route)%len(routes)]
		path := r.path
		if strings.HasSuffix(path, "/") {
			path += url.PathEscape(name)
			if route%uint8(len(routes)) == 6 {
				path += "/stats"
			}
		}
		req := httptest.NewRequest(r.method, "http://127.0.0.1:8082"+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", r.method, path, body, rec.Code, rec.Body.String())
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

// FuzzGuard drives the Host and Content-Type checks with arbitrary headers:
// they never panic, and every refusal is a JSON ErrorBody (403 FORBIDDEN or
// 415 UNSUPPORTED_MEDIA_TYPE) with a message.
func FuzzGuard(f *testing.F) {
	for _, s := range []struct{ host, ctype string }{
		{"127.0.0.1:8082", "application/json"},
		{"localhost", "application/json; charset=utf-8"},
		{"[::1]:8082", "text/plain"},
		{"evil.example", "application/json"},
		{"[", ""},
		{"a:b:c", "application/json;;"},
		{"", "multipart/form-data; boundary=\""},
	} {
		f.Add(s.host, s.ctype)
	}
	f.Fuzz(func(t *testing.T, host, ctype string) {
		s := admin.New(admin.Config{Enabled: true, Address: "127.0.0.1:8082", AllowedHosts: []string{"admin.example", "10.0.0.1:8082"}},
			application.NewAdmin(newFakeStore(), fixedClock{}), slog.New(slog.DiscardHandler))
		req := httptest.NewRequest("POST", "http://127.0.0.1:8082/v1/topics", strings.NewReader(`{"name":"t"}`))
		req.Host = host
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case 201, 400:
			return
		case 403, 415:
		default:
			t.Fatalf("Host %q, Content-Type %q: %d %s", host, ctype, rec.Code, rec.Body.String())
		}
		var eb admin.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Message == "" ||
			eb.Code != map[int]string{403: "FORBIDDEN", 415: admin.CodeUnsupportedMediaType}[rec.Code] {
			t.Fatalf("refusal %d %s", rec.Code, rec.Body.String())
		}
	})
}

// FuzzDecode checks the strict decoder alone: it never panics, and when it
// accepts a body, re-encoding the result decodes to the same value.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"name":"g","retryPolicy":{"customized":["1s"]}}`, `{"name":"x","orderly":false,"description":""}`, `{}`, `null`, `{"name":1}`, `{"maxDeliveryAttempts":2147483648}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := admin.DecodeCreateGroupRequest(bytes.NewReader(body))
		if err != nil {
			if domain.ReasonOf(err) != domain.ReasonBadRequest || domain.MessageOf(err) == "" {
				t.Fatalf("decode error %v is not a BadRequest with a message", err)
			}
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		w, err := admin.DecodeCreateGroupRequest(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("re-decode %s: %v", again, err)
		}
		a, _ := json.Marshal(w)
		if !bytes.Equal(a, again) {
			t.Fatalf("round trip changed %s to %s", again, a)
		}
		if _, err := v.Spec(); err != nil && domain.ReasonOf(err) != domain.ReasonBadRequest {
			t.Fatalf("Spec: %v", err)
		}
	})
}
