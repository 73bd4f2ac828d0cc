package admin

import (
	"net/http"
	"net/netip"
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
)

// adminClockSkew bounds the admin CLI's timestamp: it signs in UTC.
const adminClockSkew = 5 * time.Minute

// UseSecurity makes the server require, when sec.Enabled(), a signed
// request from an enabled Super user on every call (401 UNAUTHORIZED for a
// missing or bad signature, 403 FORBIDDEN for a user who is not Super);
// every call is audited as protocol admin-http.
func (s *Server) UseSecurity(sec *application.Security) { s.sec = sec }

func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.sec == nil || !s.sec.Enabled() {
			next.ServeHTTP(w, r)
			return
		}
		info := ports.RequestInfo{Protocol: "admin-http"}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			info.RemoteAddr = ap
		}
		ctx := ports.WithRequestInfo(r.Context(), info)
		op := "admin " + r.Method + " " + r.URL.Path
		p, err := s.sec.Authenticate(ctx, op, adminCredentials(r, time.Now()))
		if err == nil && p.User.Type != domain.UserSuper {
			err = s.sec.Refuse(ctx, p, op, "admin_requires_super_user")
			err = domain.Errorf(domain.ReasonForbidden, "the admin API answers Super users only; %s is a Normal user (%s)", p.User.Name, domain.MessageOf(err))
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
