package grpc

import (
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/listenaddr"
	"github.com/rmqproxy/rmqproxy/adapters/internal/redact"
	"github.com/rmqproxy/rmqproxy/adapters/internal/tlspolicy"
)

// Config is the gRPC ingress configuration (key "grpc").
type Config struct {
	Address                    string        `yaml:"address" help:"listen address of the MessagingService (host:port; :8081 listens on every interface)"`
	TLS                        TLSConfig     `yaml:"tls"`
	MaxRecvMessageSize         int64         `yaml:"maxRecvMessageSize" unit:"bytes" help:"largest gRPC request accepted"`
	ClientIdleTimeout          time.Duration `yaml:"clientIdleTimeout" help:"close connections idle for this long"`
	KeepaliveTime              time.Duration `yaml:"keepaliveTime" help:"a connection from which nothing has arrived for this long is pinged (HTTP/2 PING), and closed if the client does not answer within keepaliveTimeout: the connections of clients whose host died or was cut off without a TCP reset are freed with their streams (a Telemetry stream holds an in-flight slot and takes transaction check-backs) instead of after the operating system's TCP timeouts (hours); the official clients heartbeat every 10 s, so a live one is rarely pinged; 0: never ping (grpc-go's and the Apache proxy's default of 2 h)"`
	KeepaliveTimeout           time.Duration `yaml:"keepaliveTimeout" help:"how long a client has to answer a keepalive ping (see keepaliveTime) before its connection is closed"`
	HandshakeTimeout           time.Duration `yaml:"handshakeTimeout" help:"time a new connection has to finish its TLS or HTTP/2 handshake"`
	UseEndpointPortFromRequest bool          `yaml:"useEndpointPortFromRequest" help:"advertise the port the client dialled in routes instead of this listener's port (behind port-mapping load balancers)"`
	MaxInflightPerKind         int           `yaml:"maxInflightPerKind" help:"requests of one kind (route, producer, consumer, long poll, client, Telemetry stream, transaction, other services' stream) served at once before new ones get TOO_MANY_REQUESTS (RESOURCE_EXHAUSTED for the other services: grpc.health.v1 Watch, server reflection); long polls and streams count for as long as they are open"`
	ThrottledSendHold          time.Duration `yaml:"throttledSendHold" help:"how long the answer to a send refused with TOO_MANY_REQUESTS (a rate limit, an in-flight cap, a full disk, an unreachable broker) is held, with the request's slots already freed, so that a client resending at once without backoff cannot make the proxy spend its cores on refusals (at most half of the request's remaining deadline); 0: answer at once"`
	MaxHeaderListSize          int64         `yaml:"maxHeaderListSize" unit:"bytes" help:"largest header block (metadata) of a request; larger ones reset their stream (the Apache proxy's limit, grpc-java's default)"`
	FlowControlWindow          int64         `yaml:"flowControlWindow" unit:"bytes" help:"fixed HTTP/2 flow-control window of each stream and connection; fixing it turns off grpc-go's window estimation, which pings the client after data arrives (a round trip of frames per request: about 14 % of a lone Go client's CPU per send here), but caps what one connection carries per round trip (1 MiB per RTT at 1048576); 0: estimated windows (64 KiB growing up to 16 MiB), as the Apache proxy's grpc-java auto-tunes its 1 MiB start"`
	MaxConcurrentStreams       int           `yaml:"maxConcurrentStreams" help:"streams (calls) one connection may have open at once; more are refused and the clients queue them"`
	MaxConnectionsPerAddress   int           `yaml:"maxConnectionsPerAddress" help:"connections one client IP address (an IPv6 /64) may hold; more are closed at once (raise it when many clients share an address behind NAT); 0: no limit"`
	MaxConnections             int           `yaml:"maxConnections" help:"connections the port holds at once, from all addresses together (including those still in their TLS or HTTP/2 handshake), so that clients spread over many addresses cannot use up the process's file descriptors and memory; more are closed at once; 0: no limit"`
	MaxStreamResetsPerSecond   int           `yaml:"maxStreamResetsPerSecond" help:"stream resets a connection may cause per second on average (its RST_STREAM frames, and the frames that make the server reset a stream: a WINDOW_UPDATE of increment 0 on it, DATA after its end), with bursts of ten times as many; a connection resetting faster is closed (HTTP/2 rapid reset, MadeYouReset); 0: no limit"`
	ResponseWriteTimeout       time.Duration `yaml:"responseWriteTimeout" help:"how long writing one message of a ReceiveMessage or PullMessage answer may wait while less than 16 KiB is written to the client's connection; a client that does not read it (its HTTP/2 flow-control window stays shut) has its connection closed (one that reads slowly goes on, for at most ten times this per message), and the messages not written are made visible again instead of being held for as long as the client keeps the connection; 0: no limit"`
	SettingsTimeout            time.Duration `yaml:"settingsTimeout" help:"a Telemetry stream that sends no client settings within this time is ended"`
	RequestReadTimeout         time.Duration `yaml:"requestReadTimeout" help:"a call (other than Telemetry, see settingsTimeout) whose request message has not arrived within this time of its headers, and whose deadline is later or absent, is ended with gRPC CANCELLED, so that a client cannot hold streams by sending headers only; 0: no limit"`
	Reflection                 bool          `yaml:"reflection" help:"serve gRPC server reflection (lets tools such as grpcurl list the services); off in the production profile"`
	Auth                       AuthConfig    `yaml:"auth"`
}

// TLSConfig selects the transport security of the gRPC port.
type TLSConfig struct {
	Mode          string `yaml:"mode" enum:"permissive,enforcing,disabled" help:"permissive (TLS and plaintext on one port, the clients' defaults), enforcing (TLS only) or disabled (plaintext only)"`
	CertFile      string `yaml:"certFile" help:"PEM certificate chain; empty: a self-signed certificate is generated in selfSignedDir"`
	KeyFile       string `yaml:"keyFile" help:"PEM private key of certFile"`
	SelfSignedDir string `yaml:"selfSignedDir" help:"where the generated self-signed certificate is kept; empty: the tls folder of the data directory"`
	// MinVersion is the lowest TLS version the port accepts.
	MinVersion string `yaml:"minVersion" help:"lowest TLS version the gRPC port accepts: 1.2 (every official client speaks it) or 1.3 (a client that offers only TLS 1.2 is refused during its handshake and counted in rmqproxy_handshake_failures_total with reason tls_version; plaintext clients of the permissive mode are not affected)"`
	// CipherSuites limits the TLS 1.2 cipher suites.
	CipherSuites []string `yaml:"cipherSuites" help:"TLS 1.2 cipher suites the gRPC port accepts, by IANA name (such as TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384), forward-secret (TLS_ECDHE_) ones without known weaknesses only, at least one for the key of certFile (ECDSA or RSA); empty: Go's defaults; TLS 1.3 suites cannot be chosen, so this does not apply to TLS 1.3 clients"`
	// Client certificates (mTLS).
	ClientAuth   string `yaml:"clientAuth" enum:"none,request,require" help:"client certificates: none (default), request (verified against clientCAFile when a client sends one) or require (a client without a valid certificate is refused; needs grpc.tls.mode enforcing)"`
	ClientCAFile string `yaml:"clientCAFile" help:"PEM bundle of the CAs that sign client certificates (clientAuth request or require); reloaded with the certificate"`
	// ReloadInterval is how often the files are checked for changes.
	ReloadInterval time.Duration `yaml:"reloadInterval" help:"how often certFile, keyFile and clientCAFile are checked for changes; a changed pair that loads is served to new connections without restart (a bad one is logged and the old one kept); 0: never"`
	// ExpiryWarning is how long before its NotAfter the certificate in use
	// is reported.
	ExpiryWarning time.Duration `yaml:"expiryWarning" help:"log a warning (once per certificate, at start and at every reloadInterval) when the certificate served expires within this time, and an error once it has expired; 0: never (the gauge rmqproxy_tls_certificate_expiry_timestamp_seconds is kept either way)"`
}

// DefaultExpiryWarning is how long before it expires a certificate in use
// is reported by default.
const DefaultExpiryWarning = 14 * 24 * time.Hour

// DefaultConfig returns the Apache proxy's defaults.
func DefaultConfig() Config {
	return Config{
		Address:            ":8081",
		TLS:                TLSConfig{Mode: TLSPermissive, MinVersion: tlspolicy.Default, ClientAuth: ClientAuthNone, ReloadInterval: 30 * time.Second, ExpiryWarning: DefaultExpiryWarning},
		MaxRecvMessageSize: 130 << 20,
		ClientIdleTimeout:  120 * time.Second,
		KeepaliveTime:      time.Minute,
		KeepaliveTimeout:   20 * time.Second,
		HandshakeTimeout:   10 * time.Second,
		MaxInflightPerKind: 10000,
		ThrottledSendHold:  20 * time.Millisecond,
		MaxHeaderListSize:  8 << 10,
		// The official clients keep one connection per endpoint and use a
		// stream per call; producers may have many sends in flight.
		MaxConcurrentStreams:     1000,
		MaxConnectionsPerAddress: 1000,
		MaxConnections:           20000,
		MaxStreamResetsPerSecond: 100,
		ResponseWriteTimeout:     30 * time.Second,
		SettingsTimeout:          10 * time.Second,
		RequestReadTimeout:       10 * time.Second,
		Reflection:               true,
		Auth:                     DefaultAuthConfig(),
	}
}

// Validate reports unusable settings.
func (c Config) Validate() error {
	var errs []error
	if err := listenaddr.CheckUser(c.Address, "127.0.0.1:8081"); err != nil {
		errs = append(errs, err)
	} else if host, port, err := net.SplitHostPort(c.Address); err != nil {
		reason := err.Error()
		if ae := (*net.AddrError)(nil); errors.As(err, &ae) {
			reason = ae.Err // without the address, which may carry userinfo
		}
		errs = append(errs, fmt.Errorf("address %q is not host:port: %s%s%s", redact.Userinfo(c.Address), reason, listenaddr.IPv6Hint(c.Address, 8081), listenaddr.PortOnlyHint(c.Address, false)))
	} else if err := listenaddr.CheckHost(c.Address, host, "127.0.0.1:8081"); err != nil {
		errs = append(errs, err)
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		errs = append(errs, fmt.Errorf("address %q: port %q is not a number between 0 and 65535 (or a service name of /etc/services)", redact.Userinfo(c.Address), port))
	}
	switch c.TLS.Mode {
	case TLSPermissive, TLSEnforcing, TLSDisabled:
	default:
		errs = append(errs, fmt.Errorf("tls.mode %q must be permissive, enforcing or disabled", c.TLS.Mode))
	}
	if _, err := tlspolicy.ParseMinVersion(c.TLS.MinVersion); err != nil {
		errs = append(errs, fmt.Errorf("tls.minVersion %w", err))
	}
	if _, err := tlspolicy.ParseCipherSuites(c.TLS.CipherSuites); err != nil {
		errs = append(errs, fmt.Errorf("tls.cipherSuites %w", err))
	}
	const pair = "set both (a PEM certificate chain and its private key) or neither (a self-signed certificate)"
	switch {
	case c.TLS.CertFile != "" && c.TLS.KeyFile == "":
		errs = append(errs, fmt.Errorf("tls.certFile %q is set but tls.keyFile is empty: %s", c.TLS.CertFile, pair))
	case c.TLS.CertFile == "" && c.TLS.KeyFile != "":
		errs = append(errs, fmt.Errorf("tls.keyFile %q is set but tls.certFile is empty: %s", c.TLS.KeyFile, pair))
	}
	switch c.TLS.ClientAuth {
	case ClientAuthNone:
	case ClientAuthRequest, ClientAuthRequire:
		if c.TLS.ClientCAFile == "" {
			errs = append(errs, fmt.Errorf("tls.clientAuth %s needs tls.clientCAFile, the CAs client certificates are verified against", c.TLS.ClientAuth))
		}
		if c.TLS.Mode == TLSDisabled {
			errs = append(errs, fmt.Errorf("tls.clientAuth %s needs TLS: set tls.mode to enforcing", c.TLS.ClientAuth))
		}
		if c.TLS.ClientAuth == ClientAuthRequire && c.TLS.Mode == TLSPermissive {
			errs = append(errs, errors.New("tls.clientAuth require needs tls.mode enforcing: in permissive mode a plaintext client, which presents no certificate, is served"))
		}
	default:
		errs = append(errs, fmt.Errorf("tls.clientAuth %q must be none, request or require", c.TLS.ClientAuth))
	}
	if c.TLS.ReloadInterval < 0 {
		errs = append(errs, errors.New("tls.reloadInterval must not be negative (0: never reload)"))
	}
	if c.TLS.ExpiryWarning < 0 {
		errs = append(errs, errors.New("tls.expiryWarning must not be negative (0: no warning)"))
	}
	if c.MaxRecvMessageSize < 1<<20 {
		errs = append(errs, errors.New("maxRecvMessageSize must be at least 1MiB"))
	}
	if c.ClientIdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("clientIdleTimeout must be positive, not %v", c.ClientIdleTimeout))
	}
	if c.KeepaliveTime != 0 && c.KeepaliveTime < time.Second {
		errs = append(errs, fmt.Errorf("keepaliveTime must be 0 (never ping) or at least 1s, not %v", c.KeepaliveTime))
	}
	if c.KeepaliveTimeout <= 0 {
		errs = append(errs, fmt.Errorf("keepaliveTimeout must be positive, not %v", c.KeepaliveTimeout))
	}
	if c.HandshakeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("handshakeTimeout must be positive, not %v", c.HandshakeTimeout))
	}
	if c.MaxInflightPerKind < 1 {
		errs = append(errs, errors.New("maxInflightPerKind must be at least 1"))
	}
	if c.ThrottledSendHold < 0 {
		errs = append(errs, errors.New("throttledSendHold must not be negative (0: answer at once)"))
	}
	if c.MaxHeaderListSize < 1<<10 || c.MaxHeaderListSize > 1<<30 {
		errs = append(errs, errors.New("maxHeaderListSize must be between 1KiB and 1GiB"))
	}
	if c.FlowControlWindow != 0 && (c.FlowControlWindow < 64<<10 || c.FlowControlWindow > 1<<30) {
		errs = append(errs, errors.New("flowControlWindow must be 0 (estimated) or between 64KiB and 1GiB"))
	}
	if c.MaxConcurrentStreams < 1 || c.MaxConcurrentStreams > math.MaxUint32 {
		errs = append(errs, errors.New("maxConcurrentStreams must be between 1 and 4294967295 (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)"))
	}
	for _, n := range []struct {
		key   string
		value int
	}{{"maxConnectionsPerAddress", c.MaxConnectionsPerAddress}, {"maxConnections", c.MaxConnections}, {"maxStreamResetsPerSecond", c.MaxStreamResetsPerSecond}} {
		if n.value < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative (0: no limit), not %d", n.key, n.value))
		}
	}
	if c.ResponseWriteTimeout < 0 {
		errs = append(errs, errors.New("responseWriteTimeout must not be negative (0: no limit)"))
	}
	if c.RequestReadTimeout < 0 {
		errs = append(errs, errors.New("requestReadTimeout must not be negative (0: no limit)"))
	}
	if c.SettingsTimeout <= 0 {
		errs = append(errs, errors.New("settingsTimeout must be positive"))
	}
	return errors.Join(errs...)
}
