package application

import (
	"fmt"
	"testing"
)

// TestTurnsForgetTopicsBeyondTheBound: the round-robin counters of send
// queue selection and transaction check-backs are kept per topic; a proxy
// that sees topics created and deleted for months kept one for every name
// ever sent to. They are bounded by maxTurns, and a topic in use still
// takes its turns in order.
func TestTurnsForgetTopicsBeyondTheBound(t *testing.T) {
	var tr turns
	for i := range 3 * maxTurns {
		nextTurn(&tr, fmt.Sprintf("churn-%d", i))
	}
	if a, b := nextTurn(&tr, "busy"), nextTurn(&tr, "busy"); b != a+1 {
		t.Fatalf("busy's turns %d then %d", a, b)
	}
	held := 0
	tr.m.Range(func(any, any) bool { held++; return true })
	if held > maxTurns || tr.len() != held {
		t.Fatalf("%d counters held (counted %d) after %d topics, want at most %d", held, tr.len(), 3*maxTurns+1, maxTurns)
	}
}
