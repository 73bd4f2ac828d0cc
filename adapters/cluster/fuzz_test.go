package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
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

// FuzzStoredPropertiesLenIsTheEncoders: the length by which every mode
// refuses a message (domain.Message.StoredPropertiesLen) is the length of
// the properties string cluster mode sends, and a message validation
// accepts always encodes (it leaves room below RocketMQ's 32767-byte
// limit; the encoder refuses only what exceeds it).
func FuzzStoredPropertiesLenIsTheEncoders(f *testing.F) {
	f.Add("01AB", "tag", "k1 k2", "00-trace", "10.0.0.1", "p", "v", int64(0), int32(0), 0)
	f.Add("", "", "", "", "", "", "", int64(1700000000123), int32(3), 0)
	f.Add("ïd", "tâg", " a  b ", "tràce", "hôst", "ключ", "", int64(-1), int32(-5), 40<<10)
	f.Add("id", "t", "k", "tc", "h", "TRAN_MSG", "x", int64(1<<40), int32(1), 32700)
	f.Fuzz(func(t *testing.T, id, tag, keys, trace, host, pk, pv string, deliverMS int64, reconsume int32, pad int) {
		m := domain.Message{Topic: "ns%T", Body: []byte("b"), ID: id + strings.Repeat("i", pad&0xffff), Tag: tag,
			Keys: strings.Split(keys, ","), TraceContext: trace, BornHost: host, ReconsumeTimes: reconsume,
			Group: tag, Transactional: reconsume%2 == 1, TransactionRecovery: time.Duration(reconsume) * time.Second,
			BornAt: time.UnixMilli(deliverMS / 2), Properties: map[string]string{pk: pv}}
		if deliverMS != 0 {
			m.DeliverAt = time.UnixMilli(deliverMS)
		}
		s, err := remoting.FormatProperties(messageProperties(&m))
		if err != nil {
			if _, ferr := formatProperties(&m); ferr == nil || ferr.Error() != err.Error() {
				t.Fatalf("formatProperties fails with %v, FormatProperties with %v", ferr, err)
			}
			// Only what validation refuses may fail to encode.
			if err := (domain.Limits{}).ValidateMessage(&m, time.Now()); err == nil {
				t.Fatalf("validated but does not encode: %v", err)
			}
			return
		}
		if f, ferr := formatProperties(&m); f != s || ferr != nil {
			t.Fatalf("formatProperties gives %q, %v; FormatProperties %q", f, ferr, s)
		}
		if len(s) != m.StoredPropertiesLen() {
			t.Fatalf("encoded %d bytes, StoredPropertiesLen says %d", len(s), m.StoredPropertiesLen())
		}
		if _, _, _, err := encodeSend([]domain.Message{m}); (err == nil) != (len(s) <= remoting.MaxPropertiesLen) {
			t.Fatalf("%d bytes: encodeSend %v", len(s), err)
		}
	})
}
