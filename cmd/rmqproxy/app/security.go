package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/casbin"
	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/adapters/policyfile"
	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// policyFileInterval is how often the policy file is checked for changes.
const policyFileInterval = 2 * time.Second

// securityModule wires authentication and authorization: the use case
// always (with auth.enabled false it authenticates nothing and only strips
// reserved metadata), and with auth.enabled the casbin authorizer and the
// policy source and audit sink of auth.source (PostgreSQL, or the policy
// file with audit events in the log).
func securityModule(cfg Root) fx.Option {
	opts := []fx.Option{fx.Provide(newSecurity), fx.Invoke(runSecurity)}
	if !cfg.Auth.Enabled {
		return fx.Module("security", opts...)
	}
	mode, _ := domain.ParseConflictMode(cfg.Auth.ConflictResolution)
	opts = append(opts, fx.Provide(func() ports.PolicyCompiler { return casbin.NewCompiler(mode, cfg.Auth.CacheSize) }))
	switch cfg.Auth.Source {
	case application.SourcePostgres:
		opts = append(opts, postgres.Module)
	case application.SourceFile:
		opts = append(opts, fx.Provide(
			func(log *slog.Logger) ports.PolicySource {
				return policyfile.NewSource(cfg.Auth.File, policyFileInterval, log.With("component", "security"))
			},
			func(lc fx.Lifecycle, log *slog.Logger) ports.AuditSink {
				a := policyfile.NewLogAudit(log.With("component", "audit"), 65536)
				lc.Append(fx.Hook{OnStart: a.Start, OnStop: a.Stop})
				return a
			},
		))
	}
	return fx.Module("security", opts...)
}

type securityParams struct {
	fx.In

	Config   application.SecurityConfig
	Log      *slog.Logger
	Source   ports.PolicySource   `optional:"true"`
	Compiler ports.PolicyCompiler `optional:"true"`
	Audit    ports.AuditSink      `optional:"true"`
	Clock    ports.Clock
	LC       fx.Lifecycle
}

type securityResult struct {
	fx.Out

	Security *application.Security
	Check    health.Check `group:"readiness"`
}

func newSecurity(p securityParams) (securityResult, error) {
	audit := p.Audit
	if audit != nil {
		// Repeated refusals are coalesced in front of the sink; its hook
		// is appended after the sink's, so it stops first and hands every
		// count it holds to the sink before the sink writes its last batch.
		c := application.NewAuditCoalescer(audit, p.Clock, p.Config.AuditCoalesce, p.Log.With("component", "audit"))
		p.LC.Append(fx.Hook{OnStart: c.Start, OnStop: c.Stop})
		audit = c
	}
	sec, err := application.NewSecurity(application.SecurityParams{
		Config: p.Config, Source: p.Source, Compiler: p.Compiler, Audit: audit, Log: p.Log.With("component", "security"),
	})
	if err != nil {
		return securityResult{}, err
	}
	check := health.Check{Name: "security", Check: func(context.Context) error {
		if err := sec.Health(); err != nil {
			return health.Degraded(err)
		}
		return nil
	}}
	return securityResult{Security: sec, Check: check}, nil
}

// runSecurity loads the first policy at start (a proxy with auth.enabled
// does not serve without one) and follows the source until stop.
func runSecurity(lc fx.Lifecycle, sec *application.Security, log *slog.Logger) {
	var (
		cancel context.CancelFunc
		wg     sync.WaitGroup
	)
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			if err := sec.Load(ctx); err != nil {
				return err
			}
			if sec.Enabled() {
				log.Info("authentication and authorization on", "policy_revision", sec.Revision(), "conflict_resolution", sec.Mode().String())
			}
			var runCtx context.Context
			runCtx, cancel = context.WithCancel(context.Background())
			wg.Go(func() { sec.Run(runCtx) })
			return nil
		},
		OnStop: func(ctx context.Context) error {
			cancel()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return errors.New("the security policy watcher did not stop in time")
			}
		},
	})
}
