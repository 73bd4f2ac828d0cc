package otel

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/redact"
)

// OTLPConfig says where spans (and, with metrics.otlp, metrics) are
// exported (key otlp).
type OTLPConfig struct {
	Protocol string        `yaml:"protocol" enum:"grpc,http" help:"OTLP transport: grpc (default port 4317) or http (protobuf over HTTP, default port 4318)"`
	Endpoint string        `yaml:"endpoint" help:"URL of the OTLP receiver (a collector): http://host:port is plaintext, https://host:port is TLS (an http:// URL needs its port; https:// without one is port 443); empty: http://127.0.0.1:4317 for grpc, http://127.0.0.1:4318 for http; no user name or password (the exporter would not send them): put credentials in otlp.headers"`
	Headers  string        `yaml:"headers" secret:"true" help:"headers sent with every export, as key=value pairs separated by commas (such as an authorization token); printed redacted"`
	Timeout  time.Duration `yaml:"timeout" help:"how long one export may take before it is abandoned"`
}

// TracingConfig turns tracing on (key tracing).
type TracingConfig struct {
	Enabled     bool    `yaml:"enabled" help:"trace every request with OpenTelemetry and export the spans over OTLP (see otlp.*); off by default, and off costs nothing"`
	SampleRatio float64 `yaml:"sampleRatio" help:"fraction of traces kept, between 0 and 1, for requests that carry no sampling decision; a request whose caller (traceparent metadata) or message (trace_context, or a traceparent user property) carries a trace context follows that context's decision"`
}

// MetricsConfig says which metrics are kept and where they go (key
// metrics).
type MetricsConfig struct {
	Enabled      bool          `yaml:"enabled" help:"record metrics (RocketMQ's rocketmq_* names and rmqproxy_* ones; see docs/observability.md)"`
	Prometheus   bool          `yaml:"prometheus" help:"serve the metrics in the Prometheus text format at /metrics on health.address and admin.address"`
	OTLP         bool          `yaml:"otlp" help:"also push the metrics over OTLP to otlp.endpoint every metrics.otlpInterval"`
	OTLPInterval time.Duration `yaml:"otlpInterval" help:"how often metrics are pushed over OTLP; at least 1s"`
	Topics       []string      `yaml:"topics" help:"topics whose metrics carry their own topic label; every other topic is counted under topic=\"_other\"; empty: the first metrics.maxTopics topics seen"`
	Groups       []string      `yaml:"groups" help:"consumer groups whose metrics carry their own consumer_group label; every other group is counted under \"_other\"; empty: the first metrics.maxGroups groups seen"`
	MaxTopics    int           `yaml:"maxTopics" help:"with no metrics.topics list, how many topics get a label of their own (bounds the number of time series); a topic deleted through rmqproxy frees its label for the next new topic"`
	MaxGroups    int           `yaml:"maxGroups" help:"with no metrics.groups list, how many consumer groups get a label of their own; a group deleted through rmqproxy frees its label"`
}

// Protocols of OTLP export.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// DefaultOTLPConfig returns the defaults: gRPC to a collector on this host.
func DefaultOTLPConfig() OTLPConfig {
	return OTLPConfig{Protocol: ProtocolGRPC, Timeout: 10 * time.Second}
}

// DefaultTracingConfig returns the defaults: off, every trace kept once on.
func DefaultTracingConfig() TracingConfig { return TracingConfig{SampleRatio: 1} }

// DefaultMetricsConfig returns the defaults: metrics on, served to
// Prometheus, not pushed; 100 topics and 100 groups labelled.
func DefaultMetricsConfig() MetricsConfig {
	return MetricsConfig{Enabled: true, Prometheus: true, OTLPInterval: time.Minute, MaxTopics: 100, MaxGroups: 100}
}

// Validate checks the protocol, the endpoint URL and the headers.
func (c OTLPConfig) Validate() error {
	var errs []error
	if c.Protocol != ProtocolGRPC && c.Protocol != ProtocolHTTP {
		errs = append(errs, fmt.Errorf("protocol %q must be grpc or http", c.Protocol))
	}
	if c.Endpoint != "" {
		if _, _, err := parseEndpoint(c.Endpoint); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := parseHeaders(c.Headers); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout must be positive, not %v", c.Timeout))
	}
	return errors.Join(errs...)
}

// Validate checks the sample ratio.
func (c TracingConfig) Validate() error {
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("sampleRatio %v must be between 0 and 1 (0.01 keeps one trace in a hundred)", c.SampleRatio)
	}
	return nil
}

// Validate checks the interval (never negative; at least 1s with OTLP
// push on) and the label bounds.
func (c MetricsConfig) Validate() error {
	var errs []error
	// A negative interval is a mistake even while metrics.otlp is off: it
	// would surface only once the push is turned on.
	if c.OTLPInterval < 0 || c.OTLP && c.OTLPInterval < time.Second {
		errs = append(errs, fmt.Errorf("otlpInterval must be at least 1s, not %v", c.OTLPInterval))
	}
	if c.MaxTopics < 0 {
		errs = append(errs, fmt.Errorf("maxTopics must not be negative (0 counts every topic under \"_other\"), not %d", c.MaxTopics))
	}
	if c.MaxGroups < 0 {
		errs = append(errs, fmt.Errorf("maxGroups must not be negative (0 counts every group under \"_other\"), not %d", c.MaxGroups))
	}
	for _, n := range append(append([]string(nil), c.Topics...), c.Groups...) {
		if strings.TrimSpace(n) == "" {
			errs = append(errs, errors.New("topics and groups must not contain empty names"))
			break
		}
	}
	return errors.Join(errs...)
}

// endpoint returns the host:port and whether the connection is plaintext.
func (c OTLPConfig) endpoint() (hostPort string, insecure bool) {
	if c.Endpoint == "" {
		if c.Protocol == ProtocolHTTP {
			return "127.0.0.1:4318", true
		}
		return "127.0.0.1:4317", true
	}
	hostPort, insecure, _ = parseEndpoint(c.Endpoint)
	return hostPort, insecure
}

// parseEndpoint reads otlp.endpoint. Its errors show the URL with any
// userinfo hidden ([redact.Userinfo]), and a URL with userinfo is refused:
// the OTLP exporters dial the host and port alone, so a user name and
// password written there would never reach the collector, yet config
// print and the logs would show them; credentials go in otlp.headers,
// a secret.
func parseEndpoint(s string) (hostPort string, insecure bool, err error) {
	shown := redact.Userinfo(s)
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false, fmt.Errorf("endpoint %q must be a URL such as http://127.0.0.1:4317 (plaintext) or https://collector.example.com:4317 (TLS)", shown)
	}
	if u.User != nil || shown != s {
		return "", false, fmt.Errorf("endpoint %q must not carry a user name or password, which the exporter would not send: "+
			"remove them and put the credentials in otlp.headers (such as authorization=Basic followed by the base64 of user:password), a secret best set through RMQPROXY_OTLP_HEADERS", shown)
	}
	// The exporters dial an http:// host without a port on gRPC's 443 (in
	// plaintext) or HTTP's 80, never OTLP's 4317 or 4318, which the
	// settings' help names: the port is asked for. An https:// one goes to
	// 443, as a collector behind an HTTPS load balancer expects.
	switch p := u.Port(); {
	case p == "" && u.Scheme == "http":
		return "", false, fmt.Errorf("endpoint %q has no port: add it, such as http://%s (OTLP over gRPC; 4318 for otlp.protocol http), "+
			"or use https:// for a TLS collector on 443", shown, net.JoinHostPort(u.Hostname(), "4317"))
	case p != "":
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return "", false, fmt.Errorf("endpoint %q: port %s is not a number between 1 and 65535", shown, p)
		}
	}
	if u.Path != "" && u.Path != "/" {
		return "", false, fmt.Errorf("endpoint %q must not have a path: the OTLP paths (/v1/traces, /v1/metrics) are added", shown)
	}
	return u.Host, u.Scheme == "http", nil
}

func parseHeaders(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for i, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			// The value may be a secret: name the position, not the text.
			return nil, errors.New("headers must be key=value pairs separated by commas")
		}
		// Checked here because the exporters check only when they
		// send: a name gRPC metadata refuses, or a value with a control
		// or non-ASCII byte, failed every export (each logged, the data
		// dropped) while the start went fine. Neither is echoed: a
		// misplaced separator can put a secret in the name.
		if !validHeaderName(k) {
			return nil, fmt.Errorf("headers: the name of header %d is not a header name: use letters, digits and - _ . only (such as authorization=Bearer TOKEN)", i+1)
		}
		v = strings.TrimSpace(v)
		if !printableASCII(v) {
			return nil, fmt.Errorf("headers: the value of header %d has a character other than printable ASCII (space to ~), which gRPC metadata and HTTP headers cannot carry", i+1)
		}
		out[k] = v
	}
	return out, nil
}

// validHeaderName reports whether k is a name both exporters send: gRPC
// metadata takes [0-9a-z-_.] (the exporter lowercases names), every one
// of which is an HTTP token character.
func validHeaderName(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
