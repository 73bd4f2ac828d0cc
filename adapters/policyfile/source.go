package policyfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/chansend"
	"github.com/rmqproxy/rmqproxy/adapters/internal/settledfile"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Source reads the policy file (ports.PolicySource) and reloads it when its
// content changes (checked every interval). The revision counts the
// versions this process loaded.
type Source struct {
	path     string
	interval time.Duration
	log      *slog.Logger

	// settle waits between the two reads of a changed file
	// (settledfile.Wait); tests replace it to write during the wait. An
	// empty file read in the middle of a rewrite would be a policy of no
	// users: every client refused, its streams and long polls revoked.
	settle func(ctx context.Context)

	mu   sync.Mutex
	sum  [32]byte
	rev  int64
	fail error
}

var _ ports.PolicySource = (*Source)(nil)

// NewSource returns a source for the file at path.
func NewSource(path string, interval time.Duration, log *slog.Logger) *Source {
	return &Source{path: path, interval: interval, log: log, settle: settledfile.Wait}
}

func (s *Source) read() (domain.PolicySnapshot, [32]byte, error) {
	st, err := os.Stat(s.path)
	if err != nil {
		return domain.PolicySnapshot{}, [32]byte{}, fmt.Errorf("policy file: %w", err)
	}
	if st.Size() > MaxFileSize {
		return domain.PolicySnapshot{}, [32]byte{}, fmt.Errorf("policy file %s is larger than %d bytes", s.path, MaxFileSize)
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return domain.PolicySnapshot{}, [32]byte{}, fmt.Errorf("policy file: %w", err)
	}
	sum := sha256.Sum256(data)
	users, entries, err := Decode(data)
	if err != nil {
		return domain.PolicySnapshot{}, sum, fmt.Errorf("policy file %s: %w", s.path, err)
	}
	for _, u := range users {
		if len(u.Secrets) == 0 {
			return domain.PolicySnapshot{}, sum, fmt.Errorf("policy file %s: user %q has no secret", s.path, u.Name)
		}
	}
	return domain.PolicySnapshot{Users: users, Entries: entries}, sum, nil
}

// Load implements ports.PolicySource.
func (s *Source) Load(context.Context) (domain.PolicySnapshot, error) {
	snap, sum, err := s.read()
	if err != nil {
		return snap, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	s.sum = sum
	snap.Revision = s.rev
	return snap, nil
}

// Watch implements ports.PolicySource.
func (s *Source) Watch(ctx context.Context, _ int64, apply func(domain.PolicySnapshot) error) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap, sum, settled, err := settledfile.Read(ctx, s.read, s.changed, s.settle)
		if ctx.Err() != nil {
			return
		}
		if !settled {
			s.log.LogAttrs(ctx, slog.LevelDebug, "policy file is being written; checking again later", slog.String("file", s.path))
			continue
		}
		s.mu.Lock()
		if err == nil && sum == s.sum {
			s.setFail(ctx, nil)
			s.mu.Unlock()
			continue
		}
		if err == nil {
			snap.Revision = s.rev + 1
			if err = apply(snap); err == nil {
				s.rev, s.sum = snap.Revision, sum
				s.log.LogAttrs(ctx, slog.LevelInfo, "policy file reloaded", slog.String("file", s.path), slog.Int64("revision", s.rev),
					slog.Int("users", len(snap.Users)), slog.Int("entries", len(snap.Entries)))
			}
		}
		s.setFail(ctx, err)
		s.mu.Unlock()
	}
}

// changed reports whether content with sum differs from the policy in
// force.
func (s *Source) changed(sum [32]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sum != s.sum
}

func (s *Source) setFail(ctx context.Context, err error) {
	if err != nil && (s.fail == nil || s.fail.Error() != err.Error()) {
		s.log.LogAttrs(ctx, slog.LevelWarn, "policy file not reloaded; the policy in force stays", slog.Int64("revision", s.rev), slog.Any("error", err))
	}
	s.fail = err
}

// Health implements ports.PolicySource.
func (s *Source) Health() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return fmt.Errorf("enforcing policy revision %d; %v", s.rev, s.fail)
	}
	return nil
}

// LogAudit is an audit sink that writes each event as one JSON line to the
// process log (component audit), whatever its level (log.level), through
// a bounded buffer: Record never blocks, and events that do not fit are
// counted in Dropped.
type LogAudit struct {
	log     *slog.Logger
	ch      chan domain.AuditEvent
	dropped atomic.Uint64
	written atomic.Uint64
	stop    context.CancelFunc
	done    sync.WaitGroup
}

var _ ports.AuditSink = (*LogAudit)(nil)

// NewLogAudit returns a sink with a buffer of size events.
func NewLogAudit(log *slog.Logger, size int) *LogAudit {
	return &LogAudit{log: log, ch: make(chan domain.AuditEvent, size)}
}

// Record implements ports.AuditSink.
func (a *LogAudit) Record(e domain.AuditEvent) {
	select {
	case a.ch <- e:
	default:
		a.dropped.Add(1)
	}
}

// RecordWithin implements ports.AuditSink.
func (a *LogAudit) RecordWithin(ctx context.Context, e domain.AuditEvent, wait time.Duration) bool {
	if chansend.Within(ctx, a.ch, e, wait) {
		return true
	}
	a.dropped.Add(1)
	return false
}

// Dropped implements ports.AuditSink.
func (a *LogAudit) Dropped() uint64 { return a.dropped.Load() }

// Stats implements ports.AuditSink.
func (a *LogAudit) Stats() ports.AuditStats {
	return ports.AuditStats{Written: a.written.Load(), Dropped: a.dropped.Load(), Buffered: len(a.ch), Capacity: cap(a.ch)}
}

// Start starts the writing goroutine.
func (a *LogAudit) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	a.done.Go(func() {
		for {
			select {
			case <-ctx.Done():
				for {
					select {
					case e := <-a.ch:
						a.write(e)
					default:
						return
					}
				}
			case e := <-a.ch:
				a.write(e)
			}
		}
	})
	return nil
}

// Stop writes what is buffered and stops.
func (a *LogAudit) Stop(context.Context) error {
	if a.stop != nil {
		a.stop()
		a.done.Wait()
	}
	return nil
}

func (a *LogAudit) write(e domain.AuditEvent) {
	var ip string
	if e.SourceIP.IsValid() {
		ip = e.SourceIP.String()
	}
	var buf bytes.Buffer
	fields := map[string]any{
		"time": e.Time, "category": e.Category, "principal": e.Principal, "source_ip": ip, "protocol": e.Protocol,
		"operation": e.Operation, "resource": e.Resource, "actions": e.Actions, "decision": e.Decision, "reason": e.Reason,
		"policy_revision": e.Revision, "request_id": e.RequestID, "client_id": e.ClientID,
	}
	if e.Count() > 1 || !e.LastTime.IsZero() {
		// A coalesced event: how many refusals and the last one's time.
		fields["occurrences"], fields["last_time"] = e.Count(), e.LastTime
	}
	if e.Details != "" && json.Valid([]byte(e.Details)) {
		// How a coalesced event was formed; what a revocation ended.
		fields["details"] = json.RawMessage(e.Details)
	}
	_ = json.NewEncoder(&buf).Encode(fields)
	// Straight to the handler, at Info: Logger.Info drops a record below
	// the handler's level, and the audit log must not depend on log.level
	// (a proxy run at warn or error would record no audit event at all).
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "audit", 0)
	r.AddAttrs(slog.String("event", string(bytes.TrimSpace(buf.Bytes()))))
	_ = a.log.Handler().Handle(context.Background(), r)
	a.written.Add(1)
}
