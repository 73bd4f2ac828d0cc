package app

import (
	"context"
	"sync/atomic"
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
// the start is cancelled (see [WithStartCancel]); a start cancelled
// already does not run the hook.
func (l *stagedLifecycle) start(ctx context.Context, hook func(context.Context) error) error {
	c, ok := ctx.Value(startKey{}).(startControl)
	if !ok {
		return hook(ctx)
	}
	if c.progress != nil && l.stage.starting != "" {
		c.progress.doing.Store(&l.stage.starting)
	}
	if err := c.cancel.Err(); err != nil {
		return err
	}
	// The hook's context is not cancelled when the hook returns: a hook
	// may keep it for work it starts (as fx allows).
	hctx, cancel := context.WithCancel(ctx)
	defer context.AfterFunc(c.cancel, cancel)()
	return hook(hctx)
}
