package app

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// StartProgress tells what a start is doing: the stage whose OnStart
// hooks run (see [WithStartCancel]).
type StartProgress struct {
	doing atomic.Pointer[string]
}

// Doing describes what the start is doing now ("recovering the data
// directory (local.dataDir)"), or "starting" before the first stage.
func (p *StartProgress) Doing() string {
	if s := p.doing.Load(); s != nil {
		return *s
	}
	return "starting"
}

type startKey struct{}

type startControl struct {
	cancel   context.Context
	progress *StartProgress
}

// WithStartCancel returns a context for fx's Start under which the start
// is cancelled once cancel is done: what a SIGTERM or SIGINT during the
// start asks. The OnStart hook running then sees its context end (it
// returns, undoing its own work), the later hooks do not run, and fx stops
// the hooks that had started, in reverse order, each stage with its stop
// budget (and hurried as [WithHurry] says when ctx carries a hurry).
// The context fx itself gets is not cancelled: fx would return at once,
// before the running hook has returned, and roll back nothing. progress,
// if not nil, is told which stage starts.
func WithStartCancel(ctx, cancel context.Context, progress *StartProgress) context.Context {
	return context.WithValue(ctx, startKey{}, startControl{cancel: cancel, progress: progress})
}

// start runs one OnStart hook of the stage, under a context that ends when
// the start is cancelled (see [WithStartCancel]) or the stage's start
// budget has passed; a start cancelled already does not run the hook. A
// hook cut off by the budget fails saying what it did and for how long:
// fx then stops what had started, in order, as after a signal (the
// context fx holds has no deadline, which would leave fx nothing to stop
// with).
func (l *stagedLifecycle) start(ctx context.Context, hook func(context.Context) error) error {
	c, ok := ctx.Value(startKey{}).(startControl)
	if ok {
		if c.progress != nil && l.stage.starting != "" {
			c.progress.doing.Store(&l.stage.starting)
		}
		if err := c.cancel.Err(); err != nil {
			return err
		}
	}
	// The hook's context is not cancelled when the hook returns: a hook
	// may keep it for work it starts (as fx allows).
	hctx, cancel := context.WithCancelCause(ctx)
	cancelled, overrun := func() { cancel(context.Canceled) }, func() { cancel(errStartBudget) }
	if ok {
		defer context.AfterFunc(c.cancel, cancelled)()
	}
	budget := l.stage.startBudget
	if budget > 0 {
		defer time.AfterFunc(budget, overrun).Stop()
	}
	err := hook(hctx)
	if err != nil && errors.Is(context.Cause(hctx), errStartBudget) {
		what := l.stage.starting
		if what == "" {
			what = "the start of " + l.stage.name
		}
		return fmt.Errorf("%s did not finish within %v (the start gives each stage that long): %w", what, budget, err)
	}
	return err
}

// errStartBudget is the cause of a start hook's context cut off by its
// stage's start budget.
var errStartBudget = errors.New("start budget exceeded")
