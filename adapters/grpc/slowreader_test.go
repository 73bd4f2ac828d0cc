package grpc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/rmqproxy/rmqproxy/application"
)

// pacedConn reads at most 8 KiB per tick: a client on a slow link, which
// reads its answers all the time, slowly.
type pacedConn struct {
	net.Conn
	tick <-chan time.Time
}

func (c *pacedConn) Read(p []byte) (int, error) {
	<-c.tick
	return c.Conn.Read(p[:min(len(p), 8<<10)])
}

// TestSlowReaderIsNotCutOff: a client on a link slower than a message per
// grpc.responseWriteTimeout (here 1 MiB messages, read at some 1.6 MB/s
// when the machine is idle, against 300 ms), which reads all the time, had
// its connection closed as one that does not read: the receive failed and
// its messages came again, to be cut off the same way each time (never
// delivered). A connection that makes progress is not closed; its receive
// gets every message. (The bound of ten timeouts per message, 3 s here, is
// five times what a message takes: at 800 KB/s the test failed on a loaded
// machine, its reader's ticks coming late.)
func TestSlowReaderIsNotCutOff(t *testing.T) {
	const batch, bodySize = 3, 1 << 20
	rel := &released{}
	b := &fakeBroker{pop: largePops(batch, bodySize, nil)}
	b.Broker = rel
	ts := startTestServer(t, b, func(c *Config, a *application.Config) {
		c.ResponseWriteTimeout = 300 * time.Millisecond
		a.Consumer.MaxBatchSize = batch
	})
	ticker := time.NewTicker(5 * time.Millisecond)
	t.Cleanup(ticker.Stop)
	conn, err := grpclib.NewClient("passthrough:///bufnet",
		grpclib.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			c, err := ts.lis.DialContext(ctx)
			if err != nil {
				return nil, err
			}
			return &pacedConn{Conn: c, tick: ticker.C}, nil
		}),
		grpclib.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := v2.NewMessagingServiceClient(conn)
	req := receiveRequest("g", "t")
	req.BatchSize = batch
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-mq-client-id", "slow-reader", "x-mq-language", "GO", "x-mq-client-version", "5.1.4")
	stream, err := client.ReceiveMessage(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var st *v2.Status
	for {
		r, err := stream.Recv()
		if err != nil {
			if got < batch {
				t.Fatalf("the receive broke after %d of %d messages: %v (status %v)", got, batch, err, st)
			}
			break
		}
		if m := r.GetMessage(); m != nil {
			got++
		} else if r.GetStatus() != nil {
			st = r.GetStatus()
		}
	}
	if st.GetCode() != v2.Code_OK || got != batch {
		t.Fatalf("status %v, %d of %d messages", st, got, batch)
	}
	if ts.logs.contains("grpc.responseWriteTimeout") || rel.count() != 0 {
		t.Fatalf("the connection of a client that reads was closed as stalled (%d messages released)", rel.count())
	}
}

// unreadStream is a server stream whose client never reads: SendMsg waits
// until the connection is closed.
type unreadStream struct {
	grpclib.ServerStream
	ctx    context.Context
	closed <-chan struct{}
}

func (u *unreadStream) Context() context.Context { return u.ctx }

func (u *unreadStream) SendMsg(any) error {
	<-u.closed
	return errors.New("connection closed")
}

// TestUnreadStreamOfABusyConnectionIsCutOff: the progress that lets a slow
// reader go on is the connection's, so a client that never reads one
// receive stream while it reads others on the same connection kept the
// unread stream's messages (invisible, renewed) until its deadline, or for
// ever without one. A frame waits at most maxFrameWaits timeouts.
func TestUnreadStreamOfABusyConnectionIsCutOff(t *testing.T) {
	closed := make(chan struct{})
	var once sync.Once
	var written atomic.Int64
	s := &Service{cfg: Config{ResponseWriteTimeout: 10 * time.Millisecond}, log: slog.New(slog.DiscardHandler),
		closeConn: func(net.Addr) bool { once.Do(func() { close(closed) }); return true },
		// Other streams of the connection are read all the time.
		connWritten: func(net.Addr) int64 { return written.Add(minWriteProgress) },
	}
	ctx := peer.NewContext(t.Context(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
	done := make(chan error, 1)
	go func() {
		done <- s.frameSender(&unreadStream{ctx: ctx, closed: closed}).send(&v2.ReceiveMessageResponse{})
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the unread frame was sent")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("a frame never read, on a connection busy with other streams, was not cut off after %d timeouts", maxFrameWaits)
	}
}
