package admin_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"log/slog"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)

type fixedClock struct{}

func (fixedClock) Now() time.Time { return testNow }

// fakeStore is an in-memory ports.Admin: the layer below the use case the
// server drives. fail, when set, is returned by every method; block, when
// set, makes ListTopics wait for it (or for ctx) after signalling entered.
type fakeStore struct {
	mu      sync.Mutex
	topics  map[string]domain.Topic
	groups  map[string]domain.ConsumerGroup
	stats   map[string][]ports.QueueStats
	fail    error
	resets  []ports.ResetOffsetRequest // the ResetOffset calls
	block   chan struct{}
	entered chan struct{}
}

func newFakeStore() *fakeStore {
	return &fakeStore{topics: map[string]domain.Topic{}, groups: map[string]domain.ConsumerGroup{}, stats: map[string][]ports.QueueStats{}}
}

func (f *fakeStore) failing() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail
}

func (f *fakeStore) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeStore) CreateTopic(_ context.Context, t domain.Topic) (domain.Topic, error) {
	if err := f.failing(); err != nil {
		return domain.Topic{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.topics[t.Name]; ok {
		return domain.Topic{}, domain.Errorf(domain.ReasonAlreadyExists, "topic %q already exists", t.Name)
	}
	f.topics[t.Name] = t
	return t, nil
}

func (f *fakeStore) UpdateTopic(_ context.Context, t domain.Topic) (domain.Topic, error) {
	if err := f.failing(); err != nil {
		return domain.Topic{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.topics[t.Name]; !ok {
		return domain.Topic{}, domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist", t.Name)
	}
	f.topics[t.Name] = t
	return t, nil
}

func (f *fakeStore) DeleteTopic(_ context.Context, name string) error {
	if err := f.failing(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.topics[name]; !ok {
		return domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist", name)
	}
	delete(f.topics, name)
	return nil
}

func (f *fakeStore) ListTopics(ctx context.Context) ([]domain.Topic, error) {
	if err := f.failing(); err != nil {
		return nil, err
	}
	if f.block != nil {
		f.entered <- struct{}{}
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]domain.Topic, 0, len(f.topics))
	for _, t := range f.topics {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b domain.Topic) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeStore) CreateGroup(_ context.Context, g domain.ConsumerGroup) (domain.ConsumerGroup, error) {
	if err := f.failing(); err != nil {
		return domain.ConsumerGroup{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.groups[g.Name]; ok {
		return domain.ConsumerGroup{}, domain.Errorf(domain.ReasonAlreadyExists, "consumer group %q already exists", g.Name)
	}
	f.groups[g.Name] = g
	return g, nil
}

func (f *fakeStore) UpdateGroup(_ context.Context, g domain.ConsumerGroup) (domain.ConsumerGroup, error) {
	if err := f.failing(); err != nil {
		return domain.ConsumerGroup{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.groups[g.Name]; !ok {
		return domain.ConsumerGroup{}, domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist", g.Name)
	}
	f.groups[g.Name] = g
	return g, nil
}

func (f *fakeStore) DeleteGroup(_ context.Context, name string) error {
	if err := f.failing(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.groups[name]; !ok {
		return domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist", name)
	}
	delete(f.groups, name)
	return nil
}

func (f *fakeStore) ListGroups(context.Context) ([]domain.ConsumerGroup, error) {
	if err := f.failing(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]domain.ConsumerGroup, 0, len(f.groups))
	for _, g := range f.groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b domain.ConsumerGroup) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeStore) GroupStats(_ context.Context, group string) ([]ports.QueueStats, error) {
	if err := f.failing(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.groups[group]; !ok {
		return nil, domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist", group)
	}
	return f.stats[group], nil
}

// ResetOffset records the request and answers that queue 0 moved from 5
// to 2 (and queue 1 from 0 to 0 for every queue).
func (f *fakeStore) ResetOffset(_ context.Context, req ports.ResetOffsetRequest) ([]ports.OffsetReset, error) {
	if err := f.failing(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.groups[req.Group]; !ok {
		return nil, domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist", req.Group)
	}
	if _, ok := f.topics[req.Topic]; !ok {
		return nil, domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist", req.Topic)
	}
	f.resets = append(f.resets, req)
	out := []ports.OffsetReset{{QueueID: 0, OldOffset: 5, NewOffset: 2}}
	if req.QueueID < 0 {
		out = append(out, ports.OffsetReset{QueueID: 1})
	}
	return out, nil
}

// logBuffer collects JSON log lines; an Error record fails the test unless
// the test said it expects one.
type logBuffer struct {
	mu           sync.Mutex
	b            bytes.Buffer
	expectErrors bool
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) allowErrors() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expectErrors = true
}

func newLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	buf := &logBuffer{}
	t.Cleanup(func() {
		buf.mu.Lock()
		defer buf.mu.Unlock()
		if !buf.expectErrors && strings.Contains(buf.b.String(), `"level":"ERROR"`) {
			t.Errorf("unexpected Error log:\n%s", buf.b.String())
		}
	})
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

type fixture struct {
	client *admin.Client
	store  *fakeStore
	logs   *logBuffer
	server *admin.Server
	base   string
	http   *http.Client
}

// startServer runs the real server on 127.0.0.1:0 over the real use case
// and a fake store, and returns a client of it.
func startServer(t *testing.T) *fixture { return startServerWith(t, nil) }

// startServerWith is startServer with setup applied to the server before
// it starts.
func startServerWith(t *testing.T, setup func(*admin.Server)) *fixture {
	t.Helper()
	store := newFakeStore()
	logger, logs := newLogger(t)
	srv := admin.New(admin.Config{Enabled: true, Address: "127.0.0.1:0"}, application.NewAdmin(store, fixedClock{}), logger)
	if setup != nil {
		setup(srv)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	base := "http://" + srv.Addr().String()
	client, err := admin.NewClient(base, hc)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{client: client, store: store, logs: logs, server: srv, base: base, http: hc}
}

// clientTo returns an admin API client of base whose idle connections are
// closed when the test ends.
func clientTo(t *testing.T, base string) *admin.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := admin.NewClient(base, &http.Client{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ptr[T any](v T) *T { return &v }
