package admin

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/rmqproxy/rmqproxy/adapters/internal/httpserve"
	"github.com/rmqproxy/rmqproxy/domain"
)

// Two checks run before any route (and before authentication) and keep a
// web page in the operator's browser from using the API:
//
//   - The Host header must name loopback (localhost, 127.0.0.0/8, [::1]),
//     the host of admin.address, or a host in admin.allowedHosts. A page on
//     evil.example whose name an attacker re-points at 127.0.0.1 (DNS
//     rebinding) reaches the port, but its requests carry Host:
//     evil.example and are refused.
//   - A request with a body (and every POST and PUT) must say Content-Type:
//     application/json. An HTML form can only post urlencoded, multipart or
//     text/plain bodies, and a cross-site fetch with a JSON content type
//     needs a CORS preflight, which this API never grants.

// hostGuard decides which Host headers the API answers.
type hostGuard struct {
	any   bool                // allowedHosts holds "*"
	hosts map[string]struct{} // host names and IPs allowed on any port
	pairs map[string]struct{} // host:port pairs allowed on that port only
}

// newHostGuard allows loopback, the host of the listen address (unless it is
// a wildcard such as 0.0.0.0 or empty) and the configured hosts.
func newHostGuard(cfg Config) *hostGuard {
	g := &hostGuard{hosts: map[string]struct{}{"localhost": {}}, pairs: map[string]struct{}{}}
	if h, _, err := net.SplitHostPort(cfg.Address); err == nil && h != "" {
		if ip, err := netip.ParseAddr(h); err != nil || !ip.IsUnspecified() {
			g.hosts[normalHost(h)] = struct{}{}
		}
	}
	for _, a := range cfg.AllowedHosts {
		a = strings.TrimSpace(a)
		switch h, p, err := net.SplitHostPort(a); {
		case a == "*":
			g.any = true
		case err == nil:
			g.pairs[normalHost(h)+":"+p] = struct{}{}
		default:
			g.hosts[normalHost(a)] = struct{}{}
		}
	}
	return g
}

// normalHost lower-cases a host name, drops a trailing dot and IPv6
// brackets, and writes IP addresses in their canonical form.
func normalHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().String()
	}
	return h
}

// allows reports whether a request whose Host header is hostHeader is
// addressed to this API.
func (g *hostGuard) allows(hostHeader string) bool {
	if g.any {
		return true
	}
	host, port, err := net.SplitHostPort(hostHeader)
	if err != nil {
		host, port = hostHeader, "" // no port: the scheme's default
	}
	host = normalHost(host)
	if host == "" {
		return false
	}
	if httpserve.LoopbackName(host) {
		return true
	}
	if _, ok := g.hosts[host]; ok {
		return true
	}
	_, ok := g.pairs[host+":"+port]
	return ok && port != ""
}

// guard wraps the API's routes with the Host and Content-Type checks.
func (s *Server) guard(next http.Handler) http.Handler {
	hosts := newHostGuard(s.cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hosts.allows(r.Host) {
			s.writeError(w, r, domain.Errorf(domain.ReasonForbidden,
				"the admin API does not answer requests for host %s: it answers loopback (localhost, 127.0.0.1, [::1]) and the host of admin.address, which keeps web pages from reaching it by DNS rebinding; to call it as %s, add that host to admin.allowedHosts (flag --admin.allowedHosts=%s, environment RMQPROXY_ADMIN_ALLOWED_HOSTS)",
				hostForMessage(r.Host), hostForMessage(r.Host), hostOnly(r.Host)))
			return
		}
		if needsJSON(r) {
			if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
				got := "no Content-Type"
				if ct != "" {
					got = fmt.Sprintf("Content-Type %q", truncate(ct))
				}
				writeJSON(w, http.StatusUnsupportedMediaType, ErrorBody{Code: CodeUnsupportedMediaType,
					Message: fmt.Sprintf("%s %s has %s; send the body as JSON with Content-Type: application/json", r.Method, truncate(r.URL.Path), got)})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// CodeUnsupportedMediaType is the error code of a body that is not declared
// as JSON (HTTP 415). It is about the request's form, not a domain rule, so
// it has no domain reason; the client reports it as a bad request.
const CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"

// needsJSON reports whether r carries (or, for POST and PUT, should carry)
// a body.
func needsJSON(r *http.Request) bool {
	return r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch || r.ContentLength != 0
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

func hostForMessage(h string) string {
	if h == "" {
		return "(no Host header)"
	}
	return fmt.Sprintf("%q", truncate(h))
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if h == "" {
		return "HOST"
	}
	return truncate(strings.Trim(h, "[]"))
}
