package grpc

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func TestParseAuthorization(t *testing.T) {
	sig := "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
	cases := []struct {
		name, v, ak string
		ok          bool
	}{
		{"java", "MQv2-HMAC-SHA1 Credential=alice, SignedHeaders=x-mq-date-time, Signature=" + sig, "alice", true},
		{"go", "MQv2-HMAC-SHA1 Credential=alice//Rocketmq, SignedHeaders=x-mq-date-time, Signature=" + sig, "alice", true},
		{"uppercase hex", "MQv2-HMAC-SHA1 Credential=alice, SignedHeaders=x-mq-date-time, Signature=" + strings.ToUpper(sig), "alice", true},
		{"no SignedHeaders", "MQv2-HMAC-SHA1 Credential=a.b@c-d_e, Signature=" + sig, "a.b@c-d_e", true},
		{"unknown item ignored", "MQv2-HMAC-SHA1 Credential=alice, Region=x, Signature=" + sig, "alice", true},
		{"other algorithm", "AWS4-HMAC-SHA256 Credential=alice, Signature=" + sig, "", false},
		{"no space", "MQv2-HMAC-SHA1", "", false},
		{"missing signature", "MQv2-HMAC-SHA1 Credential=alice, SignedHeaders=x-mq-date-time", "alice", false},
		{"missing credential", "MQv2-HMAC-SHA1 SignedHeaders=x-mq-date-time, Signature=" + sig, "", false},
		{"duplicate credential", "MQv2-HMAC-SHA1 Credential=alice, Credential=admin, Signature=" + sig, "", false},
		{"duplicate signature", "MQv2-HMAC-SHA1 Credential=alice, Signature=" + sig + ", Signature=" + sig, "", false},
		{"other signed headers", "MQv2-HMAC-SHA1 Credential=alice, SignedHeaders=host, Signature=" + sig, "", false},
		{"the admin API's signed headers", "MQv2-HMAC-SHA1 Credential=alice, SignedHeaders=" + application.AdminSignedHeaders + ", Signature=" + sig, "", false},
		{"repeated signed headers", "MQv2-HMAC-SHA1 Credential=alice, SignedHeaders=x-mq-date-time, SignedHeaders=X-Mq-Date-Time, Signature=" + sig, "alice", true},
		{"conflicting signed headers", "MQv2-HMAC-SHA1 Credential=alice, SignedHeaders=x-mq-date-time, SignedHeaders=host, Signature=" + sig, "", false},
		{"short signature", "MQv2-HMAC-SHA1 Credential=alice, Signature=abcd", "alice", false},
		{"non-hex signature", "MQv2-HMAC-SHA1 Credential=alice, Signature=" + strings.Repeat("zz", 20), "alice", false},
		{"item without =", "MQv2-HMAC-SHA1 Credential=alice, junk, Signature=" + sig, "", false},
		{"bad access key", "MQv2-HMAC-SHA1 Credential=al'ice, Signature=" + sig, "al'ice", false},
		{"empty access key", "MQv2-HMAC-SHA1 Credential=/x, Signature=" + sig, "", false},
		{"huge", "MQv2-HMAC-SHA1 Credential=" + strings.Repeat("a", 2000) + ", Signature=" + sig, "", false},
	}
	for _, c := range cases {
		ak, got, err := parseAuthorization(c.v)
		if (err == nil) != c.ok || (c.ok && (ak != c.ak || len(got) != 20)) {
			t.Errorf("%s: ak %q, %d signature bytes, error %v", c.name, ak, len(got), err)
		}
	}
}

func TestWithinSkew(t *testing.T) {
	now := time.Date(2025, 9, 19, 9, 25, 40, 0, time.UTC)
	any := DefaultAuthConfig()
	utc := AuthConfig{ClockSkew: ClockSkewUTC, ClockSkewWindow: 5 * time.Minute}
	off := AuthConfig{ClockSkew: ClockSkewOff}
	cases := []struct {
		d            time.Duration
		anyOK, utcOK bool
	}{
		{0, true, true},
		{4 * time.Minute, true, true},
		{-6 * time.Minute, false, false},
		{8 * time.Hour, true, false},                   // UTC+8 local time labelled Z
		{8*time.Hour + 3*time.Minute, true, false},     // and a clock 3 minutes fast
		{-(5*time.Hour + 30*time.Minute), true, false}, // UTC-5:30
		{5*time.Hour + 45*time.Minute, true, false},    // Nepal, UTC+5:45
		{14 * time.Hour, true, false},                  // UTC+14 (Kiribati)
		{15 * time.Hour, false, false},                 // no zone is that far ahead
		{-13 * time.Hour, false, false},                // nor behind
		{7*time.Minute + 30*time.Second, false, false}, // between two offsets
		{-48 * time.Hour, false, false},                // stale
	}
	for _, c := range cases {
		ts := now.Add(c.d)
		if got := withinSkew(any, ts, now); got != c.anyOK {
			t.Errorf("any_offset %v: %v", c.d, got)
		}
		if got := withinSkew(utc, ts, now); got != c.utcOK {
			t.Errorf("utc %v: %v", c.d, got)
		}
		if !withinSkew(off, ts, now) {
			t.Errorf("off %v refused", c.d)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		"MQv2-HMAC-SHA1 Credential=alice, SignedHeaders=x-mq-date-time, Signature=0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
		"MQv2-HMAC-SHA1 Credential=alice//Rocketmq, SignedHeaders=x-mq-date-time, Signature=0A1B2C3D4E5F60718293A4B5C6D7E8F901234567",
		"MQv2-HMAC-SHA1 ,,,=,=", "MQv2-HMAC-SHA1 Credential==, Signature==", "", " ",
		// The admin API's SignedHeaders, which gRPC refuses.
		"MQv2-HMAC-SHA1 Credential=root, SignedHeaders=" + application.AdminSignedHeaders + ", Signature=0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
		"MQv2-HMAC-SHA1 Credential=root, SignedHeaders=x-mq-date-time, SignedHeaders=X-MQ-DATE-TIME, Signature=0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ak, sig, err := parseAuthorization(v)
		if err != nil {
			return
		}
		if len(sig) != 20 || ak == "" || len(v) > maxAuthorization {
			t.Fatalf("%q accepted as %q with %d signature bytes", v, ak, len(sig))
		}
	})
}

func FuzzParseDateTime(f *testing.F) {
	for _, s := range []string{"20250919T092540Z", "20251319T092540Z", "2025-09-19T09:25:40Z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ts, err := parseDateTime(v)
		if err == nil && ts.Format(dateTimeLayout) != v {
			t.Fatalf("%q parsed as %v", v, ts)
		}
	})
}

// TestRetryCarriesTwoSignatures: the Go client v5.1.4 re-signs the same
// context when it retries a send, so the retry carries two authorization
// and two x-mq-date-time values; the last pair is read (as grpc-java's
// Metadata.get, which the Apache proxy uses, returns the last value).
func TestRetryCarriesTwoSignatures(t *testing.T) {
	now := time.Date(2025, 9, 19, 9, 25, 40, 0, time.UTC)
	a := &authenticator{cfg: DefaultAuthConfig(), now: func() time.Time { return now }}
	sign := func(at time.Time) (string, string) {
		return application.SignRequest("alice", []byte("alice-secret-0123"), at)
	}
	auth1, dt1 := sign(now.Add(-time.Hour))
	auth2, dt2 := sign(now)
	md := metadata.Pairs(mdAuthorization, auth1, mdDateTime, dt1, mdAuthorization, auth2, mdDateTime, dt2)
	c := a.credentials(md)
	if c.Fault != "" || string(c.Content) != dt2 || c.AccessKey != "alice" {
		t.Fatalf("%+v", c)
	}
	if !hmacEqual(application.Sign([]byte("alice-secret-0123"), c.Content), c.Signature) {
		t.Fatal("the signature is not the last one's")
	}
	// Unequal counts are malformed.
	if c := a.credentials(metadata.Pairs(mdAuthorization, auth1, mdAuthorization, auth2, mdDateTime, dt2)); c.Fault != application.ReasonMalformed {
		t.Fatalf("two signatures, one date-time: %+v", c)
	}
}

func hmacEqual(a, b []byte) bool { return string(a) == string(b) }

// TestStripReserved: the keys the Apache proxy reserves are removed from a
// request's metadata (and counted), the others kept; a request without
// them keeps its context as it is.
func TestStripReserved(t *testing.T) {
	a := &authenticator{}
	plain := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-mq-client-id", "c1", "x-mq-language", "GOLANG"))
	if got := a.stripReserved(plain); got != plain {
		t.Fatal("a request without reserved metadata got a new context")
	}
	if a.stripped.Load() != 0 {
		t.Fatalf("stripped = %d, want 0", a.stripped.Load())
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(
		"x-mq-client-id", "c1", "x-mq-channel-id", "smuggled", "rpc-remote-address", "10.0.0.1:1", "x-mq-authorization-ak", "ak"))
	md, _ := metadata.FromIncomingContext(a.stripReserved(ctx))
	for _, k := range reservedMetadata {
		if v := md.Get(k); len(v) > 0 {
			t.Errorf("%s = %q survived", k, v)
		}
	}
	if v := md.Get("x-mq-client-id"); len(v) != 1 || v[0] != "c1" {
		t.Errorf("x-mq-client-id = %q, want c1", v)
	}
	if a.stripped.Load() != 1 {
		t.Fatalf("stripped = %d, want 1", a.stripped.Load())
	}
}

// TestCallerMetadataThroughTheServer: through the server, the use case
// sees the caller's metadata as the client sent it (read once per stream
// by tapHeaders) and never the reserved keys, which are dropped and counted.
func TestCallerMetadataThroughTheServer(t *testing.T) {
	b := &fakeBroker{}
	var mu sync.Mutex
	var got ports.RequestInfo
	var md metadata.MD
	b.send = func(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
		mu.Lock()
		defer mu.Unlock()
		got = ports.RequestInfoFrom(ctx)
		md, _ = metadata.FromIncomingContext(ctx)
		return []domain.SendReceipt{{MessageID: msgs[0].ID, QueueID: q.QueueID}}, nil
	}
	ts := startTestServer(t, b)
	sec, err := application.NewSecurity(application.SecurityParams{Config: application.DefaultSecurityConfig()})
	if err != nil {
		t.Fatal(err)
	}
	ts.srv.svc.UseSecurity(sec, AuthConfig{}) // authentication off: reserved keys are still dropped
	ctx := metadata.AppendToOutgoingContext(t.Context(), "x-mq-client-id", "c1", "x-mq-language", "JAVA",
		"x-mq-client-version", "5.0.7", "x-mq-namespace", "ns1", "x-mq-request-id", "r-1",
		"x-mq-channel-id", "smuggled", "rpc-remote-address", "10.0.0.1:1", "x-mq-authorization-ak", "admin")
	resp, err := ts.client.SendMessage(ctx, sendRequest("t"))
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("send: %v, %v", resp, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := ports.RequestInfo{ClientID: "c1", Language: "JAVA", ClientVersion: "5.0.7", Namespace: "ns1", RequestID: "r-1", Protocol: "grpc"}
	got.RemoteAddr, got.LocalAddr = netip.AddrPort{}, netip.AddrPort{} // an in-memory listener has no addresses
	if got != want {
		t.Errorf("request info = %+v, want %+v", got, want)
	}
	for _, k := range reservedMetadata {
		if v := md.Get(k); len(v) > 0 {
			t.Errorf("%s = %q reached the use case", k, v)
		}
	}
	if v := md.Get("x-mq-client-id"); len(v) != 1 || v[0] != "c1" {
		t.Errorf("x-mq-client-id = %q, want c1", v)
	}
	if n := ts.srv.svc.auth.stripped.Load(); n != 1 {
		t.Errorf("stripped = %d, want 1", n)
	}
}
