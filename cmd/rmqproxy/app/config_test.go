package app_test

import (
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
)

// TestStoreHostFollowsGRPCAddress: local.storeHost is derived from
// grpc.address unless set, from any source.
func TestStoreHostFollowsGRPCAddress(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{nil, nil, "127.0.0.1:8081"},
		{[]string{"--grpc.address=:9876"}, nil, "127.0.0.1:9876"},
		{[]string{"--grpc.address=0.0.0.0:9876"}, nil, "127.0.0.1:9876"},
		{[]string{"--grpc.address=[::]:9876"}, nil, "127.0.0.1:9876"},
		{[]string{"--grpc.address=10.1.2.3:9876"}, nil, "10.1.2.3:9876"},
		{[]string{"--grpc.address=[fd00::1]:9876"}, nil, "[fd00::1]:9876"},
		{[]string{"--grpc.address=myhost:9876"}, nil, "127.0.0.1:9876"},
		{nil, []string{"RMQPROXY_GRPC_ADDRESS=127.0.0.2:1"}, "127.0.0.2:1"},
		{[]string{"--grpc.address=:9876", "--local.storeHost=10.0.0.9:1234"}, nil, "10.0.0.9:1234"},
		{[]string{"--grpc.address=:9876"}, []string{"RMQPROXY_LOCAL_STORE_HOST=10.0.0.9:1234"}, "10.0.0.9:1234"},
	}
	for _, tt := range tests {
		cfg := app.Defaults(app.ProfileDevelopment)
		if err := config.Load(&cfg, config.Sources{Args: tt.args, Env: tt.env}); err != nil {
			t.Fatalf("%v %v: %v", tt.args, tt.env, err)
		}
		if cfg.Local.StoreHost != tt.want {
			t.Errorf("%v %v: storeHost %s, want %s", tt.args, tt.env, cfg.Local.StoreHost, tt.want)
		}
	}
	// An unusable grpc.address is reported once, under its own key.
	cfg := app.Defaults(app.ProfileDevelopment)
	err := config.Load(&cfg, config.Sources{Args: []string{"--grpc.address=nowhere"}})
	if err == nil || err.Error() != `grpc.address "nowhere" is not host:port: missing port in address` {
		t.Fatalf("got %v", err)
	}
	// A port alone (as a YAML number, "address: 18081", or a flag) said
	// only "missing port in address"; it now says how to write it.
	for _, tt := range []struct{ arg, want string }{
		{"--grpc.address=18081", `grpc.address "18081" is not host:port: missing port in address; for port 18081 on every interface write ":18081"`},
		{"--health.address=19090", `health.address "19090" is not host:port, such as :9090; for port 19090 on every interface write ":19090"`},
		{"--admin.address=18082", `admin.address "18082" is not host:port, such as 127.0.0.1:8082; for port 18082 on loopback only write "127.0.0.1:18082"`},
	} {
		cfg := app.Defaults(app.ProfileDevelopment)
		err := config.Load(&cfg, config.Sources{Args: []string{tt.arg}})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: got %v\nwant %s", tt.arg, err, tt.want)
		}
	}
}

// TestListenersOnOnePortAreRefused: two listeners of the proxy on one
// port failed at start on the second bind, with an error that blamed
// another process; the configuration check now names both settings.
func TestListenersOnOnePortAreRefused(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // "" for accepted
	}{
		{[]string{"--health.address=127.0.0.1:8081"}, `grpc.address ":8081" and health.address "127.0.0.1:8081" would listen on the same port`},
		{[]string{"--grpc.address=127.0.0.1:9090"}, `grpc.address "127.0.0.1:9090" and health.address ":9090" would listen on the same port`},
		{[]string{"--health.address=127.0.0.1:8082"}, `health.address "127.0.0.1:8082" and admin.address "127.0.0.1:8082"`},
		{[]string{"--grpc.address=[::]:7000", "--admin.address=[::1]:7000"}, `grpc.address "[::]:7000" and admin.address "[::1]:7000"`},
		{[]string{"--grpc.address=127.0.0.1:7000", "--health.address=127.0.0.2:7000"}, ""},
		{[]string{"--health.address=127.0.0.1:8082", "--admin.enabled=false"}, ""},
		{[]string{"--grpc.address=127.0.0.1:0", "--health.address=127.0.0.1:0", "--admin.address=127.0.0.1:0"}, ""},
		{nil, ""},
	} {
		cfg := app.Defaults(app.ProfileDevelopment)
		err := config.Load(&cfg, config.Sources{Args: tt.args})
		if tt.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tt.args, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "give each its own port") {
			t.Errorf("%v: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}

// TestEnumSettingsIgnoreCase: every setting that takes one of a few words
// takes them in any case, from a flag, the environment or the file, and
// holds the documented spelling afterwards (log.level=DEBUG was accepted
// while log.format=JSON, mode=LOCAL or local.flush=ASYNC were refused); a
// word it does not take is refused naming the setting and every accepted
// word.
func TestEnumSettingsIgnoreCase(t *testing.T) {
	for _, tt := range []struct {
		key, given string
		get        func(app.Root) string
		want       string
		accepted   string
	}{
		{"mode", "LOCAL", func(r app.Root) string { return r.Mode }, "local", "local or cluster"},
		{"profile", "Production", func(r app.Root) string { return r.Profile }, "production", "development or production"},
		{"log.level", "DEBUG", func(r app.Root) string { return r.Log.Level }, "debug", "debug, info, warn or error"},
		{"log.format", "JSON", func(r app.Root) string { return r.Log.Format }, "json", "text or json"},
		{"grpc.tls.mode", "Enforcing", func(r app.Root) string { return r.GRPC.TLS.Mode }, "enforcing", "permissive, enforcing or disabled"},
		{"grpc.tls.clientAuth", "NONE", func(r app.Root) string { return r.GRPC.TLS.ClientAuth }, "none", "none, request or require"},
		{"grpc.auth.clockSkew", "UTC", func(r app.Root) string { return r.GRPC.Auth.ClockSkew }, "utc", "any_offset, utc or off"},
		{"local.flush", "ASYNC", func(r app.Root) string { return r.Local.Flush }, "async", "sync or async"},
		{"local.recovery", "Truncate", func(r app.Root) string { return r.Local.Recovery }, "truncate", "strict or truncate"},
		{"local.autoCreateTopicType", "fifo", func(r app.Root) string { return r.Local.AutoCreateTopicType }, "FIFO", "NORMAL, FIFO, DELAY, TRANSACTION or MIXED"},
		{"local.transactionCheckMaxAction", "COMMIT", func(r app.Root) string { return r.Local.TransactionCheckMaxAction }, "commit", "rollback, commit or keep"},
		{"auth.source", "FILE", func(r app.Root) string { return r.Auth.Source }, "file", "postgres or file"},
		{"auth.conflictResolution", "RocketMQ", func(r app.Root) string { return r.Auth.ConflictResolution }, "rocketmq", "deny_overrides or rocketmq"},
		{"otlp.protocol", "HTTP", func(r app.Root) string { return r.OTLP.Protocol }, "http", "grpc or http"},
	} {
		for _, src := range []config.Sources{
			{Args: []string{"--" + tt.key + "=" + tt.given}},
			{Env: []string{envOf(tt.key) + "=" + tt.given}},
		} {
			cfg := app.Defaults(app.ProfileDevelopment)
			if err := config.Load(&cfg, src); err != nil {
				t.Errorf("%s=%s: %v", tt.key, tt.given, err)
				continue
			}
			if got := tt.get(cfg); got != tt.want {
				t.Errorf("%s=%s: holds %q, want %q", tt.key, tt.given, got, tt.want)
			}
		}
		cfg := app.Defaults(app.ProfileDevelopment)
		err := config.Load(&cfg, config.Sources{Args: []string{"--" + tt.key + "=bogus"}})
		if err == nil || !strings.Contains(err.Error(), tt.key) || !strings.Contains(err.Error(), tt.accepted) || !strings.Contains(err.Error(), `"bogus"`) {
			t.Errorf("%s=bogus: got %v, want an error naming the setting, the value and %s", tt.key, err, tt.accepted)
		}
	}
}

// envOf is the environment variable of a setting's key.
func envOf(key string) string {
	for _, s := range config.Reference(app.Defaults(app.ProfileDevelopment)) {
		if s.Key == key {
			return s.Env
		}
	}
	panic("no setting " + key)
}

// TestIPv6AddressesWithoutBracketsSayHowToWriteThem: an IPv6 address
// written as RocketMQ writes it (namesrvAddr, brokerIP1 with a port:
// "::1:9876") or without a port was refused with "not host:port" alone
// (for cluster.nameServers: "takes no scheme, user or password"), which
// does not tell an operator what is wrong; the error now shows the
// bracketed form.
func TestIPv6AddressesWithoutBracketsSayHowToWriteThem(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--grpc.address=fd00::1:8081"}, "[fd00::1]:8081"},
		{[]string{"--grpc.address=[::1]"}, "[::1]:8081"},
		{[]string{"--admin.address=::1:8082"}, "[::1]:8082"},
		{[]string{"--health.address=::1:9090"}, "[::1]:9090"},
		{[]string{"--local.storeHost=::1:8081"}, "[::1]:8081"},
		{[]string{"--mode=cluster", "--cluster.nameServers=::1:9876"}, "[::1]:9876"},
		{[]string{"--mode=cluster", "--cluster.nameServers=[::1]:9876,fd00::2:9876"}, "[fd00::2]:9876"},
	} {
		cfg := app.Defaults(app.ProfileDevelopment)
		err := config.Load(&cfg, config.Sources{Args: tt.args})
		if err == nil || !strings.Contains(err.Error(), "an IPv6 address goes in brackets, then the port: "+tt.want) {
			t.Errorf("%v: got %v, want it to show %s", tt.args, err, tt.want)
		}
	}
}
