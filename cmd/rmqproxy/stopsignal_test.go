package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
)

// TestOneSignalIsNotTakenForTwo sends the process one SIGTERM the way
// serve sees it: fx relays it to its App.Done (as it does for the first
// SIGTERM or SIGINT of every serve) and rmqproxy's own signal channel gets
// it too. The stop must take it as the signal that asks for the stop, not
// as a second one that hurries it (the drain notice and the gRPC drain
// ended at once when the wait woke on fx's relay first and left the
// signal for the stop to find). Each round gives the two channels the
// signal before the wait, the race's worst case.
func TestOneSignalIsNotTakenForTwo(t *testing.T) {
	// Whoever else listens, a SIGTERM must not end this test binary.
	sink := make(chan os.Signal, 64)
	signal.Notify(sink, syscall.SIGTERM)
	defer signal.Stop(sink)
	cfg := app.Defaults(app.ProfileDevelopment)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for round := range 32 {
		a := fx.New(fx.NopLogger)
		if err := a.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		relayed := a.Done() // starts fx's relay of SIGTERM and SIGINT
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-relayed:
		case <-time.After(30 * time.Second):
			t.Fatal("fx did not relay the SIGTERM within 30s")
		}
		sig := make(chan os.Signal, 1)
		sig <- syscall.SIGTERM // the same signal, on rmqproxy's channel
		hurry, hurryNow := context.WithCancel(context.Background())
		if err := awaitStop(a, cfg, log, sig, hurry, hurryNow); err != nil {
			t.Fatal(err)
		}
		if hurry.Err() != nil || len(sig) != 0 {
			t.Fatalf("round %d: one SIGTERM was taken for two (stop hurried: %v; the signal left unread: %v)", round, hurry.Err() != nil, len(sig) != 0)
		}
		hurryNow()
	}
}
