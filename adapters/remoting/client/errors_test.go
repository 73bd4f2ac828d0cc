package client_test

import (
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
)

// TestErrorMadeElsewhereMayBeDelivered: only the client knows that a
// request was not sent, so an Error made outside it (a test's, a
// wrapper's) says "maybe delivered" unless its Kind rules delivery out: a
// caller that retries only unsent requests never duplicates one on its
// account.
func TestErrorMadeElsewhereMayBeDelivered(t *testing.T) {
	for _, tt := range []struct {
		kind client.Kind
		want bool
	}{
		{client.KindDial, false},
		{client.KindEncode, false},
		{client.KindTimeout, true},
		{client.KindCanceled, true},
		{client.KindConnection, true},
		{client.KindClosed, true},
	} {
		if got := (&client.Error{Kind: tt.kind}).MaybeDelivered(); got != tt.want {
			t.Errorf("MaybeDelivered of a %v error made elsewhere = %v, want %v", tt.kind, got, tt.want)
		}
	}
}
