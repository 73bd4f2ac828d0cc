package otel_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/otel"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
)

// TestStopWithUnreachableCollector: the final flush at stop cannot reach
// the OTLP collector. Like every failed export it is logged and its data
// dropped; the module's stop (within its budget) does not fail (which made rmqproxy exit 1
// after a clean SIGTERM whenever the collector was down).
func TestStopWithUnreachableCollector(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close() // nothing listens there
	for _, protocol := range []string{otel.ProtocolGRPC, otel.ProtocolHTTP} {
		t.Run(protocol, func(t *testing.T) {
			var logs logbuf.Buffer
			oc := otel.DefaultOTLPConfig()
			oc.Protocol, oc.Endpoint = protocol, endpoint
			mc := otel.DefaultMetricsConfig()
			mc.OTLP = true
			tc := otel.DefaultTracingConfig()
			tc.Enabled = true
			app := fx.New(fx.NopLogger,
				fx.Supply(oc, mc, tc, otel.Logging{}, otel.Info{Mode: "local"}, slog.New(slog.NewTextHandler(&logs, nil))),
				fx.Decorate(func(lc fx.Lifecycle) fx.Lifecycle { return budgeted{lc, 500 * time.Millisecond} }),
				otel.Module,
				fx.Invoke(func(p *otel.Provider) {
					_, span := p.Telemetry().Tracer.Start(context.Background(), "buffered")
					span.End()
				}))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := app.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := app.Stop(ctx); err != nil {
				t.Fatalf("stop failed: %v", err)
			}
			if !strings.Contains(logs.String(), "final telemetry flush failed") {
				t.Errorf("the failed flush is not logged:\n%s", logs.String())
			}
		})
	}
}

// budgeted gives each OnStop hook a budget of its own, as rmqproxy's
// shutdown stages do: the whole stop's context outlasts it.
type budgeted struct {
	fx.Lifecycle
	budget time.Duration
}

func (b budgeted) Append(h fx.Hook) {
	if stop := h.OnStop; stop != nil {
		h.OnStop = func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, b.budget)
			defer cancel()
			return stop(ctx)
		}
	}
	b.Lifecycle.Append(h)
}
