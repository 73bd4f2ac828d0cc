package freeport

import "testing"

func TestFreePortsAvoidEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 50 {
		p, err := Range(2)
		if err != nil {
			t.Fatal(err)
		}
		if p-2 <= 1024 || p+1 >= low {
			t.Fatalf("ports %d..%d are not all below the ephemeral range starting at %d", p-2, p+1, low)
		}
		if !portsFree(p-2, p+1) {
			t.Fatalf("ports %d..%d are not free", p-2, p+1)
		}
	}
}
