package application_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/application"
)

// TestAdminStringToSign pins the admin signature's string to sign and a
// signature of it (the example of docs/security.md), so that a change of
// the format is seen, and a client written from the documentation can be
// checked against it.
func TestAdminStringToSign(t *testing.T) {
	empty := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	got := string(application.AdminStringToSign("DELETE", "/v1/topics/orders%25eu", empty, "20260102T030405Z", "8f0c2d7e5a9b4c1d3e6f708192a3b4c5"))
	want := "RMQPROXY-ADMIN-V1\nDELETE\n/v1/topics/orders%25eu\n" + empty + "\n20260102T030405Z\n8f0c2d7e5a9b4c1d3e6f708192a3b4c5"
	if got != want {
		t.Fatalf("string to sign %q, want %q", got, want)
	}
	auth := application.SignAdminRequest("admin", []byte("a-long-random-secret-1"), "DELETE", "/v1/topics/orders%25eu", empty, "20260102T030405Z", "8f0c2d7e5a9b4c1d3e6f708192a3b4c5")
	sig := hex.EncodeToString(application.Sign([]byte("a-long-random-secret-1"), []byte(want)))
	if auth != "MQv2-HMAC-SHA1 Credential=admin, SignedHeaders=x-mq-content-sha256;x-mq-date-time;x-mq-nonce, Signature="+sig {
		t.Fatalf("authorization %q", auth)
	}
	if sig != "9cd932cd53aa75194e8221d0b030e44c79e4ee37" { // openssl dgst -sha1 -hmac a-long-random-secret-1 agrees
		t.Fatalf("signature %s", sig)
	}
	ak, signed, raw, err := application.ParseAdminAuthorization(auth)
	if err != nil || ak != "admin" || signed != application.AdminSignedHeaders || hex.EncodeToString(raw) != sig {
		t.Fatalf("parsed %q %q %x %v", ak, signed, raw, err)
	}
	// The gRPC parser refuses it: a gRPC signature binds the date-time only.
	if _, _, err := application.ParseAuthorization(auth); err == nil {
		t.Fatal("ParseAuthorization accepted the admin SignedHeaders")
	}
}

func TestValidAdminNonce(t *testing.T) {
	for v, ok := range map[string]bool{
		"0123456789abcdef":      true,
		"0123456789abcde":       false,
		strings.Repeat("a", 64): true,
		strings.Repeat("a", 65): false,
		"ABCDEFGHIJKLMNOP-_09":  true,
		"0123456789abcdef ":     false,
		"0123456789abcdef\n":    false,
		"0123456789abcdéf":      false,
	} {
		if application.ValidAdminNonce(v) != ok {
			t.Errorf("%q: want %v", v, ok)
		}
	}
}
