package cluster

import (
	"strings"
	"testing"
)

// TestSemicolonSeparatedNameServersSayHowToList: RocketMQ's namesrvAddr
// separates addresses with semicolons; such a value was refused as "not
// host:port" without saying that the list takes commas.
func TestSemicolonSeparatedNameServersSayHowToList(t *testing.T) {
	for _, v := range []string{"ns1:9876;ns2:9876", "ns1:9876;"} {
		c := DefaultConfig()
		c.NameServers = []string{v}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "separate them with commas") || !strings.Contains(err.Error(), "ns1:9876,ns2:9876") {
			t.Errorf("nameServers %q: got %v, want an error saying to separate them with commas", v, err)
		}
	}
	c := DefaultConfig()
	c.NameServers = []string{"ns1:9876", "ns2:9876"}
	if err := c.Validate(); err != nil {
		t.Errorf("two NameServers: %v", err)
	}
}
