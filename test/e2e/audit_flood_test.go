package e2e_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestAuditFloodIsCoalescedAndFlushedAtStop: a tenant repeating a refused
// request is audited by the running proxy as its first refusal, at once,
// and one event counting the rest; the count held when the proxy stops
// (SIGTERM) is written before it exits. Another user's authentication
// failure in the middle of the flood is recorded at once with its
// AccessKey. Each refusal used to be a row of its own.
func TestAuditFloodIsCoalescedAndFlushedAtStop(t *testing.T) {
	s := newSecured(t)
	// A window longer than the test: the count is written at stop only.
	c := s.start(t, "--auth.auditCoalesce.window=1h")
	const flood = 300
	for i := range flood {
		// carol may use orders-* only from 10.0.0.0/8.
		if st := rawCall(t, c.GRPCAddr, signed("carol", carolSecret, time.Now().UTC(), false)...); st.GetCode() != v2.Code_FORBIDDEN {
			t.Fatalf("carol's request %d: %v, want FORBIDDEN", i, st)
		}
		if i == flood/2 {
			if st := rawCall(t, c.GRPCAddr, signed("alice", "not-alice-secret-0123456789", time.Now().UTC(), false)...); st.GetCode() != v2.Code_UNAUTHORIZED {
				t.Fatalf("a wrong signature for alice: %v, want UNAUTHORIZED", st)
			}
		}
	}
	rows := func() (carolRows, carolCount, aliceRows int64, err error) {
		evs, err := s.store.QueryAudit(t.Context(), domain.AuditQuery{Decision: domain.AuditDeny, Limit: 10000})
		for _, e := range evs {
			switch {
			case e.Category == domain.AuditAuthz && e.Principal == "carol" && e.Operation == "QueryRoute":
				carolRows++
				carolCount += e.Count()
			case e.Category == domain.AuditAuthn && e.Principal == "alice" && e.Reason == "bad_signature":
				aliceRows++
			}
		}
		return carolRows, carolCount, aliceRows, err
	}
	testenv.WaitFor(t, 15*time.Second, func() error {
		carolRows, _, aliceRows, err := rows()
		if err != nil {
			return err
		}
		if carolRows != 1 || aliceRows != 1 {
			return fmt.Errorf("while running: %d rows of carol's denial (want the first alone), %d of alice's failure (want 1)", carolRows, aliceRows)
		}
		return nil
	})
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, logs := c.ExitedWith(t); code != 0 {
		t.Fatalf("rmqproxy exited %d:\n%s", code, logs)
	}
	carolRows, carolCount, aliceRows, err := rows()
	if err != nil {
		t.Fatal(err)
	}
	if carolRows != 2 || carolCount != flood || aliceRows != 1 {
		t.Errorf("after stop: carol's denial in %d rows counting %d (want 2 counting %d), alice's failure in %d rows (want 1)", carolRows, carolCount, flood, aliceRows)
	}
}
