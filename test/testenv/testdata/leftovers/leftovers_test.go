// Package leftovers is run by testenv's TestNothingLeftBehind in a fresh
// TMPDIR and HOME: it uses what leaves files behind (the rmqproxy binary,
// a child process, the official Go client's log) and checks nothing.
package leftovers

import (
	"os"
	"testing"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestUseEverything(t *testing.T) {
	c := testenv.StartChild(t, t.TempDir())
	p := c.Proxy(t)
	pr := testenv.NewProducer(t, p, "leftovers")
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: "leftovers", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if code, out := testenv.CLI(t, "topic", "list", "--admin.address="+c.AdminAddr); code != 0 {
		t.Fatalf("topic list: %d %s", code, out)
	}
}
