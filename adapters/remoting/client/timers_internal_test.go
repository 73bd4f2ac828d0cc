package client

import "testing"

func TestSyncTimerChannels(t *testing.T) {
	for godebug, want := range map[string]bool{
		"":                                   true,
		"asynctimerchan=0":                   true,
		"asynctimerchan=1":                   false,
		"http2debug=1, asynctimerchan=1":     false,
		"asynctimerchan=1,asynctimerchan=0":  true,
		"asynctimerchan=0,asynctimerchan=1":  false,
		"gctrace=1":                          true,
		"xasynctimerchan=1,asynctimerchan=2": true,
	} {
		if got := syncTimerChannels(godebug); got != want {
			t.Errorf("syncTimerChannels(%q) = %v, want %v", godebug, got, want)
		}
	}
}
