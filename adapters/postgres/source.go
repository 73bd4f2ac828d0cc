package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// PolicyChannel is the NOTIFY channel the schema's triggers announce new
// policy revisions on.
const PolicyChannel = "rmqproxy_policy"

// Source follows the policy in PostgreSQL (ports.PolicySource): a
// dedicated connection LISTENs for revision announcements, and a ticker
// checks the revision every reloadInterval in case a notification was
// missed. Reloads are serialized and load any policy version other than
// the one in force (a restored database's revision may be lower, or the
// same with another policy: see policyVersion).
type Source struct {
	store *Store
	dsn   string
	cfg   Config
	log   *slog.Logger

	// reloadMu serializes reloads, which wait on PostgreSQL (up to 30 s
	// when it hangs); mu guards the fields below and is never held while
	// waiting on PostgreSQL, so that Health (the readiness probe) answers
	// at once while a reload waits. Lock order: reloadMu, then mu.
	reloadMu sync.Mutex
	mu       sync.Mutex
	current  policyVersion
	listen   error // why the LISTEN connection is down
	load     error // why the last reload failed
}

var _ ports.PolicySource = (*Source)(nil)

// NewSource returns a source reading through store and listening with its
// own connection to dsn.
func NewSource(store *Store, dsn string, cfg Config, log *slog.Logger) *Source {
	return &Source{store: store, dsn: dsn, cfg: cfg, log: log}
}

// Load implements ports.PolicySource.
func (s *Source) Load(ctx context.Context) (domain.PolicySnapshot, error) {
	snap, v, err := s.store.loadSnapshot(ctx)
	if err == nil {
		s.mu.Lock()
		s.current = v
		s.mu.Unlock()
	}
	return snap, err
}

// Health implements ports.PolicySource.
func (s *Source) Health() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.listen != nil:
		return fmt.Errorf("enforcing policy revision %d; PostgreSQL unreachable: %v", s.current.revision, s.listen)
	case s.load != nil:
		return fmt.Errorf("enforcing policy revision %d; reloading failed: %v", s.current.revision, s.load)
	}
	return nil
}

// Watch implements ports.PolicySource.
func (s *Source) Watch(ctx context.Context, current int64, apply func(domain.PolicySnapshot) error) {
	s.mu.Lock()
	if current > s.current.revision {
		s.current = policyVersion{revision: current}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { s.listenLoop(ctx, apply) })
	wg.Go(func() {
		t := time.NewTicker(s.cfg.ReloadInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.reload(ctx, apply)
			}
		}
	})
	wg.Wait()
}

// reload loads and applies the policy if the database's policy version
// differs from the one in force. A revision lower than the one in force is
// loaded too, and so is the same revision changed at another time: the
// database went back (restored from a backup, failed over to a standby
// that missed the last commits, migrated down and up), and what it holds
// now is the policy, whatever this proxy saw before. (A notification's
// revision is not trusted to say "nothing new" either: in such a database
// it may be the one in force.)
func (s *Source) reload(ctx context.Context, apply func(domain.PolicySnapshot) error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.mu.Lock()
	current := s.current
	s.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := s.store.version(rctx)
	if err != nil {
		s.setLoad(ctx, redact(err))
		return
	}
	if v.same(current) {
		s.setLoad(ctx, nil)
		return
	}
	snap, v, err := s.store.loadSnapshot(rctx)
	if err != nil {
		s.setLoad(ctx, err)
		return
	}
	if err := apply(snap); err != nil {
		s.setLoad(ctx, fmt.Errorf("policy revision %d refused: %w", snap.Revision, err))
		return
	}
	level := slog.LevelInfo
	if snap.Revision <= current.revision {
		level = slog.LevelWarn // the database went back; say so
	}
	s.log.LogAttrs(ctx, level, "policy loaded", slog.Int64("revision", snap.Revision),
		slog.Int64("previous_revision", current.revision), slog.Int("users", len(snap.Users)), slog.Int("entries", len(snap.Entries)))
	s.mu.Lock()
	s.current = v
	s.mu.Unlock()
	s.setLoad(ctx, nil)
}

// setLoad records the outcome of a reload.
func (s *Source) setLoad(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && s.load == nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "policy reload failed; the policy in force stays", slog.Int64("revision", s.current.revision), slog.Any("error", err))
	}
	if err == nil && s.load != nil {
		s.log.LogAttrs(ctx, slog.LevelInfo, "policy reloads work again", slog.Int64("revision", s.current.revision))
	}
	s.load = err
}

func (s *Source) setListen(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && s.listen == nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "lost PostgreSQL: enforcing the policy in force until it is back",
			slog.Int64("revision", s.current.revision), slog.Any("error", err))
	}
	if err == nil && s.listen != nil {
		s.log.LogAttrs(ctx, slog.LevelInfo, "PostgreSQL reachable again; listening for policy changes", slog.Int64("revision", s.current.revision))
	}
	s.listen = err
}

// listenLoop keeps a LISTEN connection open, reconnecting after
// reconnectDelay, and reloads on every notification and after every
// (re)connect, which catches changes made while it was disconnected.
func (s *Source) listenLoop(ctx context.Context, apply func(domain.PolicySnapshot) error) {
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, apply)
		if ctx.Err() != nil {
			return
		}
		s.setListen(ctx, redact(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.ReconnectDelay):
		}
	}
}

func (s *Source) listenOnce(ctx context.Context, apply func(domain.PolicySnapshot) error) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(cctx, s.dsn)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+PolicyChannel); err != nil {
		return err
	}
	s.setListen(ctx, nil)
	s.reload(ctx, apply)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		s.reload(ctx, apply)
	}
}
