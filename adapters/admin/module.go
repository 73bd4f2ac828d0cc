package admin

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/internal/httpserve"
	"github.com/rmqproxy/rmqproxy/adapters/internal/listenaddr"
	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/adapters/internal/redact"
	"github.com/rmqproxy/rmqproxy/adapters/internal/tlspolicy"
	"github.com/rmqproxy/rmqproxy/application"
)

// Config is the admin API's slice of the configuration (key admin).
type Config struct {
	Enabled bool   `yaml:"enabled" help:"serve the admin HTTP API that the rmqproxy topic, group and client commands use"`
	Address string `yaml:"address" help:"listen address (host:port) of the admin HTTP API; loopback by default: an address beyond loopback (another interface, 0.0.0.0, :8082) is refused unless auth.enabled is true (every call then needs a Super user's signature) and admin.tls.enabled is true"`
	// TLS makes the API serve HTTPS only.
	TLS TLSConfig `yaml:"tls"`
	// HandshakeTimeout bounds each TLS handshake (admin.tls.enabled).
	HandshakeTimeout time.Duration `yaml:"handshakeTimeout" help:"time a new connection has to finish its TLS handshake (admin.tls.enabled); one that has not is closed and counted in rmqproxy_handshake_failures_total with reason timeout"`
	// AllowedHosts guards against DNS rebinding: see guard.go.
	// AccessKey and SecretKey are what the rmqproxy topic and group
	// commands sign their calls with when the proxy has auth.enabled.
	AccessKey    string   `yaml:"accessKey" help:"Super user the rmqproxy topic, group and client commands sign admin API calls as, when the proxy has auth.enabled (the API then answers Super users only)"`
	SecretKey    string   `yaml:"secretKey" secret:"true" help:"secret of admin.accessKey (set it through RMQPROXY_ADMIN_SECRET_KEY or the configuration file, not on the command line)"`
	AllowedHosts []string `yaml:"allowedHosts" help:"host names (or host:port) the admin API answers besides loopback and the host of admin.address; requests addressed to any other Host header get 403, so a web page cannot reach the API by DNS rebinding; * allows every host"`
}

// TLSConfig is the admin API's transport security (key admin.tls).
type TLSConfig struct {
	Enabled        bool          `yaml:"enabled" help:"serve the admin API over HTTPS only (plain HTTP is refused), with certFile and keyFile; needed, with auth.enabled, for an admin.address beyond loopback"`
	CertFile       string        `yaml:"certFile" help:"PEM certificate chain of the admin API (admin.tls.enabled)"`
	KeyFile        string        `yaml:"keyFile" help:"PEM private key of admin.tls.certFile"`
	MinVersion     string        `yaml:"minVersion" help:"lowest TLS version the admin API accepts (admin.tls.enabled): 1.2 or 1.3 (a client that offers only TLS 1.2 is refused during its handshake and counted in rmqproxy_handshake_failures_total with reason tls_version; the rmqproxy topic, group and client commands speak both)"`
	CipherSuites   []string      `yaml:"cipherSuites" help:"TLS 1.2 cipher suites the admin API accepts (admin.tls.enabled), by IANA name (such as TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384), forward-secret (TLS_ECDHE_) ones without known weaknesses only, at least one for the key of admin.tls.certFile; empty: Go's defaults; TLS 1.3 suites cannot be chosen"`
	ReloadInterval time.Duration `yaml:"reloadInterval" help:"how often admin.tls.certFile and keyFile are checked for changes; a changed pair that loads is served to new connections without restart (a bad one is logged and the old one kept); 0: never"`
	ExpiryWarning  time.Duration `yaml:"expiryWarning" help:"log a warning (once per certificate, at start and at every reloadInterval) when admin.tls.certFile expires within this time, and an error once it has expired; 0: never (the gauge rmqproxy_tls_certificate_expiry_timestamp_seconds is kept either way)"`
}

// DefaultExpiryWarning is how long before it expires a certificate in use
// is reported by default.
const DefaultExpiryWarning = 14 * 24 * time.Hour

// DefaultAddress is where the admin API listens by default: loopback only.
const DefaultAddress = "127.0.0.1:8082"

// DefaultConfig returns the defaults: enabled, plain HTTP on 127.0.0.1:8082.
func DefaultConfig() Config {
	return Config{Enabled: true, Address: DefaultAddress, TLS: TLSConfig{MinVersion: tlspolicy.Default, ReloadInterval: 30 * time.Second, ExpiryWarning: DefaultExpiryWarning},
		HandshakeTimeout: DefaultHandshakeTimeout}
}

// Loopback reports whether address (host:port) can only be reached from
// this host: its host is a loopback IP or localhost. An empty host, an
// unspecified address (0.0.0.0, ::) or any other name is not.
func Loopback(address string) bool {
	host, _, err := net.SplitHostPort(address)
	return err == nil && httpserve.LoopbackName(host)
}

// CheckExposure refuses an admin API reachable beyond loopback unless
// every call is authenticated (authEnabled, i.e. auth.enabled) and
// encrypted (admin.tls.enabled): the calls create and delete topics and
// groups, and their signatures must not travel in clear text.
func (c Config) CheckExposure(authEnabled bool) error {
	if !c.Enabled || Loopback(c.Address) || (authEnabled && c.TLS.Enabled) {
		return nil
	}
	if validateAddress(c.Address) != nil {
		return nil // Validate says why; nothing can listen there
	}
	var missing []string
	if !authEnabled {
		missing = append(missing, "auth.enabled true (every admin call then needs a Super user's signature)")
	}
	if !c.TLS.Enabled {
		missing = append(missing, "admin.tls.enabled true with admin.tls.certFile and admin.tls.keyFile (HTTPS only)")
	}
	return fmt.Errorf("admin.address %q listens beyond loopback, which needs %s; or set admin.address to a loopback address such as %s",
		redact.Userinfo(c.Address), strings.Join(missing, " and "), DefaultAddress)
}

// Validate checks the address when the API is enabled.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	errs := []error{validateAddress(c.Address)}
	if c.TLS.Enabled && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls.enabled needs tls.certFile and tls.keyFile (PEM certificate chain and its private key)"))
	}
	if _, err := tlspolicy.ParseMinVersion(c.TLS.MinVersion); err != nil {
		errs = append(errs, fmt.Errorf("tls.minVersion %w", err))
	}
	if _, err := tlspolicy.ParseCipherSuites(c.TLS.CipherSuites); err != nil {
		errs = append(errs, fmt.Errorf("tls.cipherSuites %w", err))
	}
	if c.TLS.ReloadInterval < 0 {
		errs = append(errs, errors.New("tls.reloadInterval must not be negative (0: never reload)"))
	}
	if c.TLS.ExpiryWarning < 0 {
		errs = append(errs, errors.New("tls.expiryWarning must not be negative (0: no warning)"))
	}
	if c.HandshakeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("handshakeTimeout must be positive, not %v", c.HandshakeTimeout))
	}
	for _, h := range c.AllowedHosts {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, "/ \t@?#") {
			errs = append(errs, fmt.Errorf("allowedHosts: %q is not a host name, an IP address or host:port, such as admin.example.com or 10.0.0.5:8082", redact.Userinfo(h)))
		}
	}
	return errors.Join(errs...)
}

func validateAddress(addr string) error {
	if addr == "" {
		return errors.New("address is required when the admin API is enabled (set enabled: false to turn it off)")
	}
	if err := listenaddr.CheckUser(addr, DefaultAddress); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q is not host:port, such as 127.0.0.1:8082%s%s", redact.Userinfo(addr), listenaddr.IPv6Hint(addr, 8082), listenaddr.PortOnlyHint(addr, true))
	}
	if err := listenaddr.CheckHost(addr, host, DefaultAddress); err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("address %q: port %q is not a number between 0 and 65535", redact.Userinfo(addr), port)
	}
	return nil
}

// Module provides the admin [Server] and ties it to the fx lifecycle: the
// listener is bound in OnStart (so a taken port fails startup) and shut down
// gracefully in OnStop; the routes of the value group httproutes (such as
// /metrics) are mounted behind the host guard; with an *observe.Telemetry
// in the graph the certificate's expiry is measured. It needs a [Config],
// an *application.Admin and an *slog.Logger.
var Module = fx.Module("admin",
	fx.Provide(New),
	fx.Invoke(fx.Annotate(func(lc fx.Lifecycle, s *Server, sec *application.Security, ops *application.ClientOps, tel *observe.Telemetry, routes []httpserve.Route) {
		s.UseTelemetry(tel)
		if sec != nil {
			s.UseSecurity(sec)
		}
		if ops != nil {
			s.UseClientOps(ops)
		}
		s.Mount(routes...)
		lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
	}, fx.ParamTags(``, ``, `optional:"true"`, `optional:"true"`, `optional:"true"`, `group:"`+httpserve.RoutesGroup+`"`))),
)
