package grpc

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/rmqproxy/rmqproxy/application"
)

// TestServerProvokedResetsCount: a client can have the server reset its
// streams instead of resetting them itself ("MadeYouReset"): a
// WINDOW_UPDATE with an increment of 0 on an open stream is a stream error
// the server answers with RST_STREAM, ending the call it has started. Such
// streams cost the server what a client's resets do, and must count in
// grpc.maxStreamResetsPerSecond as those do; before, they were not
// counted, and a connection opening and so ending thousands of calls a
// second stayed open.
func TestServerProvokedResetsCount(t *testing.T) {
	t.Run("WINDOW_UPDATE of 0", func(t *testing.T) {
		testProvokedResets(t, func(fr *http2.Framer, id uint32, hdr []byte) error {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hdr, EndHeaders: true}); err != nil {
				return err
			}
			return fr.WriteWindowUpdate(id, 0)
		})
	})
	t.Run("DATA after the end of the stream", func(t *testing.T) {
		testProvokedResets(t, func(fr *http2.Framer, id uint32, hdr []byte) error {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hdr, EndHeaders: true, EndStream: true}); err != nil {
				return err
			}
			return fr.WriteData(id, false, []byte{0})
		})
	})
}

// testProvokedResets opens streams with provoke on one connection, which
// must have the server reset each, and checks that the server closes the
// connection.
func testProvokedResets(t *testing.T, provoke func(fr *http2.Framer, id uint32, hdr []byte) error) {
	ts := startTestServer(t, &fakeBroker{}, func(c *Config, _ *application.Config) { c.MaxStreamResetsPerSecond = 10 })
	conn, err := ts.lis.DialContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.AllowIllegalWrites = true // a WINDOW_UPDATE of 0
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	var resets atomic.Int64 // RST_STREAM frames of the server
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				closed <- err
				return
			}
			if _, ok := f.(*http2.RSTStreamFrame); ok {
				resets.Add(1)
			}
		}
	}()
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", "rmqproxy"},
		{":path", v2.MessagingService_QueryRoute_FullMethodName},
		{"content-type", "application/grpc"}, {"te", "trailers"}, {"x-mq-client-id", "made-you-reset"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	// A burst of 100 (ten times 10 per second) is allowed; 1000 are sent.
	const streams = 1000
	sent := 0
	for ; sent < streams; sent++ {
		if provoke(fr, uint32(2*sent+1), hdr.Bytes()) != nil {
			break
		}
	}
	select {
	case err := <-closed:
		t.Logf("the server closed the connection after %d streams it was made to reset (%d RST_STREAM read; %v)", sent, resets.Load(), err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%d streams the server was made to reset (%d RST_STREAM read): the connection is still open", sent, resets.Load())
	}
	waitFor(t, 10*time.Second, func() error {
		if !ts.logs.contains("grpc.maxStreamResetsPerSecond") {
			return fmt.Errorf("the proxy did not log why it closed the connection")
		}
		return nil
	})
}
