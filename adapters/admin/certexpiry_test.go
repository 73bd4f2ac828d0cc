package admin_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/internal/metrictest"
	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/test/testenv/certtest"
)

// TestCertificateExpiryIsObserved: with admin.tls.enabled the API reports
// the NotAfter of its certificate under listener="admin", and one that
// expires within admin.tls.expiryWarning is logged at Warn at start.
func TestCertificateExpiryIsObserved(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")
	notAfter := time.Now().Add(time.Hour).Truncate(time.Second)
	certtest.SelfSigned(t, certtest.Spec{Serial: 7, Hosts: []string{"localhost"}, NotAfter: notAfter}).WriteFiles(t, cert, key)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	m, err := observe.NewMetrics(mp.Meter("test"), observe.NewLabels(nil, 10, nil, 10))
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger(t)
	cfg := admin.DefaultConfig()
	cfg.Address = "127.0.0.1:0"
	cfg.TLS = admin.TLSConfig{Enabled: true, CertFile: cert, KeyFile: key, ExpiryWarning: admin.DefaultExpiryWarning}
	srv := admin.New(cfg, application.NewAdmin(newFakeStore(), fixedClock{}), logger)
	srv.UseTelemetry(&observe.Telemetry{Metrics: m})
	collect := func() map[string]int64 {
		got := map[string]int64{}
		mt, ok := metrictest.Metric(t, reader, observe.MetricTLSCertificateExpiry)
		if _, gauge := mt.Data.(metricdata.Gauge[int64]); ok && !gauge {
			t.Fatalf("%s is no int64 gauge", mt.Name)
		}
		for _, p := range metrictest.Int64Points(mt) {
			l, _ := p.Attributes.Value(observe.LabelListener)
			got[l.AsString()] = p.Value
		}
		return got
	}
	if got := collect(); len(got) != 0 {
		t.Fatalf("before start: %v, want no series", got)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	if got := collect(); len(got) != 1 || got["admin"] != notAfter.Unix() {
		t.Errorf("%s: %v, want admin=%d", observe.MetricTLSCertificateExpiry, got, notAfter.Unix())
	}
	if out := logs.String(); strings.Count(out, `"level":"WARN","msg":"TLS certificate in use expires soon`) != 1 || !strings.Contains(out, "admin.crt") {
		t.Errorf("a certificate expiring in an hour is not warned about at start:\n%s", out)
	}
}
