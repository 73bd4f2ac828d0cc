package grpc

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// rawH2 is a client connection that opens streams with HEADERS only and
// records how the server ends each.
type rawH2 struct {
	fr   *http2.Framer
	wmu  sync.Mutex
	next uint32

	mu    sync.Mutex
	ended map[uint32]string // stream → its trailers' status, and RST_STREAM
}

func dialRawH2(t *testing.T, dial func() (net.Conn, error)) *rawH2 {
	t.Helper()
	conn, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	h := &rawH2{fr: http2.NewFramer(conn, conn), next: 1, ended: map[uint32]string{}}
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			f, err := h.fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					h.wmu.Lock()
					_ = h.fr.WriteSettingsAck()
					h.wmu.Unlock()
				}
			case *http2.MetaHeadersFrame:
				if f.StreamEnded() {
					h.mu.Lock()
					h.ended[f.StreamID] = "grpc-status " + headerValue(f, "grpc-status") + " " + headerValue(f, "grpc-message")
					h.mu.Unlock()
				}
			case *http2.RSTStreamFrame:
				h.mu.Lock()
				h.ended[f.StreamID] += " RST_STREAM " + f.ErrCode.String()
				h.mu.Unlock()
			}
		}
	}()
	return h
}

func headerValue(f *http2.MetaHeadersFrame, name string) string {
	for _, hf := range f.Fields {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}

// open sends the HEADERS of a call of method with no deadline, and
// neither its request message nor the end of its stream.
func (h *rawH2) open(t *testing.T, method, clientID string) uint32 {
	t.Helper()
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", "rmqproxy"}, {":path", method},
		{"content-type", "application/grpc"}, {"te", "trailers"},
		{"x-mq-client-id", clientID}, {"x-mq-language", "GO"}, {"x-mq-client-version", "5.1.4"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	h.wmu.Lock()
	defer h.wmu.Unlock()
	id := h.next
	h.next += 2
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	return id
}

func (h *rawH2) endOf(id uint32) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.ended[id]
	return s, ok
}

// TestStalledRequestsAreEnded: calls whose client sends its headers but
// never its request message, and no deadline, are ended after
// grpc.requestReadTimeout; before, each held its stream (and, beyond the
// stream workers, a goroutine) for as long as the client kept the
// connection, outside every admission count (grpc.maxConcurrentStreams ×
// grpc.maxConnectionsPerAddress of them per address). Telemetry streams
// keep their own bound (grpc.settingsTimeout), and calls whose request
// arrived are not cut short however long they take.
func TestStalledRequestsAreEnded(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b := &fakeBroker{
		send: func(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
			select { // a slow send, longer than the timeout
			case <-time.After(4 * timeout):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return []domain.SendReceipt{{MessageID: msgs[0].ID}}, nil
		},
		pop: func(ctx context.Context, req ports.PopRequest) ([]domain.StoredMessage, error) {
			select { // a long poll, longer than the timeout
			case <-time.After(4 * timeout):
			case <-ctx.Done():
			}
			return nil, nil
		},
	}
	ts := startTestServer(t, b, func(c *Config, a *application.Config) {
		c.RequestReadTimeout = timeout
		c.SettingsTimeout = time.Minute
		a.Consumer.MinLongPolling = 0
	})
	h := dialRawH2(t, func() (net.Conn, error) { return ts.lis.DialContext(t.Context()) })
	const svc = "/apache.rocketmq.v2.MessagingService/"
	stalled := map[string]uint32{}
	for _, m := range []string{svc + "SendMessage", svc + "AckMessage", svc + "ReceiveMessage", svc + "PullMessage",
		"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"} {
		stalled[m] = h.open(t, m, "stalled")
	}
	telemetry := h.open(t, svc+"Telemetry", "stalled-telemetry")

	// Calls whose request arrived, with no deadline, outlast the timeout.
	var wg sync.WaitGroup
	wg.Go(func() {
		resp, err := ts.client.SendMessage(clientCtx(context.Background(), "slow"), sendRequest("t"))
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Errorf("a send slower than grpc.requestReadTimeout: %v, %v", resp.GetStatus(), err)
		}
	})
	wg.Go(func() {
		req := receiveRequest("g", "t")
		req.LongPollingTimeout = nil
		stream, err := ts.client.ReceiveMessage(clientCtx(context.Background(), "slow"), req)
		if err != nil {
			t.Error(err)
			return
		}
		first, err := stream.Recv()
		if err != nil || first.GetStatus().GetCode() != v2.Code_MESSAGE_NOT_FOUND {
			t.Errorf("a receive polling longer than grpc.requestReadTimeout: %v, %v", first, err)
		}
	})

	waitFor(t, 20*timeout, func() error {
		for m, id := range stalled {
			if _, ok := h.endOf(id); !ok {
				return fmt.Errorf("%s without its request is still open %v after its headers", m, 20*timeout)
			}
		}
		return nil
	})
	for m, id := range stalled {
		end, _ := h.endOf(id)
		t.Logf("%s without its request: %s", m, end)
	}
	if end, ok := h.endOf(telemetry); ok {
		t.Errorf("a Telemetry stream without settings was ended (%s) before grpc.settingsTimeout", end)
	}
	if !ts.logs.contains("grpc.requestReadTimeout") {
		t.Error("the proxy did not log why it ended the calls")
	}
	wg.Wait()
}

// TestCancelledCallsAreNotCountedAsStalled: a call whose client cancelled
// it (RST_STREAM) before its request arrived has ended; the warning about
// calls ended for want of their request counted it all the same when its
// timer fired, blaming clients that had done nothing wrong.
func TestCancelledCallsAreNotCountedAsStalled(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ts := startTestServer(t, &fakeBroker{}, func(c *Config, a *application.Config) {
		c.RequestReadTimeout = timeout
	})
	h := dialRawH2(t, func() (net.Conn, error) { return ts.lis.DialContext(t.Context()) })
	const send = "/apache.rocketmq.v2.MessagingService/SendMessage"
	cancelled := h.open(t, send, "cancels")
	h.wmu.Lock()
	err := h.fr.WriteRSTStream(cancelled, http2.ErrCodeCancel)
	h.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	stalled := h.open(t, send, "stalls") // opened after: ended after the cancelled call's timer fired
	waitFor(t, 20*timeout, func() error {
		if _, ok := h.endOf(stalled); !ok {
			return fmt.Errorf("a call without its request is still open %v after its headers", 20*timeout)
		}
		return nil
	})
	// Counted: those in the warnings logged, and those not yet warned of.
	counted := ts.srv.svc.requestReadTimeouts.n.Load()
	ts.logs.mu.Lock()
	for _, r := range ts.logs.records {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "ended_since_last_warning" {
				counted += a.Value.Int64()
			}
			return true
		})
	}
	ts.logs.mu.Unlock()
	if counted != 1 {
		t.Errorf("%d calls counted as ended for want of their request, want 1 (the cancelled call is not one)", counted)
	}
}
