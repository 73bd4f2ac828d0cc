package admin

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Request headers of a signed admin call: the same signature the official
// clients send over gRPC (application.SignRequest makes them).
const (
	HeaderAuthorization = "Authorization"
	HeaderDateTime      = "X-Mq-Date-Time"
	// HeaderRequestID answers the id of the call in the audit log.
	HeaderRequestID = "X-Request-Id"
)

// newRequestID returns 16 random hex digits.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// adminClockSkew bounds the admin CLI's timestamp: it signs in UTC.
const adminClockSkew = 5 * time.Minute

// UseSecurity makes the server require, when sec.Enabled(), a signed
// request from an enabled Super user on every call (401 UNAUTHORIZED for a
// missing or bad signature, 403 FORBIDDEN for a user who is not Super),
// then authorizes the call's access (see adminAccess) like a data-plane
// request; every call's outcome, allowed or not, is audited as protocol
// admin-http.
func (s *Server) UseSecurity(sec *application.Security) { s.sec = sec }

func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.sec == nil || !s.sec.Enabled() {
			next.ServeHTTP(w, r)
			return
		}
		// Each call gets an id, answered in X-Request-Id and kept in its
		// audit events, so an operator can match the two.
		info := ports.RequestInfo{Protocol: "admin-http", RequestID: newRequestID()}
		w.Header().Set(HeaderRequestID, info.RequestID)
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			info.RemoteAddr = ap
		}
		ctx := ports.WithRequestInfo(r.Context(), info)
		op := "admin " + r.Method + " " + r.URL.Path
		p, err := s.sec.Authenticate(ctx, op, adminCredentials(r, time.Now()))
		switch {
		case err != nil:
		case p.User.Type != domain.UserSuper:
			err = s.sec.Refuse(ctx, p, op, "admin_requires_super_user")
			err = domain.Errorf(domain.ReasonForbidden, "the admin API answers Super users only; %s is a Normal user (%s)", p.User.Name, domain.MessageOf(err))
		default:
			err = s.sec.AuthorizeAudited(ctx, p, op, adminAccess(r, info.RemoteAddr.Addr()))
		}
		if err != nil {
			s.writeError(w, r.WithContext(ctx), err)
			return
		}
		next.ServeHTTP(w, r.WithContext(application.WithPrincipal(ctx, p)))
	})
}

func adminCredentials(r *http.Request, now time.Time) application.Credentials {
	auth := r.Header.Values(HeaderAuthorization)
	if len(auth) == 0 {
		return application.Credentials{Fault: application.ReasonMissingCredentials}
	}
	ak, sig, err := application.ParseAuthorization(auth[len(auth)-1])
	if err != nil || len(auth) > 1 {
		return application.Credentials{AccessKey: ak, Fault: application.ReasonMalformed}
	}
	dt := r.Header.Get(HeaderDateTime)
	ts, err := application.ParseDateTime(dt)
	if err != nil {
		return application.Credentials{AccessKey: ak, Fault: application.ReasonMalformed}
	}
	if !application.WithinClockSkew(application.ClockSkewUTC, adminClockSkew, ts, now) {
		return application.Credentials{AccessKey: ak, Fault: application.ReasonClockSkew}
	}
	return application.Credentials{AccessKey: ak, Content: []byte(dt), Signature: sig}
}

// adminAccess maps an admin call to what it accesses, as the Remoting
// admin request codes do: reading, creating, updating or deleting one topic
// or group (the name of a created one comes from the body, which is put
// back for the handler), listing them (Cluster LIST), having a consumer
// verify a message (Sub on its topic, as CONSUME_MESSAGE_DIRECTLY) and
// anything else, such as listing clients or asking one for its stacks (as
// GET_PRODUCER_CONNECTION_LIST), /metrics or an unknown path (Cluster GET).
func adminAccess(r *http.Request, ip netip.Addr) []domain.AccessRequest {
	one := func(res domain.Resource, a domain.Action) []domain.AccessRequest {
		return []domain.AccessRequest{{Resource: res, Actions: a, SourceIP: ip}}
	}
	var segs []string
	if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/"); ok {
		segs = strings.Split(rest, "/")
		for i, seg := range segs {
			if u, err := url.PathUnescape(seg); err == nil {
				segs[i] = u
			}
		}
	}
	var resource func(string) domain.Resource
	if len(segs) > 0 {
		switch segs[0] {
		case "topics":
			resource = domain.TopicResource
		case "groups":
			resource = domain.GroupResource
		}
	}
	switch {
	case len(segs) == 3 && segs[0] == "clients" && segs[2] == "verify" && r.Method == http.MethodPost:
		// As CONSUME_MESSAGE_DIRECTLY: Sub on the message's topic.
		var body struct {
			Topic string `json:"topic"`
		}
		peekBody(r, &body)
		return one(domain.TopicResource(body.Topic), domain.ActionSub)
	case resource == nil:
	case len(segs) == 1 && r.Method == http.MethodGet:
		return one(domain.ClusterResource(""), domain.ActionList)
	case len(segs) == 1 && r.Method == http.MethodPost:
		var body struct {
			Name string `json:"name"`
		}
		peekBody(r, &body)
		return one(resource(body.Name), domain.ActionCreate)
	case len(segs) == 2 && r.Method == http.MethodGet, len(segs) == 3 && segs[2] == "stats" && r.Method == http.MethodGet:
		return one(resource(segs[1]), domain.ActionGet)
	case len(segs) == 2 && r.Method == http.MethodPut:
		return one(resource(segs[1]), domain.ActionUpdate)
	case len(segs) == 2 && r.Method == http.MethodDelete:
		return one(resource(segs[1]), domain.ActionDelete)
	}
	return one(domain.ClusterResource(""), domain.ActionGet)
}

// peekBody decodes a copy of r's JSON body into v, a struct with the field
// the handler will act on, and puts the body back. It decodes as the
// handler does (encoding/json into a struct: keys match field names
// case-insensitively, and of several matching keys the last wins), so that
// what is authorized is what the handler creates: a lookup of the exact
// key in a map authorized "name" of {"name":"a","NAME":"b"} while the
// handler created b. A body that does not parse leaves v as it is (the
// handler then refuses it precisely).
func peekBody(r *http.Request, v any) {
	if r.Body == nil {
		return
	}
	data, _ := io.ReadAll(io.LimitReader(r.Body, MaxRequestBody+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(data), r.Body), r.Body}
	_ = json.Unmarshal(data, v)
}
