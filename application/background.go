package application

import (
	"context"
	"sync"
)

// Run performs the background work of the messaging use cases (expiry of
// silent clients, auto-renewal of held messages, dispatch of transaction
// check-backs) until ctx ends, and returns once it has stopped. The
// composition root owns the goroutine that calls it.
func (m *Messaging) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); m.sessions.run(ctx, sessionSweepPeriod) }()
	go func() { defer wg.Done(); m.renewer.run(ctx) }()
	go func() { defer wg.Done(); m.dispatchChecks(ctx) }()
	wg.Wait()
}
