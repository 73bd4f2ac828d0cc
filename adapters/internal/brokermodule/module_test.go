package brokermodule_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/adapters/internal/brokermodule"
	"github.com/rmqproxy/rmqproxy/ports"
)

type starter interface{ Start(context.Context) error }

// fakeBroker has the methods of the required ports (never called).
type fakeBroker struct {
	ports.Broker
	ports.Metadata
	ports.Admin
	ports.Transactions
	ports.Recaller
	ports.Offsets
	ports.MessageLookup
	events *[]string
}

func (f *fakeBroker) Start(context.Context) error { *f.events = append(*f.events, "start"); return nil }
func (f *fakeBroker) Close(context.Context) error { *f.events = append(*f.events, "close"); return nil }
func (f *fakeBroker) ready(context.Context) error { return errors.New("not started") }

// TestModule: the adapter is provided as itself, as the required ports and
// as each optional one, its check joins the readiness group under the
// module's name, and its hooks run after those of modules listed before it.
func TestModule(t *testing.T) {
	var events []string
	var self *fakeBroker
	var port starter
	var broker ports.Broker
	var lookup ports.MessageLookup
	var checks struct {
		fx.In
		All []health.Check `group:"readiness"`
	}
	app := fxtest.New(t,
		fx.Module("before", fx.Invoke(func(lc fx.Lifecycle) { // listed before, as the health server
			lc.Append(fx.Hook{
				OnStart: func(context.Context) error { events = append(events, "before start"); return nil },
				OnStop:  func(context.Context) error { events = append(events, "before stop"); return nil },
			})
		})),
		brokermodule.Module("fake",
			func() *fakeBroker { events = append(events, "built"); return &fakeBroker{events: &events} },
			func(b *fakeBroker) func(context.Context) error { return b.ready },
			new(starter)),
		fx.Populate(&self, &port, &broker, &lookup, &checks),
	)
	if port != starter(self) || broker != ports.Broker(self) || lookup != ports.MessageLookup(self) {
		t.Fatal("the ports are not bound to the adapter")
	}
	if len(checks.All) != 1 || checks.All[0].Name != "fake" || checks.All[0].Check(t.Context()) == nil {
		t.Fatalf("readiness checks: %+v", checks.All)
	}
	app.RequireStart()
	app.RequireStop()
	want := []string{"built", "before start", "start", "close", "before stop"}
	if !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
}
