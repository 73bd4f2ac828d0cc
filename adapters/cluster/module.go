package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/adapters/internal/brokermodule"
	"github.com/rmqproxy/rmqproxy/adapters/internal/listenaddr"
	"github.com/rmqproxy/rmqproxy/adapters/internal/redact"
	"github.com/rmqproxy/rmqproxy/adapters/internal/tlspolicy"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Config is the cluster adapter's slice of rmqproxy's configuration (key
// cluster).
type Config struct {
	NameServers []string `yaml:"nameServers" help:"NameServer addresses (host:port) of the RocketMQ cluster; rmqproxy asks them in turn and fails over to the next when one does not answer"`
	ClusterName string   `yaml:"clusterName" help:"the brokerClusterName of the brokers rmqproxy serves: admin commands create topics and groups on every master of this cluster, and heartbeats go to them"`

	RequestTimeout       time.Duration `yaml:"requestTimeout" help:"longest wait for a broker or NameServer answer when the client's own deadline is not shorter (long polls wait for the client's polling time on top)"`
	DialTimeout          time.Duration `yaml:"dialTimeout" help:"longest wait for a TCP (and TLS) connection to a broker or NameServer"`
	StartTimeout         time.Duration `yaml:"startTimeout" help:"how long start-up waits for a NameServer to answer before rmqproxy gives up"`
	ConnectionsPerBroker int           `yaml:"connectionsPerBroker" help:"TCP connections kept to each broker and NameServer"`
	MaxInFlight          int           `yaml:"maxInFlight" help:"most requests waiting for an answer on one connection; more wait for a free slot (long polls of receives and pulls take none)"`
	RouteTTL             time.Duration `yaml:"routeTTL" help:"how long a topic route, topic configuration or group configuration is used before it is read again (a failed broker call refreshes it at once)"`
	Isolation            time.Duration `yaml:"isolation" help:"a broker that failed a call is avoided for this long by sends and receives that can go elsewhere; a NameServer that did not answer in time is not asked again for this long once another has answered"`
	HeartbeatInterval    time.Duration `yaml:"heartbeatInterval" help:"how often the producer and consumer groups of connected clients are registered with every broker (brokers forget a registration after 120 s)"`
	CoalesceSends        bool          `yaml:"coalesceSends" help:"concurrent sends of single normal messages to one topic on one broker go together in a SEND_BATCH_MESSAGE: the messages that arrive while 2 send requests to it are in flight (a lone send goes at once, alone); the broker stores a batch for a fraction of the CPU per message; off: one SEND_MESSAGE_V2 per message, as the Apache proxy does"`
	BatchAck             bool          `yaml:"batchAck" help:"acks to one broker go together in a BATCH_ACK_MESSAGE: the entries of an AckMessage request, and the acks that arrive while 4 ack requests are in flight to it (the acks of one pop share one ack record on the broker); off: one ACK_MESSAGE per ack, as the Apache proxy does by default"`

	TLS BrokerTLS `yaml:"tls"`
	ACL BrokerACL `yaml:"acl"`
}

// BrokerTLS configures TLS on the connections to brokers and NameServers.
type BrokerTLS struct {
	Enabled            bool     `yaml:"enabled" help:"connect to brokers and NameServers with TLS"`
	CAFile             string   `yaml:"caFile" help:"PEM file of the certificate authorities that sign the brokers' certificates; empty: the system's"`
	ServerName         string   `yaml:"serverName" help:"name checked against the brokers' certificates; empty: the host of each address"`
	MinVersion         string   `yaml:"minVersion" help:"lowest TLS version rmqproxy accepts from brokers and NameServers (cluster.tls.enabled): 1.2 or 1.3 (a broker that speaks only TLS 1.2 then fails the connection, and the start-up when it is a NameServer)"`
	CipherSuites       []string `yaml:"cipherSuites" help:"TLS 1.2 cipher suites rmqproxy offers brokers and NameServers (cluster.tls.enabled), by IANA name (such as TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384), forward-secret (TLS_ECDHE_) ones without known weaknesses only; empty: Go's defaults; TLS 1.3 suites cannot be chosen"`
	InsecureSkipVerify bool     `yaml:"insecureSkipVerify" help:"accept any broker certificate (tests only; refused by the production profile: set caFile instead)"`
}

// BrokerACL holds the credentials rmqproxy signs its broker requests with
// (RocketMQ's classic ACL, AclClientRPCHook).
type BrokerACL struct {
	AccessKey string `yaml:"accessKey" help:"access key of the brokers' ACL; empty: requests are not signed"`
	SecretKey string `yaml:"secretKey" secret:"true" help:"secret key of the brokers' ACL"`
}

// DefaultConfig returns the defaults: a NameServer on localhost, the
// cluster name RocketMQ brokers use by default, and the Apache proxy's
// timeouts where it has them.
func DefaultConfig() Config {
	return Config{
		NameServers:          []string{"127.0.0.1:9876"},
		ClusterName:          "DefaultCluster",
		RequestTimeout:       5 * time.Second,
		DialTimeout:          3 * time.Second,
		StartTimeout:         10 * time.Second,
		ConnectionsPerBroker: 2,
		MaxInFlight:          1024,
		RouteTTL:             20 * time.Second,
		Isolation:            10 * time.Second,
		HeartbeatInterval:    10 * time.Second,
		BatchAck:             true,
		CoalesceSends:        true,
		TLS:                  BrokerTLS{MinVersion: tlspolicy.Default},
	}
}

// Validate checks the configuration; each message names the yaml key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.NameServers) == 0 {
		bad("nameServers must list at least one NameServer address (host:port)")
	}
	for _, a := range c.NameServers {
		shown := redact.Userinfo(a) // a NameServer takes no credentials: never echo them
		if strings.Contains(a, ";") {
			// RocketMQ's namesrvAddr (and NAMESRV_ADDR) separate with
			// semicolons; the error said only "not host:port".
			bad("nameServers: %q lists addresses separated by semicolons, as RocketMQ's namesrvAddr does: separate them with commas "+
				"(--cluster.nameServers=ns1:9876,ns2:9876, RMQPROXY_CLUSTER_NAME_SERVERS alike) or list them in the file", shown)
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || strings.ContainsAny(host, "@/") {
			if hint := listenaddr.IPv6Hint(a, 9876); hint != "" {
				bad("nameServers: %q is not host:port%s", shown, hint)
				continue
			}
			bad("nameServers: %q is not host:port (a NameServer address takes no scheme, user or password)", shown)
			continue
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			bad("nameServers: %q: port must be a number between 1 and 65535", shown)
		}
	}
	if strings.TrimSpace(c.ClusterName) == "" {
		bad("clusterName must not be empty (the brokerClusterName of the brokers, DefaultCluster unless they set one)")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"requestTimeout", c.RequestTimeout}, {"dialTimeout", c.DialTimeout}, {"startTimeout", c.StartTimeout},
		{"routeTTL", c.RouteTTL}, {"heartbeatInterval", c.HeartbeatInterval}} {
		if d.v <= 0 {
			bad("%s must be > 0, got %v", d.key, d.v)
		}
	}
	if c.Isolation < 0 {
		bad("isolation must be >= 0 (0 never avoids a failed broker), got %v", c.Isolation)
	}
	if c.HeartbeatInterval >= 120*time.Second {
		bad("heartbeatInterval must be shorter than the brokers' 120 s client expiry, got %v", c.HeartbeatInterval)
	}
	if c.ConnectionsPerBroker < 1 || c.ConnectionsPerBroker > 64 {
		bad("connectionsPerBroker must be in [1, 64], got %d", c.ConnectionsPerBroker)
	}
	if c.MaxInFlight < 1 {
		bad("maxInFlight must be at least 1, got %d", c.MaxInFlight)
	}
	if _, err := tlspolicy.ParseMinVersion(c.TLS.MinVersion); err != nil {
		bad("tls.minVersion %w", err)
	}
	if _, err := tlspolicy.ParseCipherSuites(c.TLS.CipherSuites); err != nil {
		bad("tls.cipherSuites %w", err)
	}
	const aclBoth = "set both (the user the brokers' ACL knows rmqproxy as) or neither"
	switch {
	case c.ACL.AccessKey == "" && c.ACL.SecretKey != "":
		bad("acl.secretKey is set but acl.accessKey is empty: %s", aclBoth) // the secret is never echoed
	case c.ACL.AccessKey != "" && c.ACL.SecretKey == "":
		bad("acl.accessKey %q is set but acl.secretKey is empty: %s", c.ACL.AccessKey, aclBoth)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// Module provides the cluster adapter as *Broker, [ports.Broker],
// [ports.Metadata], [ports.Admin], [ports.Transactions], [ports.Recaller],
// [ports.Offsets], [ports.ClientTracker], [ports.MessageLookup] and
// [ports.ConsumerRelay], and its readiness check
// ("cluster", see [Broker.Ready]) to the health server. It takes Config,
// *slog.Logger and [ports.Clock] from the container. OnStart fails when no
// NameServer answers within Config.StartTimeout; OnStop stops the
// heartbeats, unregisters this proxy from the brokers and closes every
// connection. The hooks are appended by the module's invoke, so that
// modules listed before it (the health server) start first and report the
// wait.
var Module = brokermodule.Module("cluster", New,
	func(b *Broker) func(context.Context) error { return b.readiness },
	new(ports.ClientTracker),
	new(ports.ConsumerRelay),
)

// The ports the adapter implements.
var (
	_ ports.Broker        = (*Broker)(nil)
	_ ports.Metadata      = (*Broker)(nil)
	_ ports.Admin         = (*Broker)(nil)
	_ ports.Transactions  = (*Broker)(nil)
	_ ports.Recaller      = (*Broker)(nil)
	_ ports.Offsets       = (*Broker)(nil)
	_ ports.ClientTracker = (*Broker)(nil)
)

// readiness is Ready for the health server: serving from cached routes
// while no NameServer answers is degraded, not failing.
func (b *Broker) readiness(ctx context.Context) error {
	err := b.Ready(ctx)
	if cached := (*CachedRoutesError)(nil); errors.As(err, &cached) {
		return health.Degraded(err)
	}
	return err
}
