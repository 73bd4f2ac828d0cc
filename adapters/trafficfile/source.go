package trafficfile

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/settledfile"
	"github.com/rmqproxy/rmqproxy/application"
)

// Source loads the rules file into an [application.Traffic] and keeps it
// current: every interval it reloads the file when its content changed,
// and [Source.Reload] (SIGHUP) reloads it at once.
type Source struct {
	path     string
	interval time.Duration
	traffic  *application.Traffic
	log      *slog.Logger

	reload chan struct{} // a pending reload request; capacity 1

	// settle waits between the two reads of a changed file
	// (settledfile.Wait); tests replace it to write during the wait. An
	// empty file read in the middle of a rewrite would lift every limit.
	settle func(ctx context.Context)

	mu   sync.Mutex // guards sum and fail
	sum  [32]byte
	fail error

	stop context.CancelFunc
	done sync.WaitGroup
}

// NewSource returns a source of the file at path for traffic.
func NewSource(path string, interval time.Duration, traffic *application.Traffic, log *slog.Logger) *Source {
	return &Source{path: path, interval: interval, traffic: traffic, log: log, reload: make(chan struct{}, 1), settle: settledfile.Wait}
}

// read decodes the file and returns its rules and content hash.
func (s *Source) read() (application.TrafficRules, [32]byte, error) {
	st, err := os.Stat(s.path)
	if err != nil {
		return application.TrafficRules{}, [32]byte{}, fmt.Errorf("traffic rules: %w", err)
	}
	if st.Size() > MaxFileSize {
		return application.TrafficRules{}, [32]byte{}, fmt.Errorf("traffic rules file %s is larger than %d bytes", s.path, MaxFileSize)
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return application.TrafficRules{}, [32]byte{}, fmt.Errorf("traffic rules: %w", err)
	}
	sum := sha256.Sum256(data)
	r, err := Decode(data)
	if err != nil {
		return application.TrafficRules{}, sum, fmt.Errorf("traffic rules file %s: %w", s.path, err)
	}
	return r, sum, nil
}

// Start puts the file's rules in force, failing when it does not load,
// and starts watching it.
func (s *Source) Start(ctx context.Context) error {
	r, sum, err := s.read()
	if err != nil {
		return fmt.Errorf("%w (traffic.rulesFile)", err)
	}
	rev, err := s.traffic.SetRules(r)
	if err != nil {
		return fmt.Errorf("traffic rules file %s: %w", s.path, err)
	}
	s.sum = sum
	s.log.LogAttrs(ctx, slog.LevelInfo, "traffic rules loaded", slog.String("file", s.path), slog.Int64("revision", rev))
	wctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.done.Go(func() { s.watch(wctx) })
	return nil
}

// Stop stops watching and waits for the watcher.
func (s *Source) Stop(context.Context) error {
	if s.stop != nil {
		s.stop()
		s.done.Wait()
	}
	return nil
}

// Reload asks for the file to be read again now, whether or not it
// changed; it does not wait. Requests made while one is pending merge.
func (s *Source) Reload() {
	select {
	case s.reload <- struct{}{}:
	default:
	}
}

func (s *Source) watch(ctx context.Context) {
	var tick <-chan time.Time
	if s.interval > 0 {
		t := time.NewTicker(s.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-s.reload:
			forced = true
		}
		s.check(ctx, forced)
	}
}

// check reloads the file when it changed or when forced. A changed file
// is applied only once it has settled (see settledfile); a file still
// being written is left for the next check.
func (s *Source) check(ctx context.Context, forced bool) {
	r, sum, settled, err := settledfile.Read(ctx, s.read, s.changed, s.settle)
	if ctx.Err() != nil {
		return
	}
	if !settled {
		s.log.LogAttrs(ctx, slog.LevelDebug, "traffic rules file is being written; checking again later", slog.String("file", s.path))
		if forced {
			// A reload asked for (SIGHUP) is not dropped: with
			// traffic.reloadInterval 0 no tick would check again.
			s.Reload()
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && sum == s.sum && !forced {
		s.setFail(ctx, nil)
		return
	}
	if err == nil {
		var rev int64
		if rev, err = s.traffic.SetRules(r); err == nil {
			s.sum = sum
			s.log.LogAttrs(ctx, slog.LevelInfo, "traffic rules reloaded", slog.String("file", s.path), slog.Int64("revision", rev))
		}
	}
	s.setFail(ctx, err)
}

// changed reports whether content with sum differs from the rules in force.
func (s *Source) changed(sum [32]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sum != s.sum
}

func (s *Source) setFail(ctx context.Context, err error) {
	if err != nil && (s.fail == nil || s.fail.Error() != err.Error()) {
		_, rev := s.traffic.Rules()
		s.log.LogAttrs(ctx, slog.LevelWarn, "traffic rules file not reloaded; the rules in force stay",
			slog.Int64("revision", rev), slog.Any("error", err))
	}
	s.fail = err
}

// Health reports why the last reload failed, or nil.
func (s *Source) Health() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		_, rev := s.traffic.Rules()
		return fmt.Errorf("enforcing traffic rules revision %d; %v", rev, s.fail)
	}
	return nil
}
