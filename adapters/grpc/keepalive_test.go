package grpc

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/rmqproxy/rmqproxy/application"
)

// silentPeer opens an HTTP/2 connection to ts the way a client does
// (preface, SETTINGS, acknowledging the server's) and returns its framer.
func silentPeer(t *testing.T, ts *testServer) (net.Conn, *http2.Framer) {
	t.Helper()
	conn, err := ts.lis.DialContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	return conn, fr
}

// TestUnansweredKeepalivePingClosesTheConnection: a client whose host
// died or was cut off without a TCP reset kept its connection (and a
// Telemetry stream its in-flight slot) until the operating system gave up
// on it, hours later: the server never pinged a silent connection
// (grpc-go's 2 h default). Now a connection silent for keepaliveTime is
// pinged and closed when the ping is not answered within keepaliveTimeout.
func TestUnansweredKeepalivePingClosesTheConnection(t *testing.T) {
	ts := startTestServer(t, &fakeBroker{}, func(cfg *Config, _ *application.Config) {
		cfg.KeepaliveTime, cfg.KeepaliveTimeout = time.Second, time.Second
	})
	_, fr := silentPeer(t, ts)
	pinged := false
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a client that answers no ping still has its connection after 30 s (pinged: %v)", pinged)
		}
		if err != nil {
			if !pinged {
				t.Fatalf("the connection ended without a ping: %v", err)
			}
			return // closed: what a dead client's connection should be
		}
		if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
			pinged = true // and not answered
		}
	}
}

// TestAnsweredKeepalivePingsKeepTheConnection: a silent client that
// answers the pings keeps its connection (three pings in a row).
func TestAnsweredKeepalivePingsKeepTheConnection(t *testing.T) {
	ts := startTestServer(t, &fakeBroker{}, func(cfg *Config, _ *application.Config) {
		cfg.KeepaliveTime, cfg.KeepaliveTimeout = time.Second, time.Second
	})
	_, fr := silentPeer(t, ts)
	for pings := 0; pings < 3; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("the connection of a client answering the pings ended after %d of them: %v", pings, err)
		}
		if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
			pings++
			if err := fr.WritePing(true, p.Data); err != nil {
				t.Fatal(err)
			}
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			t.Fatalf("GOAWAY after %d answered pings: %v", pings, g.ErrCode)
		}
	}
}
