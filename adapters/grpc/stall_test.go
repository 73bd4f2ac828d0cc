package grpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/goroutines"
)

// released is a broker that records the messages the proxy makes visible
// again; its other methods panic.
type released struct {
	ports.Broker
	mu  sync.Mutex
	ids []string
}

func (r *released) ChangeInvisibleBatch(_ context.Context, reqs []ports.ChangeInvisibleRequest) ([]domain.ReceiptHandle, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range reqs {
		r.ids = append(r.ids, q.MessageID)
	}
	return make([]domain.ReceiptHandle, len(reqs)), make([]error, len(reqs))
}

func (r *released) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

// openStalledReceive opens a ReceiveMessage stream on a new connection
// whose client never grants the server flow-control window (its initial
// stream window is 0, and it never sends WINDOW_UPDATE) and sends no
// deadline: the server cannot write the answer's frames.
func openStalledReceive(t *testing.T, dial func() (net.Conn, error), clientID string) net.Conn {
	t.Helper()
	conn, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", "rmqproxy"},
		{":path", "/apache.rocketmq.v2.MessagingService/ReceiveMessage"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
		{"x-mq-client-id", clientID}, {"x-mq-language", "GO"}, {"x-mq-client-version", "5.1.4"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	req, err := proto.Marshal(receiveRequest("g", "t"))
	if err != nil {
		t.Fatal(err)
	}
	msg := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(req)))
	msg = append(msg, req...)
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteData(1, true, msg); err != nil {
		t.Fatal(err)
	}
	// Read (and drop) what the server sends, so that only flow control
	// holds its answer back.
	go func() {
		for {
			if _, err := fr.ReadFrame(); err != nil {
				return
			}
		}
	}()
	return conn
}

// TestStalledReceiveIsReleased: a client that receives a batch but never
// reads the answer (zero flow-control window, no deadline) has its
// connection closed after grpc.responseWriteTimeout, and the messages not
// written are made visible again, instead of the handler holding them for
// as long as the client keeps the connection.
func TestStalledReceiveIsReleased(t *testing.T) {
	const streams, batch, bodySize = 8, 4, 1 << 20
	rel := &released{}
	var popped atomic.Int32
	b := &fakeBroker{pop: largePops(batch, bodySize, &popped)}
	b.Broker = rel
	ts := startTestServer(t, b, func(c *Config, a *application.Config) {
		c.ResponseWriteTimeout = 500 * time.Millisecond
		a.Consumer.MaxBatchSize = batch
	})
	// Each connection has its own address on the server's side, as over
	// TCP (startTestServer's listener): the stall of one closes that one
	// only. (An address given to the client's side of the connection, as
	// before, was not what the server saw: the first stall closed every
	// connection, including those this test was still opening.)
	dial := func() (net.Conn, error) { return ts.lis.DialContext(t.Context()) }
	// The baseline must include the application's background goroutines,
	// which startTestServer starts asynchronously: counted before they
	// exist, they looked like goroutines the stalled receives left behind.
	waitRunStarted(t)
	goroutines, heapBefore := runtime.NumGoroutine(), heapInUse()
	var conns []net.Conn
	for i := range streams {
		conns = append(conns, openStalledReceive(t, dial, fmt.Sprintf("stalled-%d", i)))
	}
	waitFor(t, 10*time.Second, func() error {
		if n := popped.Load(); n < streams {
			return fmt.Errorf("%d of %d receives popped", n, streams)
		}
		return nil
	})
	goroutinesStalled, heapStalled := runtime.NumGoroutine(), heapInUse()
	// Every stream's first message is written to the transport (it queues
	// one frame beyond the window); the other messages are held until the
	// connection closes, then released.
	want := streams * (batch - 1)
	waitFor(t, 10*time.Second, func() error {
		if n := rel.count(); n < want {
			return fmt.Errorf("%d of %d messages not written were released", n, want)
		}
		return nil
	})
	for i, c := range conns {
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("connection %d of a client that does not read is still open", i)
		}
		// bufconn's deadline timer holds the connection's 1 MiB read
		// buffer until it fires: stop it, or each run of the test left
		// its connections in the heap for 10 s.
		if err := c.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if !ts.logs.contains("grpc.responseWriteTimeout") {
		t.Error("the proxy did not log why it closed the connections")
	}
	waitFor(t, 10*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > goroutines+2 {
			return fmt.Errorf("%d goroutines, %d before the stalled receives", n, goroutines)
		}
		return nil
	})
	t.Logf("%d stalled receives of %d × %d KiB: goroutines %d before, %d stalled, %d after; heap in use %d MiB before, %d MiB stalled, %d MiB after",
		streams, batch, bodySize>>10, goroutines, goroutinesStalled, runtime.NumGoroutine(), heapBefore>>20, heapStalled>>20, heapInUse()>>20)
}

// waitRunStarted waits until Messaging.Run, started on a goroutine of its
// own by startTestServer, has started all its goroutines: it then waits for
// them in its WaitGroup.
func waitRunStarted(t *testing.T) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		for _, g := range goroutines.Stacks() {
			if strings.Contains(g, "\nsync.(*WaitGroup).Wait(") && strings.Contains(g, "\ngithub.com/rmqproxy/rmqproxy/application.(*Messaging).Run(") {
				return nil
			}
		}
		return errors.New("Messaging.Run has not started its goroutines yet")
	})
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// largePops is a fake broker's pop answering batch messages of bodySize
// bytes each time, counting its calls in popped (when not nil).
func largePops(batch, bodySize int, popped *atomic.Int32) func(context.Context, ports.PopRequest) ([]domain.StoredMessage, error) {
	return func(_ context.Context, req ports.PopRequest) ([]domain.StoredMessage, error) {
		if popped != nil {
			defer popped.Add(1)
		}
		msgs := make([]domain.StoredMessage, batch)
		for i := range msgs {
			h := domain.ReceiptHandle{StartOffset: int64(i), RetrieveTime: time.Now().UnixMilli(), InvisibleTime: 30_000,
				BrokerName: "b", QueueOffset: int64(i), CommitLogOffset: -1}
			msgs[i] = domain.StoredMessage{Message: domain.Message{Topic: req.Topic, ID: fmt.Sprintf("%032X", i), Body: bytes.Repeat([]byte{'x'}, bodySize)},
				ReceiptHandle: h.String()}
		}
		return msgs, nil
	}
}
