package admin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/certreload"
	"github.com/rmqproxy/rmqproxy/adapters/internal/handshake"
	"github.com/rmqproxy/rmqproxy/adapters/internal/httpserve"
	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/adapters/internal/tlspolicy"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
)

// Timeouts of the HTTP server: an admin request is small and quick, and a
// slow client must not hold a connection for long.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 2 * time.Minute
)

// DefaultHandshakeTimeout is the default of admin.handshakeTimeout, which
// bounds the TLS handshake of a connection (with admin.tls.enabled): the
// least of the timeouts above, as net/http derived it when it ran the
// handshakes itself.
const DefaultHandshakeTimeout = readHeaderTimeout

// Server serves the admin API over HTTP. Start binds and serves, Stop shuts
// down gracefully; the zero value is not usable, use [New].
type Server struct {
	cfg   Config
	admin *application.Admin
	log   *slog.Logger
	srv   *httpserve.Server     // the listener, the serving goroutine and the root context
	sec   *application.Security // nil or disabled: no authentication (see UseSecurity)
	// nonces remembers the nonces of accepted signed calls (nonce.go).
	nonces *nonceMemory
	ops    *application.ClientOps // nil: the client endpoints answer NOT_IMPLEMENTED
	// routes are contributed by other adapters (see Mount).
	routes []httpserve.Route
	// certs serves and reloads the certificate with admin.tls.enabled;
	// the watch goroutine is stopped by stopWatch and waited for on
	// watchDone (nil without reloading).
	certs     *certreload.Store
	stopWatch context.CancelFunc
	watchDone chan struct{}
	// handshakes counts the TLS handshakes that failed (with
	// admin.tls.enabled); the listener runs them before net/http sees a
	// connection (handshake.Listener).
	handshakes *handshake.Failures
}

// New returns a server for cfg over the admin use case. It does not listen
// yet; see [Server.Start].
func New(cfg Config, admin *application.Admin, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, admin: admin, log: logger.With("component", "admin"),
		nonces: newNonceMemory(maxAdminNonces, adminClockSkew, time.Now)}
	if cfg.Enabled && cfg.TLS.Enabled {
		// Made here, loaded by Start: the expiry gauge (UseTelemetry) may
		// read it at any time.
		s.certs = certreload.New(cfg.TLS.CertFile, cfg.TLS.KeyFile, "", tls.NoClientCert, []string{"http/1.1"})
		s.certs.WarnBefore(cfg.TLS.ExpiryWarning)
		s.handshakes = handshake.NewFailures(s.log)
	}
	s.srv = httpserve.New(httpserve.Options{
		Module:            "admin",
		Setting:           "admin.address",
		Address:           cfg.Address,
		PortHolder:        "another process (perhaps another rmqproxy)",
		Name:              "admin API",
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		HandshakeTimeout:  cfg.HandshakeTimeout,
		Handshakes:        s.handshakes,
		Logger:            s.log,
	})
	return s
}

// ListenerName is the admin API's value of the listener label of the TLS
// metrics.
const ListenerName = "admin"

// UseTelemetry reports, with admin.tls.enabled, the expiry and the
// reloads of the certificate served and the failed TLS handshakes when tel
// records metrics; call it before Start.
func (s *Server) UseTelemetry(tel *observe.Telemetry) {
	if s.certs == nil || !tel.Measuring() {
		return
	}
	if err := s.certs.Observe(tel.Metrics.Meter(), ListenerName); err != nil {
		s.log.Warn("cannot register the certificate expiry gauge", slog.Any("error", err))
	}
	if err := s.handshakes.Observe(tel.Metrics.Meter(), ListenerName); err != nil {
		s.log.Warn("cannot register the handshake failure counter", slog.Any("error", err))
	}
}

// Mount adds routes other adapters contribute (such as /metrics) behind
// the same host guard; call it before Start.
func (s *Server) Mount(routes ...httpserve.Route) {
	s.routes = append(s.routes, routes...)
	s.srv.SetHandler(s.Handler())
}

// Start binds cfg.Address and serves in a goroutine that [Server.Stop]
// stops. A taken port fails here, with an error naming admin.address; so
// does an address beyond loopback without authentication and TLS (see
// [Config.CheckExposure]) and a certificate that does not load. When the
// API is disabled, Start does nothing.
func (s *Server) Start(ctx context.Context) error {
	if !s.cfg.Enabled {
		s.log.InfoContext(ctx, "admin API disabled (admin.enabled is false)")
		return nil
	}
	if err := s.cfg.CheckExposure(s.sec != nil && s.sec.Enabled()); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if s.certs != nil {
		minVersion, err := tlspolicy.ParseMinVersion(s.cfg.TLS.MinVersion)
		if err != nil {
			return fmt.Errorf("admin.tls.minVersion %w", err)
		}
		suites, err := tlspolicy.ParseCipherSuites(s.cfg.TLS.CipherSuites)
		if err != nil {
			return fmt.Errorf("admin.tls.cipherSuites %w", err)
		}
		s.certs.SetMinVersion(minVersion)
		s.certs.SetCipherSuites("admin.tls.cipherSuites", suites)
		if err := s.certs.Load(time.Now()); err != nil {
			return fmt.Errorf("admin.tls: %w", err)
		}
		s.certs.CheckExpiry(ctx, s.log, time.Now())
		s.srv.SetTLS(s.certs.ServerConfig())
	}
	if err := s.srv.Start(ctx); err != nil {
		return err
	}
	if s.certs != nil && s.cfg.TLS.ReloadInterval > 0 {
		wctx, cancel := context.WithCancel(context.Background()) // cancelled in Stop
		s.stopWatch, s.watchDone = cancel, make(chan struct{})
		go func() {
			defer close(s.watchDone)
			s.certs.Watch(wctx, s.cfg.TLS.ReloadInterval, s.log)
		}()
	}
	scheme := "http"
	if s.certs != nil {
		scheme = "https"
	}
	s.log.InfoContext(ctx, "admin API listening", "address", s.srv.Addr().String(), "scheme", scheme,
		"authenticated", s.sec != nil && s.sec.Enabled())
	return nil
}

// CertificateReloads returns how many changed certificates the API has
// loaded and refused since Start (0, 0 without admin.tls).
func (s *Server) CertificateReloads() (loaded, refused uint64) {
	if s.certs == nil {
		return 0, 0
	}
	return s.certs.Reloads(), s.certs.Failures()
}

// Addr returns the bound address, or nil before Start.
func (s *Server) Addr() net.Addr { return s.srv.Addr() }

// Stop stops accepting, lets in-flight requests finish until ctx's
// deadline, then cancels them and closes every connection. It returns once
// the serving goroutine has exited.
func (s *Server) Stop(ctx context.Context) error {
	if s.srv.Addr() == nil {
		return nil // never started: disabled, or Start failed
	}
	err := s.srv.Stop(ctx)
	if s.stopWatch != nil {
		s.stopWatch()
		<-s.watchDone
	}
	s.log.InfoContext(ctx, "admin API stopped")
	return err
}

// Handler returns the API's HTTP handler, for tests and for embedding in
// another server. It answers only requests addressed to an allowed host and
// whose body is declared as JSON (see guard.go).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(path string, methods map[string]func(http.ResponseWriter, *http.Request) error) {
		allow := ""
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			h, ok := methods[m]
			if !ok {
				continue
			}
			if allow != "" {
				allow += ", "
			}
			allow += m
			mux.HandleFunc(m+" "+path, func(w http.ResponseWriter, r *http.Request) {
				if err := h(w, r); err != nil {
					s.writeError(w, r, err)
				}
			})
		}
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Code: "METHOD_NOT_ALLOWED",
				Message: fmt.Sprintf("%s does not support %s; use %s", r.URL.Path, r.Method, allow)})
		})
	}
	route("/v1/topics", map[string]func(http.ResponseWriter, *http.Request) error{
		http.MethodGet: s.listTopics, http.MethodPost: s.createTopic})
	route("/v1/topics/{name}", map[string]func(http.ResponseWriter, *http.Request) error{
		http.MethodGet: s.getTopic, http.MethodPut: s.updateTopic, http.MethodDelete: s.deleteTopic})
	route("/v1/groups", map[string]func(http.ResponseWriter, *http.Request) error{
		http.MethodGet: s.listGroups, http.MethodPost: s.createGroup})
	route("/v1/groups/{name}", map[string]func(http.ResponseWriter, *http.Request) error{
		http.MethodGet: s.getGroup, http.MethodPut: s.updateGroup, http.MethodDelete: s.deleteGroup})
	route("/v1/groups/{name}/stats", map[string]func(http.ResponseWriter, *http.Request) error{
		http.MethodGet: s.groupStats})
	route("/v1/groups/{name}/reset", map[string]func(http.ResponseWriter, *http.Request) error{
		http.MethodPost: s.resetOffset})
	route("/v1/clients", map[string]func(http.ResponseWriter, *http.Request) error{
		http.MethodGet: s.listClients})
	route("/v1/clients/{id}/stack", map[string]func(http.ResponseWriter, *http.Request) error{
		http.MethodPost: s.clientStack})
	route("/v1/clients/{id}/verify", map[string]func(http.ResponseWriter, *http.Request) error{
		http.MethodPost: s.verifyMessage})
	for _, r := range s.routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	// The 404 lists what is served, the mounted routes (such as
	// /metrics) too.
	served := []string{"/v1/topics", "/v1/groups", "/v1/clients"}
	for _, r := range s.routes {
		p := r.Pattern
		if i := strings.IndexByte(p, ' '); i >= 0 {
			p = strings.TrimSpace(p[i+1:]) // "GET /metrics"
		}
		if !slices.Contains(served, p) {
			served = append(served, p)
		}
	}
	list := strings.Join(served[:len(served)-1], ", ") + " and " + served[len(served)-1]
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, domain.Errorf(domain.ReasonNotFound, "no such endpoint %s %s; the admin API serves %s", r.Method, truncate(r.URL.Path), list))
	})
	return s.guard(s.authenticate(mux))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a write error means the client is gone
}

func (s *Server) listTopics(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.admin.Topics(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, topicsDTO(ts))
	return nil
}

func (s *Server) createTopic(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeRequest[CreateTopicRequest](w, r)
	if err != nil {
		return err
	}
	spec, err := req.Spec()
	if err != nil {
		return err
	}
	t, err := s.admin.CreateTopic(r.Context(), spec)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "topic created", "topic", t.Name, "type", t.Type.String(), "queue_count", t.QueueCount)
	w.Header().Set("Location", "/v1/topics/"+url.PathEscape(t.Name))
	writeJSON(w, http.StatusCreated, topicDTO(t))
	return nil
}

func (s *Server) getTopic(w http.ResponseWriter, r *http.Request) error {
	t, err := s.admin.Topic(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, topicDTO(t))
	return nil
}

func (s *Server) updateTopic(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeRequest[UpdateTopicRequest](w, r)
	if err != nil {
		return err
	}
	spec, err := req.Spec(r.PathValue("name"))
	if err != nil {
		return err
	}
	t, err := s.admin.UpdateTopic(r.Context(), spec)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "topic updated", "topic", t.Name, "type", t.Type.String(), "queue_count", t.QueueCount)
	writeJSON(w, http.StatusOK, topicDTO(t))
	return nil
}

func (s *Server) deleteTopic(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := s.admin.DeleteTopic(r.Context(), name); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "topic deleted", "topic", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.admin.Groups(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, groupsDTO(gs))
	return nil
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeRequest[CreateGroupRequest](w, r)
	if err != nil {
		return err
	}
	spec, err := req.Spec()
	if err != nil {
		return err
	}
	g, err := s.admin.CreateGroup(r.Context(), spec)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "consumer group created", "consumer_group", g.Name)
	w.Header().Set("Location", "/v1/groups/"+url.PathEscape(g.Name))
	writeJSON(w, http.StatusCreated, groupDTO(g))
	return nil
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := s.admin.Group(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, groupDTO(g))
	return nil
}

func (s *Server) updateGroup(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeRequest[UpdateGroupRequest](w, r)
	if err != nil {
		return err
	}
	spec, err := req.Spec(r.PathValue("name"))
	if err != nil {
		return err
	}
	g, err := s.admin.UpdateGroup(r.Context(), spec)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "consumer group updated", "consumer_group", g.Name)
	writeJSON(w, http.StatusOK, groupDTO(g))
	return nil
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := s.admin.DeleteGroup(r.Context(), name); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "consumer group deleted", "consumer_group", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) groupStats(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	qs, err := s.admin.GroupStats(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, statsDTO(name, qs))
	return nil
}

func (s *Server) resetOffset(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeRequest[ResetOffsetRequest](w, r)
	if err != nil {
		return err
	}
	spec := req.Spec(r.PathValue("name"))
	rs, err := s.admin.ResetOffset(r.Context(), spec)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "consumer offsets reset", "consumer_group", spec.Group, "topic", spec.Topic, "queue_id", spec.QueueID, "to", spec.To, "queues", len(rs))
	writeJSON(w, http.StatusOK, resetDTO(spec.Group, spec.Topic, rs))
	return nil
}
