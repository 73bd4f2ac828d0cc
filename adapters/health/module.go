package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/internal/httpserve"
	"github.com/rmqproxy/rmqproxy/adapters/internal/listenaddr"
	"github.com/rmqproxy/rmqproxy/adapters/internal/redact"

	"github.com/rmqproxy/rmqproxy/ports"
)

// Config is the health server's slice of the configuration (key health).
type Config struct {
	Address      string        `yaml:"address" help:"listen address (host:port) of the health endpoints /livez, /healthz and /readyz and of the Prometheus metrics /metrics"`
	CheckTimeout time.Duration `yaml:"checkTimeout" help:"how long one readiness check may take before /readyz counts it as failing"`
	Pprof        bool          `yaml:"pprof" help:"also serve Go's runtime profiles (net/http/pprof) under /debug/pprof/ on health.address, for performance work; off by default; served only to clients on this host (loopback peer and Host; reach them through an SSH tunnel or kubectl port-forward), since profiles can hold message contents; no /debug/pprof/cmdline"`
}

// DefaultConfig returns the defaults: every interface, port 9090, 2s checks.
func DefaultConfig() Config {
	return Config{Address: ":9090", CheckTimeout: 2 * time.Second}
}

// Validate checks the address and the timeout.
func (c Config) Validate() error {
	var errs []error
	if err := listenaddr.CheckUser(c.Address, ":9090"); err != nil {
		errs = append(errs, err)
	} else if host, port, err := net.SplitHostPort(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("address %q is not host:port, such as :9090%s%s", redact.Userinfo(c.Address), listenaddr.IPv6Hint(c.Address, 9090), listenaddr.PortOnlyHint(c.Address, false)))
	} else if err := listenaddr.CheckHost(c.Address, host, ":9090"); err != nil {
		errs = append(errs, err)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		errs = append(errs, fmt.Errorf("address %q: port %q is not a number between 0 and 65535", redact.Userinfo(c.Address), port))
	}
	if c.CheckTimeout <= 0 {
		errs = append(errs, fmt.Errorf("checkTimeout must be positive, not %v", c.CheckTimeout))
	}
	return errors.Join(errs...)
}

// ReadinessGroup is the fx value group readiness checks are provided in.
const ReadinessGroup = "readiness"

// AsCheck annotates a constructor returning a [Check] so that fx adds its
// result to the readiness group:
//
//	fx.Provide(health.AsCheck(func(p *pgxpool.Pool) health.Check {
//		return health.Check{Name: "postgres", Check: p.Ping}
//	}))
func AsCheck(constructor any) any {
	return fx.Annotate(constructor, fx.ResultTags(`group:"`+ReadinessGroup+`"`))
}

// Module provides the health [Server], fed with every [Check] of the
// readiness group, and the outcome of all checks as a [ports.Readiness] (for
// protocol health services such as grpc.health.v1), and ties it to the fx lifecycle: OnStart binds the port
// (a taken port fails startup), OnStop shuts the server down gracefully. It
// needs a [Config] and an *slog.Logger.
var Module = fx.Module("health",
	fx.Provide(fx.Annotate(New, fx.ParamTags(``, `group:"`+ReadinessGroup+`"`, ``))),
	fx.Provide(func(s *Server) ports.Readiness { return readiness{s} }),
	fx.Invoke(fx.Annotate(func(lc fx.Lifecycle, s *Server, routes []httpserve.Route) {
		s.Mount(routes...)
		lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
	}, fx.ParamTags(``, ``, `group:"`+httpserve.RoutesGroup+`"`))),
)

// readiness is every check's outcome as a ports.Readiness.
type readiness struct{ s *Server }

func (r readiness) Ready(ctx context.Context) error {
	rep := r.s.Ready(ctx)
	if len(rep.Failing) == 0 {
		return nil
	}
	parts := make([]string, len(rep.Failing))
	for i, f := range rep.Failing {
		parts[i] = f.Name + ": " + f.Error
	}
	return fmt.Errorf("not ready: %s", strings.Join(parts, "; "))
}
