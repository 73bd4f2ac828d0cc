package app_test

import (
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
)

func TestProductionProfileTurnsOffReflection(t *testing.T) {
	if !app.Defaults(app.ProfileDevelopment).GRPC.Reflection {
		t.Error("the development profile serves no gRPC reflection")
	}
	if app.Defaults(app.ProfileProduction).GRPC.Reflection {
		t.Error("the production profile serves gRPC reflection")
	}
}

// TestProductionProfileRefusesInsecureSkipVerify: cluster.tls.insecureSkipVerify
// (tests only) is refused by the production profile, from any source, with
// an error that names the setting and says to configure the CA instead;
// the development profile accepts it.
func TestProductionProfileRefusesInsecureSkipVerify(t *testing.T) {
	for _, src := range []config.Sources{
		{Args: []string{"--cluster.tls.insecureSkipVerify=true"}},
		{Env: []string{"RMQPROXY_CLUSTER_TLS_INSECURE_SKIP_VERIFY=true"}},
		{Args: []string{"--mode=cluster", "--cluster.tls.enabled=true", "--cluster.tls.insecureSkipVerify"}},
	} {
		cfg := app.Defaults(app.ProfileProduction)
		err := config.Load(&cfg, src)
		if err == nil || !strings.Contains(err.Error(), "cluster.tls.insecureSkipVerify true accepts any broker certificate") ||
			!strings.Contains(err.Error(), "set cluster.tls.caFile") {
			t.Errorf("production %+v: got %v", src, err)
		}
		dev := app.Defaults(app.ProfileDevelopment)
		if err := config.Load(&dev, src); err != nil || !dev.Cluster.TLS.InsecureSkipVerify {
			t.Errorf("development %+v: %v", src, err)
		}
	}
	cfg := app.Defaults(app.ProfileProduction)
	if err := config.Load(&cfg, config.Sources{Args: []string{"--cluster.tls.insecureSkipVerify=false"}}); err != nil {
		t.Errorf("production without insecureSkipVerify: %v", err)
	}
}
