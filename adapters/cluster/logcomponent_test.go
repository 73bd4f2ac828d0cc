package cluster

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
)

// TestRemotingLogNamesOneComponent: the Remoting client's lines name
// their component once (component=remoting), not also the cluster
// adapter's: a JSON line with a key twice is refused by strict log
// pipelines.
func TestRemotingLogNamesOneComponent(t *testing.T) {
	addr := startFakeBroker(t, answerSuccess)
	cfg := DefaultConfig()
	cfg.NameServers = []string{addr}
	var logs logbuf.Buffer
	b, err := New(cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(t.Context()) })
	if err := b.Ready(t.Context()); err != nil { // connects: logged at Debug
		t.Fatal(err)
	}
	var seen bool
	for _, l := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(l, `"component":"remoting"`) {
			continue
		}
		seen = true
		if n := strings.Count(l, `"component":`); n != 1 {
			t.Errorf("remoting line names %d components:\n%s", n, l)
		}
	}
	if !seen {
		t.Fatalf("no remoting line in:\n%s", logs.String())
	}
}
