package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Request headers of a signed admin call (docs/security.md, "Signing admin
// calls"): the authorization, in the format the official clients send over
// gRPC, signs application.AdminStringToSign of the method, the request
// target and the three X-Mq headers.
const (
	HeaderAuthorization = "Authorization"
	HeaderDateTime      = "X-Mq-Date-Time"
	// HeaderContentSHA256 is the lower-case hex SHA-256 of the body (of
	// no bytes for a call without one).
	HeaderContentSHA256 = "X-Mq-Content-Sha256"
	// HeaderNonce makes each call's signature unique: a nonce the server
	// has accepted within the window is refused.
	HeaderNonce = "X-Mq-Nonce"
	// HeaderRequestID answers the id of the call in the audit log.
	HeaderRequestID = "X-Request-Id"
)

// newRequestID returns 16 random hex digits.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newNonce returns 32 random hex digits (128 bits).
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// adminClockSkew bounds the admin CLI's timestamp: it signs in UTC.
const adminClockSkew = 5 * time.Minute

func contentSHA256(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// SignRequest signs req, whose body is body (nil for none), as accessKey
// with secret at now: it sets the Authorization, X-Mq-Date-Time,
// X-Mq-Content-Sha256 and X-Mq-Nonce headers, over req's method and
// request target (req.URL.RequestURI(), what the Go client writes on the
// request line). The body must be the bytes req sends.
func SignRequest(req *http.Request, accessKey string, secret, body []byte, now time.Time) {
	digest, dt, nonce := contentSHA256(body), now.UTC().Format(application.DateTimeLayout), newNonce()
	req.Header.Set(HeaderAuthorization, application.SignAdminRequest(accessKey, secret, req.Method, req.URL.RequestURI(), digest, dt, nonce))
	req.Header.Set(HeaderDateTime, dt)
	req.Header.Set(HeaderContentSHA256, digest)
	req.Header.Set(HeaderNonce, nonce)
}

// UseSecurity makes the server require, when sec.Enabled(), a signed
// request from an enabled Super user on every call (401 UNAUTHORIZED for a
// missing or bad signature, one that does not cover the whole call or a
// call made again, 403 FORBIDDEN for a user who is not Super), then
// authorizes the call's access (see adminAccess) like a data-plane
// request; every call's outcome, allowed or not, is audited as protocol
// admin-http.
func (s *Server) UseSecurity(sec *application.Security) { s.sec = sec }

// errOldSignature answers a call signed the way CLIs before the admin
// signature covered the whole call did (the date-time only).
var errOldSignature = domain.Errorf(domain.ReasonUnauthorized,
	"this admin call's signature does not cover its method, path, body and nonce (SignedHeaders must be %s); "+
		"an rmqproxy CLI older than this proxy signs that way: use the rmqproxy CLI of the proxy's version", application.AdminSignedHeaders)

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
		c, call := adminCredentials(r, time.Now())
		p, err := s.sec.Authenticate(ctx, op, c)
		switch {
		case err != nil:
			switch c.Fault {
			case application.ReasonIncompleteSignature:
				err = errOldSignature
			case reasonBodyTooLarge:
				err = domain.Errorf(domain.ReasonBodyTooLarge, "request body is larger than the limit of %d bytes", MaxRequestBody)
			case reasonBodyUnreadable:
				err = domain.Errorf(domain.ReasonBadRequest, "the request body could not be read")
			}
		case p.User.Type != domain.UserSuper:
			// Refused whatever its nonce: a Normal user's calls take no
			// room in the nonce memory, so they cannot fill it.
			err = s.sec.Refuse(ctx, p, op, "admin_requires_super_user")
			err = domain.Errorf(domain.ReasonForbidden, "the admin API answers Super users only; %s is a Normal user (%s)", p.User.Name, domain.MessageOf(err))
		default:
			err = s.useNonce(ctx, w, p, op, call)
		}
		var access []domain.AccessRequest
		if err == nil {
			access = adminAccess(r, info.RemoteAddr.Addr())
			err = s.sec.AuthorizeAudited(ctx, p, op, access)
		}
		if err != nil {
			s.writeError(w, r.WithContext(ctx), err)
			return
		}
		r = r.WithContext(application.WithPrincipal(ctx, p))
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		// A call that may change something: its outcome is audited too,
		// before its answer leaves.
		ow := &outcomeWriter{ResponseWriter: w, record: func(status int) {
			s.sec.AdminOutcome(ctx, p, op, access, status < 400, "http_"+strconv.Itoa(status))
		}}
		next.ServeHTTP(ow, r)
		ow.finish()
	})
}

// outcomeWriter calls record with the status of the answer before the
// answer is written (once; 200 when the handler writes a body without a
// status, or nothing at all).
type outcomeWriter struct {
	http.ResponseWriter
	record   func(status int)
	recorded bool
}

func (w *outcomeWriter) WriteHeader(status int) {
	if !w.recorded && status >= 200 {
		w.recorded = true
		w.record(status)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *outcomeWriter) Write(b []byte) (int, error) {
	if !w.recorded {
		w.recorded = true
		w.record(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// finish records a handler that wrote nothing (net/http answers 200).
func (w *outcomeWriter) finish() {
	if !w.recorded {
		w.recorded = true
		w.record(http.StatusOK)
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *outcomeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// useNonce spends the nonce of a call whose signature verified: a nonce
// already spent within the window is a replay (401), and a call the
// memory has no room for is refused (429) rather than a nonce forgotten.
// Each refusal is audited as an authentication failure.
func (s *Server) useNonce(ctx context.Context, w http.ResponseWriter, p application.Principal, op string, call signedCall) error {
	outcome, retry := s.nonces.use(call.nonce, call.signedAt)
	switch outcome {
	case nonceReplayed:
		s.sec.AuthenticationRefused(ctx, op, p.User.Name, application.ReasonReplayedNonce)
		return domain.Errorf(domain.ReasonUnauthorized, "this signed admin call was already made (its %s was used): every call needs a new nonce and signature", HeaderNonce)
	case nonceStale:
		s.sec.AuthenticationRefused(ctx, op, p.User.Name, application.ReasonClockSkew)
		return domain.Errorf(domain.ReasonUnauthorized, "authentication failed: check the AccessKey and SecretKey the client is configured with")
	case nonceFull:
		s.sec.AuthenticationRefused(ctx, op, p.User.Name, application.ReasonNonceMemoryFull)
		secs := int64((retry + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		return domain.Errorf(domain.ReasonTooManyRequests,
			"the admin API has accepted %d signed calls within %v, as many as it remembers to refuse replays; retry in %d s", s.nonces.limit, adminClockSkew, secs)
	}
	return nil
}

// Audit reasons of a signed call whose body is over MaxRequestBody (its
// digest is not computed; the call is answered 413, as the handler would)
// or could not be read (400).
const (
	reasonBodyTooLarge   = "request_body_too_large"
	reasonBodyUnreadable = "request_body_unreadable"
)

// signedCall is what a signature binds beyond its bytes: the date-time it
// was made at and its nonce.
type signedCall struct {
	signedAt time.Time
	nonce    string
}

// adminCredentials reads the signature headers of r and, when they are
// well formed, its body (which it puts back for the handler), and returns
// the credentials to verify: application.AdminStringToSign of r's method,
// request target, body digest, date-time and nonce.
func adminCredentials(r *http.Request, now time.Time) (application.Credentials, signedCall) {
	auth := r.Header.Values(HeaderAuthorization)
	if len(auth) == 0 {
		return application.Credentials{Fault: application.ReasonMissingCredentials}, signedCall{}
	}
	ak, signed, sig, err := application.ParseAdminAuthorization(auth[len(auth)-1])
	if err != nil || len(auth) > 1 {
		return application.Credentials{AccessKey: ak, Fault: application.ReasonMalformed}, signedCall{}
	}
	if signed != application.AdminSignedHeaders {
		return application.Credentials{AccessKey: ak, Fault: application.ReasonIncompleteSignature}, signedCall{}
	}
	dt, digest, nonce := oneHeader(r, HeaderDateTime), oneHeader(r, HeaderContentSHA256), oneHeader(r, HeaderNonce)
	ts, err := application.ParseDateTime(dt)
	if err != nil || !application.ValidContentSHA256(digest) || !application.ValidAdminNonce(nonce) {
		return application.Credentials{AccessKey: ak, Fault: application.ReasonMalformed}, signedCall{}
	}
	if !application.WithinClockSkew(application.ClockSkewUTC, adminClockSkew, ts, now) {
		return application.Credentials{AccessKey: ak, Fault: application.ReasonClockSkew}, signedCall{}
	}
	body, err := readBody(r)
	switch {
	case errors.Is(err, errBodyTooLarge):
		return application.Credentials{AccessKey: ak, Fault: reasonBodyTooLarge}, signedCall{}
	case err != nil:
		return application.Credentials{AccessKey: ak, Fault: reasonBodyUnreadable}, signedCall{}
	case contentSHA256(body) != digest:
		return application.Credentials{AccessKey: ak, Fault: application.ReasonContentMismatch}, signedCall{}
	}
	content := application.AdminStringToSign(r.Method, requestTarget(r), digest, dt, nonce)
	return application.Credentials{AccessKey: ak, Content: content, Signature: sig}, signedCall{signedAt: ts, nonce: nonce}
}

// oneHeader returns the value of a header sent once, and "" (which no
// check accepts) for one missing or sent more than once.
func oneHeader(r *http.Request, name string) string {
	v := r.Header.Values(name)
	if len(v) != 1 {
		return ""
	}
	return v[0]
}

// errBodyTooLarge: a body over MaxRequestBody.
var errBodyTooLarge = errors.New("request body too large")

// readBody reads r's body, at most MaxRequestBody bytes, and puts it back
// for the handler.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBody+1))
	if err == nil && len(data) > MaxRequestBody {
		err = errBodyTooLarge
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{bytes.NewReader(data), r.Body}
	return data, err
}

// requestTarget returns r's request target as it came on the request line
// (not decoded or normalised): the path and, after "?", the query. An
// absolute-form target (http://host/path?q, sent through a forward proxy)
// counts from its path on.
func requestTarget(r *http.Request) string {
	t := r.RequestURI
	if t == "" { // a handler called without a server
		t = r.URL.RequestURI()
	}
	if strings.HasPrefix(t, "/") || t == "*" {
		return t
	}
	if _, rest, ok := strings.Cut(t, "://"); ok {
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			if rest[i] == '?' {
				return "/" + rest[i:]
			}
			return rest[i:]
		}
		return "/"
	}
	return t
}

// adminAccess maps an admin call to what it accesses, as the Remoting
// admin request codes do: reading, creating, updating or deleting one topic
// or group (the name of a created one comes from the body, which is put
// back for the handler), listing them (Cluster LIST), resetting a group's
// offsets (Update on the group and the topic, as
// INVOKE_BROKER_TO_RESET_OFFSET), having a consumer
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
	case len(segs) == 3 && segs[0] == "groups" && segs[2] == "reset" && r.Method == http.MethodPost:
		// As INVOKE_BROKER_TO_RESET_OFFSET: Update on the group and the topic.
		var body struct {
			Topic string `json:"topic"`
		}
		peekBody(r, &body)
		return []domain.AccessRequest{{Resource: domain.GroupResource(segs[1]), Actions: domain.ActionUpdate, SourceIP: ip},
			{Resource: domain.TopicResource(body.Topic), Actions: domain.ActionUpdate, SourceIP: ip}}
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
