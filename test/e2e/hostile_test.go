package e2e_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"golang.org/x/net/http2"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// Hostile clients speak raw HTTP/2 to the real binary (the gRPC port has no
// authentication yet). Each test reports the child's resident memory before
// and after the attack; the bounds asserted are generous (the child may be
// built with the race detector, which multiplies memory), the numbers that
// matter are in the log.

const (
	telemetryPath = "/apache.rocketmq.v2.MessagingService/Telemetry"
	routePath     = "/apache.rocketmq.v2.MessagingService/QueryRoute"
)

func memory(t *testing.T, c *testenv.Child) testenv.ProcessMemory {
	t.Helper()
	m, err := testenv.MemoryOf(c.PID())
	if err != nil {
		testenv.SkipUnlessRequired(t, "cannot read the child's memory: %v", err)
	}
	return m
}

// dialH2 opens a raw HTTP/2 connection to c's gRPC port, closed when the
// test ends.
func dialH2(t *testing.T, c *testenv.Child) *testenv.H2Conn {
	t.Helper()
	h, err := testenv.DialH2(c.GRPCAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// waitClosedByServer fails t unless the server closes h within 30 s of
// the attack, which sent what.
func waitClosedByServer(t *testing.T, h *testenv.H2Conn, what string) {
	t.Helper()
	select {
	case <-h.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("the connection is still open after %s", what)
	}
}

// checkPeakGrowth fails t when the child's peak resident memory grew by
// more than limit bytes during the attack.
func checkPeakGrowth(t *testing.T, before, after testenv.ProcessMemory, limit int64) {
	t.Helper()
	if grew := after.Peak - before.Peak; grew > limit {
		t.Errorf("peak RSS grew by %d MiB", grew>>20)
	}
}

// stillServes checks that a well-behaved client is served.
func stillServes(t *testing.T, c *testenv.Child) {
	t.Helper()
	raw := testenv.NewRawClient(t, c.Proxy(t))
	resp, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: "bad topic"}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_ILLEGAL_TOPIC {
		t.Fatalf("a well-behaved client after the attack: %v %v", resp.GetStatus(), err)
	}
}

// TestHostileHeaderBlocks: 100 streams with 8 MB header blocks on one
// connection. The server accepts header blocks up to grpc.maxHeaderListSize
// (8 KiB) and closes a connection that sends far more, instead of holding
// 100 × 8 MB.
func TestHostileHeaderBlocks(t *testing.T) {
	c := testenv.StartMeasuredChild(t, t.TempDir())
	before := memory(t, c)
	h := dialH2(t, c)
	sent := 0
	for ; sent < 100; sent++ {
		if err := h.OpenStreamWithHeader(routePath, "hostile", 8<<20); err != nil {
			break // the server closed the connection
		}
	}
	waitClosedByServer(t, h, fmt.Sprintf("%d streams of 8 MB header blocks", sent))
	after := memory(t, c)
	t.Logf("sent %d of 100 8-MB header blocks before the server closed the connection (%v); child memory before %v, after %v",
		sent, h.Closed(), before, after)
	checkPeakGrowth(t, before, after, 200<<20)
	stillServes(t, c)
}

// TestHostileTelemetryStreams: 10,000 Telemetry streams that never send
// settings, on 10 connections. Streams beyond grpc.maxConcurrentStreams on
// a connection are refused, those beyond grpc.maxInflightPerKind end at once
// with TOO_MANY_REQUESTS, and the rest are ended after grpc.settingsTimeout
// with a status that says why.
func TestHostileTelemetryStreams(t *testing.T) {
	const conns, perConn, admitted = 10, 1000, 4000
	c := testenv.StartMeasuredChild(t, t.TempDir(), "--grpc.settingsTimeout=3s", "--grpc.maxConcurrentStreams=1000",
		fmt.Sprintf("--grpc.maxInflightPerKind=%d", admitted))
	before := memory(t, c)
	var hs []*testenv.H2Conn
	for range conns {
		h := dialH2(t, c)
		hs = append(hs, h)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		if v, ok := hs[0].Setting(http2.SettingMaxConcurrentStreams); !ok || v != perConn {
			return fmt.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d (sent: %v)", v, ok)
		}
		return nil
	})
	for i, h := range hs {
		for j := range perConn {
			if _, err := h.OpenStream(telemetryPath, fmt.Sprintf("hostile-%d-%d", i, j)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var limited, timedOut, other int
	var sample string
	testenv.WaitFor(t, 60*time.Second, func() error {
		limited, timedOut, other = 0, 0, 0
		for _, h := range hs {
			for _, s := range h.Streams() {
				switch {
				case s.Ended && s.GRPCStatus == "0" && s.DataBytes > 0: // a status command, then OK
					limited++
				case s.Ended && s.GRPCStatus == "9" && strings.Contains(s.GRPCMsg, "grpc.settingsTimeout"):
					timedOut++
					sample = s.GRPCMsg
				default:
					other++
				}
			}
		}
		if limited+timedOut < conns*perConn {
			return fmt.Errorf("%d streams ended by admission, %d by the settings timeout, %d otherwise (or open)", limited, timedOut, other)
		}
		return nil
	})
	// Admission holds at most `admitted` streams at once; streams opened
	// after earlier ones timed out are admitted too, so on a slow machine
	// more than `admitted` are timed out in all.
	if limited == 0 || timedOut < admitted {
		t.Errorf("%d streams got TOO_MANY_REQUESTS (want about %d), %d were timed out (want at least %d)", limited, conns*perConn-admitted, timedOut, admitted)
	}
	after := memory(t, c)
	t.Logf("10,000 Telemetry streams without settings: %d ended at once by admission, %d after the settings timeout (%q); child memory before %v, after %v",
		limited, timedOut, sample, before, after)
	checkPeakGrowth(t, before, after, 500<<20)
	stillServes(t, c)
}

// TestHostileStreamsPerConnection: a stream beyond grpc.maxConcurrentStreams
// on one connection is refused (REFUSED_STREAM) while the others stay open.
func TestHostileStreamsPerConnection(t *testing.T) {
	const limit = 100
	c := testenv.StartMeasuredChild(t, t.TempDir(), fmt.Sprintf("--grpc.maxConcurrentStreams=%d", limit), "--grpc.settingsTimeout=1m")
	h := dialH2(t, c)
	testenv.WaitFor(t, 10*time.Second, func() error {
		if v, ok := h.Setting(http2.SettingMaxConcurrentStreams); !ok || v != limit {
			return fmt.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d (sent: %v)", v, ok)
		}
		return nil
	})
	for i := range limit {
		if _, err := h.OpenStream(telemetryPath, fmt.Sprintf("hostile-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	extra, err := h.OpenStream(telemetryPath, "hostile-extra")
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		if s := h.Stream(extra); !s.Reset || s.ResetCode != http2.ErrCodeRefusedStream {
			return fmt.Errorf("stream %d beyond grpc.maxConcurrentStreams: %+v, want REFUSED_STREAM", extra, s)
		}
		return nil
	})
	if n := len(h.Streams()); n != 1 {
		t.Errorf("the server answered on %d streams; only the refused one should have ended", n)
	}
}

// TestHostileRapidReset: 200,000 streams opened and reset at once on one
// connection (HTTP/2 rapid reset). The server closes the connection once
// it resets faster than grpc.maxStreamResetsPerSecond allows.
func TestHostileRapidReset(t *testing.T) {
	c := testenv.StartMeasuredChild(t, t.TempDir())
	before := memory(t, c)
	h := dialH2(t, c)
	sent := 0
	for ; sent < 200_000; sent++ {
		if err := h.OpenAndReset(routePath, "hostile"); err != nil {
			break
		}
		if sent%1000 == 0 && h.Closed() != nil {
			break
		}
	}
	waitClosedByServer(t, h, fmt.Sprintf("%d open-and-reset streams", sent))
	after := memory(t, c)
	t.Logf("the server closed the connection after %d of 200,000 open-and-reset streams (%v); child memory before %v, after %v",
		sent, h.Closed(), before, after)
	if sent >= 200_000 {
		t.Errorf("all 200,000 open-and-reset streams were sent before the connection closed")
	}
	// The log line is written before the connection closes, but it reaches
	// c.Output() through the child's stderr pipe, which may lag under load.
	testenv.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(c.Output(), "grpc.maxStreamResetsPerSecond") {
			return errors.New("the proxy did not log why it closed the connection")
		}
		return nil
	})
	stillServes(t, c)
}

// TestHostileConnectionsPerAddress: connections beyond
// grpc.maxConnectionsPerAddress from one address are closed at once; those
// within the limit are served.
func TestHostileConnectionsPerAddress(t *testing.T) {
	const limit = 20
	c := testenv.StartMeasuredChild(t, t.TempDir(), fmt.Sprintf("--grpc.maxConnectionsPerAddress=%d", limit))
	before := memory(t, c)
	var hs []*testenv.H2Conn
	for range limit + 10 {
		h := dialH2(t, c)
		hs = append(hs, h)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		served, closed := 0, 0
		for _, h := range hs {
			if _, ok := h.Setting(http2.SettingMaxConcurrentStreams); ok && h.Closed() == nil {
				served++
			}
			if h.Closed() != nil {
				closed++
			}
		}
		if served != limit || closed != 10 {
			return fmt.Errorf("%d connections served, %d closed; want %d and 10", served, closed, limit)
		}
		return nil
	})
	t.Logf("child memory before %v, with %d connections %v", before, limit+10, memory(t, c))
	// Once connections go, new ones are served again.
	for _, h := range hs[:5] {
		h.Close()
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		h, err := testenv.DialH2(c.GRPCAddr)
		if err != nil {
			return err
		}
		defer h.Close()
		// Served: the server's SETTINGS arrive; refused: the connection closes.
		for {
			if _, ok := h.Setting(http2.SettingMaxConcurrentStreams); ok {
				return nil
			}
			select {
			case <-h.Done():
				return fmt.Errorf("refused: %v", h.Closed())
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	if !strings.Contains(c.Output(), "grpc.maxConnectionsPerAddress") {
		t.Errorf("the proxy did not log the refused connections")
	}
}
