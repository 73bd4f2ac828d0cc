package testenv

import (
	"slices"
	"testing"
)

// TestBrokerConfFromTheEnvironment: the lines of RMQPROXY_TEST_BROKER_CONF
// come after the pass's settings (so they can override them) and before
// a test's own (which need theirs).
func TestBrokerConfFromTheEnvironment(t *testing.T) {
	t.Setenv(BrokerConfEnv, " enableRetryTopicV2=true ;; transactionTimeOut=2000")
	got := passBrokerSettings("enableRetryTopicV2=false")
	want := append(slices.Clone(brokerSettings), "enableRetryTopicV2=true", "transactionTimeOut=2000", "enableRetryTopicV2=false")
	if !slices.Equal(got, want) {
		t.Fatalf("broker.conf lines %q, want %q", got, want)
	}
	t.Setenv(BrokerConfEnv, "")
	if got := passBrokerSettings(); !slices.Equal(got, brokerSettings) {
		t.Fatalf("without the variable: %q", got)
	}
}
