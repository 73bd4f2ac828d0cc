package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/cluster"
	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker"
	"github.com/rmqproxy/rmqproxy/adapters/otel"
	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/application"
)

// Modes and profiles.
const (
	ModeLocal   = "local"
	ModeCluster = "cluster"

	ProfileDevelopment = "development"
	ProfileProduction  = "production"
)

// Root is the whole configuration of rmqproxy. Its keys are the dotted YAML
// paths (grpc.address), the environment variables RMQPROXY_<KEY> and the
// flags --<key>.
type Root struct {
	Mode      string                     `yaml:"mode" enum:"local,cluster" help:"local: embedded durable broker in this process (default); cluster: front an Apache RocketMQ cluster (NameServers and brokers, see the cluster section)"`
	Profile   string                     `yaml:"profile" enum:"development,production" help:"development (default) or production; production turns off topic and group auto-creation (in local mode; in cluster mode the brokers' settings decide) and gRPC reflection, sets shutdown.drainDelay to 5s, and refuses a postgres.dsn that does not verify the server's certificate unless PostgreSQL is on loopback, and cluster.tls.insecureSkipVerify"`
	Log       LogConfig                  `yaml:"log"`
	GRPC      grpcadapter.Config         `yaml:"grpc"`
	Admin     admin.Config               `yaml:"admin"`
	Health    health.Config              `yaml:"health"`
	Messaging application.Config         `yaml:"messaging"`
	Traffic   application.TrafficConfig  `yaml:"traffic"`
	Local     localbroker.Config         `yaml:"local"`
	Cluster   cluster.Config             `yaml:"cluster"`
	Shutdown  ShutdownConfig             `yaml:"shutdown"`
	Auth      application.SecurityConfig `yaml:"auth"`
	Postgres  postgres.Config            `yaml:"postgres"`
	Tracing   otel.TracingConfig         `yaml:"tracing"`
	Metrics   otel.MetricsConfig         `yaml:"metrics"`
	OTLP      otel.OTLPConfig            `yaml:"otlp"`
}

// LogConfig selects the log output.
type LogConfig struct {
	Level  string `yaml:"level" enum:"debug,info,warn,error" help:"debug, info, warn or error"`
	Format string `yaml:"format" enum:"text,json" help:"text or json"`
	Access bool   `yaml:"access" help:"log one line per request (component=access): RPC, code, duration, client id, request id, trace id, topic, group and message ids; never credentials"`
	Bodies bool   `yaml:"bodies" help:"with log.access, also log the first 256 bytes of each message body sent; for debugging only, since bodies may hold personal or secret data"`
}

// Defaults returns the configuration used when nothing is configured, for
// a profile.
func Defaults(profile string) Root {
	r := Root{
		Mode:      ModeLocal,
		Profile:   profile,
		Log:       LogConfig{Level: "info", Format: "text"},
		GRPC:      grpcadapter.DefaultConfig(),
		Admin:     admin.DefaultConfig(),
		Health:    health.DefaultConfig(),
		Messaging: application.DefaultConfig(),
		Traffic:   application.DefaultTrafficConfig(),
		Local:     localbroker.DefaultConfig(),
		Cluster:   cluster.DefaultConfig(),
		Shutdown:  DefaultShutdownConfig(),
		Auth:      application.DefaultSecurityConfig(),
		Postgres:  postgres.DefaultConfig(),
		Tracing:   otel.DefaultTracingConfig(),
		Metrics:   otel.DefaultMetricsConfig(),
		OTLP:      otel.DefaultOTLPConfig(),
	}
	// Follow grpc.address and local.dataDir unless set (see Derive).
	r.Local.StoreHost = ""
	r.GRPC.TLS.SelfSignedDir = ""
	if profile == ProfileProduction {
		r.Local.AutoCreateTopics = false
		r.Local.AutoCreateGroups = false
		r.GRPC.Reflection = false
		// Behind a load balancer: let it see the proxy unready first.
		r.Shutdown.DrainDelay = 5 * time.Second
	}
	return r
}

// Derive fills the settings that follow others when they are left empty:
// local.storeHost follows grpc.address (its IP, or 127.0.0.1 when it
// listens on every interface or names a host; and its port), and
// grpc.tls.selfSignedDir is the tls folder of local.dataDir. config.Load
// calls it before validation; Options calls it again for a Root built in
// code.
func (r *Root) Derive() {
	if r.Local.StoreHost == "" {
		r.Local.StoreHost = storeHostOf(r.GRPC.Address)
	}
	if r.GRPC.TLS.SelfSignedDir == "" {
		r.GRPC.TLS.SelfSignedDir = selfSignedDirOf(r.Local.DataDir)
	}
}

// selfSignedDirOf is where the self-signed certificate is kept for a data
// directory: its tls folder.
func selfSignedDirOf(dataDir string) string { return filepath.Join(dataDir, "tls") }

// Underived returns r with the settings Derive fills left empty again
// where they hold what Derive fills them with, for config print: a file
// written from it keeps them following the settings they derive from.
func (r Root) Underived() Root {
	if r.Local.StoreHost == storeHostOf(r.GRPC.Address) {
		r.Local.StoreHost = ""
	}
	if r.GRPC.TLS.SelfSignedDir == selfSignedDirOf(r.Local.DataDir) {
		r.GRPC.TLS.SelfSignedDir = ""
	}
	return r
}

// storeHostOf is the ip:port stored messages record for a gRPC listen
// address. An address that does not parse (which grpc.address's own
// validation reports) gives 127.0.0.1:8081.
func storeHostOf(grpcAddress string) string {
	host, port, err := net.SplitHostPort(grpcAddress)
	if err != nil {
		return "127.0.0.1:8081"
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		n, err := net.LookupPort("tcp", port) // a service name, from /etc/services
		if err != nil {
			return "127.0.0.1:8081"
		}
		p = uint64(n)
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil || ip.IsUnspecified() {
		ip = netip.MustParseAddr("127.0.0.1")
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)).String()
}

// Validate checks settings that span sections.
func (r Root) Validate() error {
	var errs []error
	switch r.Mode {
	case ModeLocal, ModeCluster:
	default:
		errs = append(errs, fmt.Errorf("mode %q must be local or cluster", r.Mode))
	}
	if r.Profile != ProfileDevelopment && r.Profile != ProfileProduction {
		errs = append(errs, fmt.Errorf("profile %q must be development or production", r.Profile))
	}
	errs = append(errs, r.validateSecurity()...)
	errs = append(errs, r.Admin.CheckExposure(r.Auth.Enabled))
	errs = append(errs, r.checkListenersApart())
	return errors.Join(errs...)
}

// checkListenersApart refuses two listeners of this process on one port
// where their hosts overlap (the same host, or either every interface):
// the second to start failed to bind, and its error blamed "another
// process" and told to free the port.
func (r Root) checkListenersApart() error {
	type listener struct{ key, address string }
	ls := []listener{{"grpc.address", r.GRPC.Address}, {"health.address", r.Health.Address}}
	if r.Admin.Enabled {
		ls = append(ls, listener{"admin.address", r.Admin.Address})
	}
	var errs []error
	for i, a := range ls {
		for _, b := range ls[i+1:] {
			if sharePort(a.address, b.address) {
				errs = append(errs, fmt.Errorf("%s %q and %s %q would listen on the same port: give each its own port (the defaults are grpc.address :8081, admin.address 127.0.0.1:8082, health.address :9090)",
					a.key, a.address, b.key, b.address))
			}
		}
	}
	return errors.Join(errs...)
}

// sharePort reports whether listen addresses a and b name the same
// non-zero port on overlapping hosts. Addresses that do not parse are
// left to their own settings' checks.
func sharePort(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return false
	}
	na, err1 := net.LookupPort("tcp", pa)
	nb, err2 := net.LookupPort("tcp", pb)
	if err1 != nil || err2 != nil || na == 0 || na != nb {
		return false
	}
	everywhere := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "" || err == nil && ip.IsUnspecified()
	}
	return ha == hb || everywhere(ha) || everywhere(hb)
}

// Validate checks the log settings.
func (l LogConfig) Validate() error {
	if _, err := l.level(); err != nil {
		return err
	}
	if l.Format != "text" && l.Format != "json" {
		return fmt.Errorf("format %q must be text or json", l.Format)
	}
	return nil
}

func (l LogConfig) level() (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(l.Level))); err != nil {
		return 0, fmt.Errorf("level %q must be debug, info, warn or error", l.Level)
	}
	return lv, nil
}

// validateSecurity checks the settings of authentication and its policy
// store together, and refuses, in the production profile, the settings
// that turn off a peer's verification.
func (r Root) validateSecurity() []error {
	var errs []error
	if r.Auth.Enabled && r.Auth.Source == application.SourcePostgres {
		if r.Postgres.DSN == "" {
			errs = append(errs, errors.New("auth.source postgres needs postgres.dsn (or use auth.source file with auth.file)"))
		}
		if r.Postgres.SecretKeys == "" {
			errs = append(errs, errors.New("auth.source postgres needs postgres.secretKeys, the keys user secrets are encrypted with"))
		}
	}
	if r.Profile == ProfileProduction && r.Postgres.DSN != "" {
		if err := postgres.RequireVerifiedTLS(r.Postgres.DSN); err != nil {
			errs = append(errs, fmt.Errorf("postgres.%w", err))
		}
	}
	if r.Profile == ProfileProduction && r.Cluster.TLS.InsecureSkipVerify {
		// Whatever the mode: a production file that carries it would
		// silently start trusting any broker once switched to cluster mode.
		errs = append(errs, errors.New("cluster.tls.insecureSkipVerify true accepts any broker certificate (tests only) and is refused by the production profile: "+
			"remove it and set cluster.tls.caFile to the PEM bundle of the CA that signs the brokers' certificates (and cluster.tls.serverName when they do not name the addresses dialled)"))
	}
	return errs
}

// CheckFiles reports the file settings whose files do not exist (or are
// directories), each naming the key and the path, so that serve and config
// print stop before anything starts rather than failing at start with the
// path alone. Only the files of features that are on are checked, and only
// for existence: a file this user may not search for is left to the start,
// where the adapter reports it. It is not part of Validate because the
// other commands (migrate, user, topic, ...) load the same configuration,
// possibly on a host without the proxy's certificates, and read none of
// these files. cluster.tls.caFile is read only by serve's cluster adapter:
// it is checked in cluster mode with cluster.tls.enabled.
func (r Root) CheckFiles() error {
	type file struct{ key, path string }
	var files []file
	if r.GRPC.TLS.Mode != grpcadapter.TLSDisabled {
		files = append(files, file{"grpc.tls.certFile", r.GRPC.TLS.CertFile}, file{"grpc.tls.keyFile", r.GRPC.TLS.KeyFile},
			file{"grpc.tls.clientCAFile", r.GRPC.TLS.ClientCAFile})
	}
	if r.Admin.Enabled && r.Admin.TLS.Enabled {
		files = append(files, file{"admin.tls.certFile", r.Admin.TLS.CertFile}, file{"admin.tls.keyFile", r.Admin.TLS.KeyFile})
	}
	if r.Mode == ModeCluster && r.Cluster.TLS.Enabled {
		files = append(files, file{"cluster.tls.caFile", r.Cluster.TLS.CAFile})
	}
	if r.Auth.Enabled && r.Auth.Source == application.SourceFile {
		files = append(files, file{"auth.file", r.Auth.File})
	}
	files = append(files, file{"traffic.rulesFile", r.Traffic.RulesFile})
	var errs []error
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if err := checkFile(f.key, f.path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkFile reports a file setting whose file does not exist or is a
// directory; other errors of stat are left to whoever opens it.
func checkFile(key, path string) error {
	st, err := os.Stat(path)
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist) && errors.As(err, &pe):
		return fmt.Errorf("%s %q: %w", key, path, pe.Err)
	case err == nil && st.IsDir():
		return fmt.Errorf("%s %q is a directory, not a file", key, path)
	}
	return nil
}
