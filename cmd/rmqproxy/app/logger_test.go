package app_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
)

// TestLoggedDurationsAreText: a duration attribute (the drain notice's
// drain_delay, the access log's duration, ...) reads "5s" in both log
// formats, also inside a group, added with With, or given as slog.Any;
// with log.format json it was a bare count of nanoseconds (5000000000).
func TestLoggedDurationsAreText(t *testing.T) {
	logAll := func(log *slog.Logger) {
		log.With("settle", 1500*time.Millisecond).Info("draining: reporting not ready",
			"drain_delay", 5*time.Second,
			slog.Any("timeout", 30*time.Second),
			slog.Group("stage", slog.Duration("budget", 10*time.Second)),
			"count", 7)
	}
	var js logbuf.Buffer
	logAll(app.NewLogger(&js, app.LogConfig{Level: "info", Format: "json"}))
	var rec map[string]any
	if err := json.Unmarshal([]byte(js.String()), &rec); err != nil {
		t.Fatalf("%v: %s", err, js.String())
	}
	for key, want := range map[string]any{"drain_delay": "5s", "timeout": "30s", "settle": "1.5s", "count": float64(7)} {
		if rec[key] != want {
			t.Errorf("json %s = %#v, want %#v: %s", key, rec[key], want, js.String())
		}
	}
	if stage, _ := rec["stage"].(map[string]any); stage["budget"] != "10s" {
		t.Errorf("json stage.budget = %#v, want \"10s\": %s", stage["budget"], js.String())
	}
	var text logbuf.Buffer
	logAll(app.NewLogger(&text, app.LogConfig{Level: "info", Format: "text"}))
	for _, want := range []string{"settle=1.5s", "drain_delay=5s", "timeout=30s", "stage.budget=10s", "count=7"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %s: %s", want, text.String())
		}
	}
}
