package chansend_test

import (
	"context"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/chansend"
)

func TestWithin(t *testing.T) {
	ch := make(chan int, 1)
	if !chansend.Within(t.Context(), ch, 1, time.Second) {
		t.Fatal("a channel with room refused")
	}
	if chansend.Within(t.Context(), ch, 2, 10*time.Millisecond) {
		t.Fatal("a full channel took the value")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if chansend.Within(ctx, ch, 3, time.Hour) {
		t.Fatal("a full channel took the value after its context ended")
	}
	done := make(chan bool)
	go func() { done <- chansend.Within(t.Context(), ch, 4, 10*time.Second) }()
	if <-ch != 1 {
		t.Fatal("first value")
	}
	if !<-done {
		t.Fatal("the value waiting for room was refused once there was room")
	}
	if <-ch != 4 {
		t.Fatal("the waiting value")
	}
}
