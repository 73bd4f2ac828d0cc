package domain_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

func TestReceiptHandleRoundTrip(t *testing.T) {
	cases := []string{
		"12 1700000000123 60000 3 0 broker-a 2 4711 987654321",
		"0 1 10000 0 1 b 0 0",
		"9223372036854775807 1700000000000 43200000 7 2 rmqproxy-local 1023 9223372036854775807 0",
	}
	for _, s := range cases {
		h, err := domain.ParseReceiptHandle(s)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		if got := h.String(); got != s {
			t.Errorf("round trip %q -> %q", s, got)
		}
	}
	h, _ := domain.ParseReceiptHandle(cases[0])
	if want := time.UnixMilli(1700000060123); !h.NextVisibleTime().Equal(want) {
		t.Errorf("next visible %v, want %v", h.NextVisibleTime(), want)
	}
	if !h.Expired(time.UnixMilli(1700000060123)) || h.Expired(time.UnixMilli(1700000060122)) {
		t.Error("expiry boundary is next visible time <= now")
	}
}

func TestReceiptHandleRejectsMalformed(t *testing.T) {
	for name, s := range map[string]string{
		"empty":         "",
		"seven fields":  "1 2 3 4 0 b 1",
		"ten fields":    "1 2 3 4 0 b 1 2 3 4",
		"not a number":  "x 2 3 4 0 b 1 2 3",
		"empty broker":  "1 2 3 4 0  1 2 3",
		"negative time": "1 -2 3 4 0 b 1 2 3",
		"bad type":      "1 2 3 4 9 b 1 2 3",
		"double space":  "1  2 3 4 0 b 1 2",
		"overflow":      "1 2 3 4 0 b 99999999999 2 3",
		"java npe bait": "null null null null null null null null",
	} {
		if _, err := domain.ParseReceiptHandle(s); !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
			t.Errorf("%s: %q gave %v, want InvalidReceiptHandle", name, s, err)
		}
	}
}

func FuzzParseReceiptHandle(f *testing.F) {
	for _, s := range []string{
		"12 1700000000123 60000 3 0 broker-a 2 4711 987654321",
		"0 1 10000 0 1 b 0 0", "", " ", "1 2 3 4 0 b 1 2 3 4", "-1 -1 -1 -1 -1 - -1 -1 -1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := domain.ParseReceiptHandle(s)
		if err != nil {
			if !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		again, err := domain.ParseReceiptHandle(h.String())
		if err != nil || again != h {
			t.Fatalf("re-encoding %q gave %q (%v)", s, h.String(), err)
		}
	})
}

// TestParseReceiptHandleAllocatesNothing: a handle is read in place (its
// broker name is a substring of it), once per ack.
func TestParseReceiptHandleAllocatesNothing(t *testing.T) {
	s := domain.ReceiptHandle{StartOffset: 100, RetrieveTime: 1700000000000, InvisibleTime: 30000, ReviveQueueID: 3,
		BrokerName: "broker-a", QueueID: 2, QueueOffset: 105, CommitLogOffset: 987654}.String()
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := domain.ParseReceiptHandle(s); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("ParseReceiptHandle allocates %.0f objects, want 0", allocs)
	}
}

func TestSpaceFieldsCountsAsSplit(t *testing.T) {
	for _, s := range []string{"", " ", "a", "a b", "a  b", "a b c d", "a b c d e", " a b c d "} {
		var f [4]string
		n := domain.SpaceFields(s, f[:])
		want := strings.Split(s, " ")
		switch {
		case len(want) <= len(f) && (n != len(want) || !slices.Equal(f[:n], want)):
			t.Errorf("SpaceFields(%q) = %d %q, want %d %q", s, n, f[:min(n, len(f))], len(want), want)
		case len(want) > len(f) && (n != len(f)+1 || !slices.Equal(f[:], want[:len(f)])):
			t.Errorf("SpaceFields(%q) = %d %q, want %d and the first %d of %q", s, n, f, len(f)+1, len(f), want)
		}
	}
}
