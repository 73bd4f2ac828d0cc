package domain_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
)

func TestParseMessageID(t *testing.T) {
	// A v1 id as the Go client v5.1.4 builds it.
	v1 := "01A0B1C2D3E4F5102A0AFE8B2F00000001"
	id, err := domain.ParseMessageID(v1, false)
	if err != nil || id.Version != domain.MessageIDV1 || id.PID != 0x102A || id.Sequence != 1 {
		t.Fatalf("v1: %+v %v", id, err)
	}
	if id.String() != v1 {
		t.Errorf("v1 round trip: %s", id.String())
	}
	off := domain.OffsetMessageID(netip.MustParseAddr("10.0.0.7"), 10911, 123456)
	got, err := domain.ParseMessageID(off, true)
	if err != nil || got.CommitLogOffset != 123456 || got.Port != 10911 || got.IP.String() != "10.0.0.7" {
		t.Fatalf("offset id %s: %+v %v", off, got, err)
	}
	for _, bad := range []string{"", "XYZ", "01", strings.Repeat("0", 33), strings.Repeat("A", 40)} {
		if _, err := domain.ParseMessageID(bad, false); !domain.HasReason(err, domain.ReasonIllegalMessageID) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseMessageID(f *testing.F) {
	for _, s := range []string{"01A0B1C2D3E4F5102A0AFE8B2F00000001", "0A0000070000289F000000000001E240", "", "zz"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, asOffset bool) {
		id, err := domain.ParseMessageID(s, asOffset)
		if err != nil {
			return
		}
		again, err := domain.ParseMessageID(id.String(), asOffset)
		if err != nil || again.String() != id.String() {
			t.Fatalf("%q: re-encoded %q does not decode to itself (%v)", s, id.String(), err)
		}
		if id.Version != domain.MessageIDV0 && !strings.EqualFold(id.String(), s) {
			t.Fatalf("%q re-encodes to %q", s, id.String())
		}
	})
}
