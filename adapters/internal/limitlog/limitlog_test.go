package limitlog_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/limitlog"
)

func TestOneLinePerKeyPerInterval(t *testing.T) {
	var l limitlog.Limiter
	t0 := time.Unix(1_700_000_000, 0)
	if ok, n := l.Allow("a", t0); !ok || n != 0 {
		t.Fatalf("first line: %v, %d", ok, n)
	}
	for i := range 3 {
		if ok, _ := l.Allow("a", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("repeat %d within the interval logged", i)
		}
	}
	if ok, _ := l.Allow("b", t0); !ok {
		t.Fatal("another key's first line left out")
	}
	if ok, n := l.Allow("a", t0.Add(limitlog.DefaultEvery)); !ok || n != 3 {
		t.Fatalf("line after the interval: %v, %d left out; want true, 3", ok, n)
	}
}

// TestKeysAreBounded: keys clients choose (topic names) do not grow the
// limiter without end: beyond MaxKeys, new keys share one line per
// interval, and keys quiet for an interval are forgotten.
func TestKeysAreBounded(t *testing.T) {
	var l limitlog.Limiter
	t0 := time.Unix(1_700_000_000, 0)
	for i := range limitlog.MaxKeys {
		l.Allow(strconv.Itoa(i), t0)
	}
	if ok, _ := l.Allow("new", t0); !ok {
		t.Fatal("the first key beyond MaxKeys left out")
	}
	if ok, _ := l.Allow("newer", t0); ok {
		t.Fatal("a second key beyond MaxKeys logged within the interval")
	}
	if ok, _ := l.Allow("later", t0.Add(limitlog.DefaultEvery)); !ok {
		t.Fatal("a new key after the others were quiet for an interval left out")
	}
}
