package cluster

import (
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
)

// FuzzParseTransactionID: a client's transaction id never panics the
// parser, is refused with INVALID_TRANSACTION_ID or parses into an id that
// encodes back to an equivalent one.
func FuzzParseTransactionID(f *testing.F) {
	for _, s := range []string{transactionID{Broker: "broker-a", CommitLogOffset: 1, QueueOffset: 2, MessageID: "01AB"}.String(),
		"", "dDEgYiAxIDI", "dDEgYiAtMSAyIG0", "01AB", "====", "dDEgIDEgMiBt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseTransactionID(s)
		if err != nil {
			if !domain.HasReason(err, domain.ReasonInvalidTransactionID) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		again, err := parseTransactionID(id.String())
		if err != nil || again != id {
			t.Fatalf("%q → %+v → %+v %v", s, id, again, err)
		}
	})
}

// FuzzParseRecallHandle: a client's recall handle never panics the parser.
func FuzzParseRecallHandle(f *testing.F) {
	for _, s := range []string{"djEgZGVsYXkgYnJva2VyLWEgMTcwMDAwMDAwMDAwMCAwMUFC", "", "djE", "djEgICAgIA==", "%%%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, broker, ok := parseRecallHandle(s); ok && broker == "" {
			t.Fatalf("%q parsed without a broker", s)
		}
	})
}
