package localbroker

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

type requestKey struct{}

// ctxLog records, by message, whether each record was logged with the
// context of the request (requestKey set), as the trace id, client id and
// request id of a request's log lines come from it (otel.LogHandler).
type ctxLog struct {
	mu   *sync.Mutex
	seen map[string]bool
}

func (h ctxLog) Enabled(context.Context, slog.Level) bool { return true }
func (h ctxLog) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[r.Message] = ctx != nil && ctx.Value(requestKey{}) != nil
	return nil
}
func (h ctxLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h ctxLog) WithGroup(string) slog.Handler      { return h }

// The lines the engine logs while serving a request (a topic or group
// auto-created by it, a dead-letter forward that moves nothing) are logged
// with the request's context, so that they carry its trace id, client id
// and request id as docs/observability.md says; they were logged without
// it.
func TestRequestLogLinesCarryTheRequestContext(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.AutoCreateTopics, cfg.AutoCreateGroups = true, true
	log := ctxLog{mu: &sync.Mutex{}, seen: map[string]bool{}}
	e, err := New(cfg, slog.New(log), newFakeClock())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	ctx := context.WithValue(t.Context(), requestKey{}, true)
	if _, err := e.Route(ctx, "auto-topic"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pop(ctx, ports.PopRequest{Group: "auto-group", Topic: "auto-topic", QueueID: -1, MaxMessages: 1}); err != nil {
		t.Fatal(err)
	}
	h := domain.ReceiptHandle{BrokerName: cfg.BrokerName}
	if err := e.ForwardToDeadLetter(ctx, ports.AckRequest{Group: "auto-group", Topic: "gone-topic", Handle: h, MessageID: "m"}); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, msg := range []string{"topic auto-created", "consumer group auto-created", "dead-letter forward of a message whose topic does not exist; nothing to move"} {
		with, ok := log.seen[msg]
		switch {
		case !ok:
			t.Errorf("%q not logged; logged: %v", msg, log.seen)
		case !with:
			t.Errorf("%q logged without the request's context", msg)
		}
	}
}
