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
