package admin

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/internal/httpserve"
	"github.com/rmqproxy/rmqproxy/application"
)

// Config is the admin API's slice of the configuration (key admin).
type Config struct {
	Enabled bool   `yaml:"enabled" help:"Serve the admin HTTP API that the rmqproxy topic and group commands use."`
	Address string `yaml:"address" help:"Listen address (host:port) of the admin HTTP API. It is unauthenticated until rmqproxy's security settings cover it, so keep it on loopback (the default) or behind a firewall."`
	// AllowedHosts guards against DNS rebinding: see guard.go.
	// AccessKey and SecretKey are what the rmqproxy topic and group
	// commands sign their calls with when the proxy has auth.enabled.
	AccessKey    string   `yaml:"accessKey" help:"Super user the rmqproxy topic and group commands sign admin API calls as, when the proxy has auth.enabled (the API then answers Super users only)"`
	SecretKey    string   `yaml:"secretKey" secret:"true" help:"secret of admin.accessKey (set it through RMQPROXY_ADMIN_SECRET_KEY or the configuration file, not on the command line)"`
	AllowedHosts []string `yaml:"allowedHosts" help:"Host names (or host:port) the admin API answers besides loopback and the host of admin.address; requests addressed to any other Host header get 403, so a web page cannot reach the API by DNS rebinding. * allows every host."`
}

// DefaultAddress is where the admin API listens by default: loopback only,
// since the API is unauthenticated.
const DefaultAddress = "127.0.0.1:8082"

// DefaultConfig returns the defaults: enabled, on 127.0.0.1:8082.
func DefaultConfig() Config {
	return Config{Enabled: true, Address: DefaultAddress}
}

// Validate checks the address when the API is enabled.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	errs := []error{validateAddress(c.Address)}
	for _, h := range c.AllowedHosts {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, "/ \t@?#") {
			errs = append(errs, fmt.Errorf("allowedHosts: %q is not a host name, an IP address or host:port, such as admin.example.com or 10.0.0.5:8082", h))
		}
	}
	return errors.Join(errs...)
}

func validateAddress(addr string) error {
	if addr == "" {
		return errors.New("address is required when the admin API is enabled (set enabled: false to turn it off)")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q is not host:port, such as 127.0.0.1:8082", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("address %q: port %q is not a number between 0 and 65535", addr, port)
	}
	return nil
}

// Module provides the admin [Server] and ties it to the fx lifecycle: the
// listener is bound in OnStart (so a taken port fails startup) and shut down
// gracefully in OnStop; the routes of the value group httproutes (such as
// /metrics) are mounted behind the host guard. It needs a [Config], an *application.Admin and an
// *slog.Logger.
var Module = fx.Module("admin",
	fx.Provide(New),
	fx.Invoke(fx.Annotate(func(lc fx.Lifecycle, s *Server, sec *application.Security, routes []httpserve.Route) {
		if sec != nil {
			s.UseSecurity(sec)
		}
		s.Mount(routes...)
		lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
	}, fx.ParamTags(``, ``, `optional:"true"`, `group:"`+httpserve.RoutesGroup+`"`))),
)
