package admin

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestAdminAccessNamesWhatTheHandlerActsOn: the resource authorized for a
// create or a verify is the one the handler decodes from the same body,
// also when the body repeats the key in another case (the handler's
// decoder matches keys case-insensitively and keeps the last).
func TestAdminAccessNamesWhatTheHandlerActsOn(t *testing.T) {
	for _, tc := range []struct {
		path, body string
		want       domain.Resource
		decoded    func(body string) (string, error)
	}{
		{"/v1/topics", `{"name":"team-a-x","NAME":"payments"}`, domain.TopicResource("payments"),
			func(b string) (string, error) {
				v, err := decodeBody[CreateTopicRequest](strings.NewReader(b))
				return v.Name, err
			}},
		{"/v1/topics", `{"Name":"payments"}`, domain.TopicResource("payments"),
			func(b string) (string, error) {
				v, err := decodeBody[CreateTopicRequest](strings.NewReader(b))
				return v.Name, err
			}},
		{"/v1/groups", `{"name":"g-a","nAmE":"g-payments"}`, domain.GroupResource("g-payments"),
			func(b string) (string, error) {
				v, err := decodeBody[CreateGroupRequest](strings.NewReader(b))
				return v.Name, err
			}},
		{"/v1/clients/c1/verify", `{"topic":"team-a-x","TOPIC":"payments","messageId":"m"}`, domain.TopicResource("payments"),
			func(b string) (string, error) {
				v, err := decodeBody[VerifyMessageRequest](strings.NewReader(b))
				return v.Topic, err
			}},
	} {
		r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1"+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		got := adminAccess(r, netip.MustParseAddr("127.0.0.1"))
		if len(got) != 1 || got[0].Resource != tc.want {
			t.Errorf("%s %s: authorized %+v, want %v", tc.path, tc.body, got, tc.want)
		}
		name, err := tc.decoded(tc.body)
		if err != nil || name != tc.want.Name {
			t.Errorf("%s %s: the handler decodes %q (%v), the test expects %q", tc.path, tc.body, name, err, tc.want.Name)
		}
	}
}

// FuzzAdminCredentials drives the admin signature's header and body
// checks with arbitrary values: they never panic; credentials without a
// fault hold exactly the string to sign of the call as sent, and only for
// the full SignedHeaders, a well-formed date-time, digest and nonce, and a
// body of that digest.
func FuzzAdminCredentials(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dt := now.Format(application.DateTimeLayout)
	good := application.SignAdminRequest("root", []byte("s"), "GET", "/v1/topics", contentSHA256(nil), dt, "0123456789abcdef0123456789abcdef")
	old, oldDT := application.SignRequest("root", []byte("s"), now)
	for _, s := range []struct{ method, target, auth, dt, digest, nonce, body string }{
		{"GET", "/v1/topics", good, dt, contentSHA256(nil), "0123456789abcdef0123456789abcdef", ""},
		{"POST", "/v1/topics", good, dt, contentSHA256([]byte(`{"name":"t"}`)), "0123456789abcdef", `{"name":"t"}`},
		{"GET", "/v1/topics", old, oldDT, "", "", ""},
		{"DELETE", "/v1/topics/a%2Fb?x=1", strings.Replace(good, "x-mq-nonce", "X-MQ-NONCE", 1), dt, contentSHA256(nil), "n-_N0123456789ab", ""},
		{"GET", "/v1/topics", "MQv2-HMAC-SHA1 Credential=root, SignedHeaders=x-mq-date-time;x-mq-nonce, Signature=00", dt, contentSHA256(nil), "0123456789abcdef", ""},
		{"GET", "/", "MQv2-HMAC-SHA1 Credential=r, SignedHeaders=" + application.AdminSignedHeaders + ", SignedHeaders=x-mq-date-time, Signature=" + strings.Repeat("0", 40), dt, "", "", ""},
		{"PUT", "/v1/groups/g", good, "20261302T030405Z", strings.Repeat("g", 64), strings.Repeat("n", 65), "\xff"},
	} {
		f.Add(s.method, s.target, s.auth, s.dt, s.digest, s.nonce, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, target, auth, dt, digest, nonce string, body []byte) {
		r, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:8082/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Method, r.RequestURI = method, target
		for h, v := range map[string]string{HeaderAuthorization: auth, HeaderDateTime: dt, HeaderContentSHA256: digest, HeaderNonce: nonce} {
			if v != "" {
				r.Header.Set(h, v)
			}
		}
		c, call := adminCredentials(r, now)
		if c.Fault != "" {
			if c.Content != nil || c.Signature != nil || call.nonce != "" {
				t.Fatalf("fault %s with credentials %+v %+v", c.Fault, c, call)
			}
			return
		}
		_, signed, _, perr := application.ParseAdminAuthorization(auth)
		if perr != nil || signed != application.AdminSignedHeaders || !application.ValidAdminNonce(nonce) || call.nonce != nonce ||
			digest != contentSHA256(body) || len(c.Signature) != 20 {
			t.Fatalf("accepted %q %q %q %q %q %q", method, target, auth, dt, digest, nonce)
		}
		if want := application.AdminStringToSign(method, requestTarget(r), digest, dt, nonce); !bytes.Equal(c.Content, want) {
			t.Fatalf("content %q, want %q", c.Content, want)
		}
		if got, _ := io.ReadAll(r.Body); !bytes.Equal(got, body) {
			t.Fatalf("the body put back is %q, not %q", got, body)
		}
	})
}

// TestRequestTarget: the target signed is the request line's, in origin
// form.
func TestRequestTarget(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/topics/a%2Fb?x=1":           "/v1/topics/a%2Fb?x=1",
		"/v1/%74opics":                   "/v1/%74opics",
		"http://h:8082/v1/topics?q":      "/v1/topics?q",
		"https://h/v1/groups/g%20/stats": "/v1/groups/g%20/stats",
		"http://h":                       "/",
		"http://h?x":                     "/?x",
		"*":                              "*",
	} {
		r := &http.Request{RequestURI: in}
		if got := requestTarget(r); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

type failingBody struct{}

func (failingBody) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestUnreadableSignedBody: a body that cannot be read is its own fault,
// not one too large.
func TestUnreadableSignedBody(t *testing.T) {
	now := time.Now()
	r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:8082/v1/topics", io.NopCloser(failingBody{}))
	if err != nil {
		t.Fatal(err)
	}
	SignRequest(r, "root", []byte("s"), []byte(`{"name":"t"}`), now)
	if c, _ := adminCredentials(r, now); c.Fault != reasonBodyUnreadable {
		t.Fatalf("fault %q, want %q", c.Fault, reasonBodyUnreadable)
	}
}

// TestAdminAccessOfAReset: a reset is Update on the group and on the topic
// the handler decodes, as INVOKE_BROKER_TO_RESET_OFFSET.
func TestAdminAccessOfAReset(t *testing.T) {
	body := `{"topic":"team-a-x","TOPIC":"payments","to":"1h"}`
	r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/v1/groups/g%2Dpay/reset", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got := adminAccess(r, netip.MustParseAddr("127.0.0.1"))
	if len(got) != 2 || got[0].Resource != domain.GroupResource("g-pay") || got[0].Actions != domain.ActionUpdate ||
		got[1].Resource != domain.TopicResource("payments") || got[1].Actions != domain.ActionUpdate {
		t.Fatalf("authorized %+v", got)
	}
	v, err := decodeBody[ResetOffsetRequest](strings.NewReader(body))
	if err != nil || v.Topic != "payments" {
		t.Fatalf("the handler decodes %+v (%v)", v, err)
	}
}
