package grpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/test/testenv/goroutines"
)

// openUnreadTelemetry opens a Telemetry stream on a new connection whose
// client grants the server no flow-control window (its initial stream
// window is 0) and sends n producer settings commands, each answered with
// about 20 KB: the answers beyond the stream's write quota cannot be
// written.
func openUnreadTelemetry(t *testing.T, dial func() (net.Conn, error), clientID string, n int) {
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
		{":path", v2.MessagingService_Telemetry_FullMethodName},
		{"content-type", "application/grpc"}, {"te", "trailers"},
		{"x-mq-client-id", clientID}, {"x-mq-language", "GO"}, {"x-mq-client-version", "5.1.4"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	pub := &v2.Publishing{}
	for i := range 200 {
		pub.Topics = append(pub.Topics, &v2.Resource{Name: fmt.Sprintf("topic-%03d-%s", i, strings.Repeat("x", 90))})
	}
	cmd, err := proto.Marshal(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{
		ClientType: v2.ClientType_PRODUCER.Enum(), PubSub: &v2.Settings_Publishing{Publishing: pub}}}})
	if err != nil {
		t.Fatal(err)
	}
	msg := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(cmd)))
	msg = append(msg, cmd...)
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
	go func() { // read (and drop) what the server sends: only flow control holds the answers
		for {
			if _, err := fr.ReadFrame(); err != nil {
				return
			}
		}
	}()
	for range n {
		for rest := msg; len(rest) > 0; { // frames of at most 16 KiB (SETTINGS_MAX_FRAME_SIZE)
			k := min(len(rest), 16<<10)
			if err := fr.WriteData(1, false, rest[:k]); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
	}
}

// TestUnreadTelemetryRepliesHoldNoClientSlot: a client that sends settings
// on its Telemetry stream but does not read the answers (its flow-control
// window stays shut) leaves its handler waiting to write an answer. That
// wait held the handler's place of kind client in grpc.maxInflightPerKind,
// which heartbeats and client terminations share: a few such streams took
// every place, and every client's heartbeat was refused with
// TOO_MANY_REQUESTS for as long as their connections lasted. The answer is
// now written after the command's place is given back; the stream keeps
// only its Telemetry place, as any open stream does.
func TestUnreadTelemetryRepliesHoldNoClientSlot(t *testing.T) {
	const limit = 2
	ts := startTestServer(t, &fakeBroker{}, func(c *Config, _ *application.Config) {
		c.MaxInflightPerKind = limit
		c.FlowControlWindow = 1 << 20 // room for the settings commands; the answers have the 64 KiB write quota
	})
	dial := func() (net.Conn, error) { return ts.lis.DialContext(t.Context()) }
	for i := range limit {
		openUnreadTelemetry(t, dial, fmt.Sprintf("unread-%d", i), 8)
	}
	waitFor(t, 10*time.Second, func() error {
		n := 0
		for _, s := range goroutines.Stacks() {
			if strings.Contains(s, "(*telemetryChannel).write") {
				n++
			}
		}
		if n < limit {
			return fmt.Errorf("%d of %d Telemetry handlers wait to write an answer", n, limit)
		}
		return nil
	})
	ctx := clientCtx(context.Background(), "healthy")
	resp, err := ts.client.Heartbeat(ctx, &v2.HeartbeatRequest{ClientType: v2.ClientType_PRODUCER})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("a heartbeat while %d clients do not read their Telemetry answers: %v, %v", limit, resp.GetStatus(), err)
	}
}
