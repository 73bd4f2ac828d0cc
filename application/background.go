package application

import (
	"context"
	"sync"
)

// Run performs the background work of the messaging use cases (expiry of
// silent clients, auto-renewal of held messages, dispatch of transaction
// check-backs) until ctx ends, and returns once it has stopped.
func (m *Messaging) Run(ctx context.Context) { m.Start(ctx)() }

// Start starts the background work of Run, whose goroutines run once it
// returns, until ctx ends; wait returns once they have stopped. The
// composition root owns them through wait.
func (m *Messaging) Start(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() { m.sessions.run(ctx, sessionSweepPeriod) })
	wg.Go(func() { m.renewer.run(ctx) })
	wg.Go(func() { m.dispatchChecks(ctx) })
	return wg.Wait
}
