package remoting_test

import (
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

func TestSignature(t *testing.T) {
	// remoting-protocol.md §8.1 vectors (HMAC-SHA1 over "rocketmq2TopicTest" [+ "hello"]).
	cred := remoting.Credentials{AccessKey: "rocketmq2", SecretKey: "12345678"}
	cmd := remoting.Command{Fields: remoting.Fields{{"topic", "TopicTest"}}}
	cred.Sign(&cmd)
	if cmd.Fields.Value("AccessKey") != "rocketmq2" || cmd.Fields.Value("Signature") != "GeeGoP9mRvDhoVp4PD5omX0prgE=" {
		t.Fatalf("%v", cmd.Fields)
	}
	cmd = remoting.Command{Fields: remoting.Fields{{"topic", "TopicTest"}}, Body: []byte("hello")}
	cred.Sign(&cmd)
	if cmd.Fields.Value("Signature") != "VCoakk8D+zaEPRCyxQHvWUF4988=" {
		t.Fatalf("%v", cmd.Fields)
	}
	// Signing again (a retried request) ignores the old signature.
	cred.Sign(&cmd)
	if cmd.Fields.Value("Signature") != "VCoakk8D+zaEPRCyxQHvWUF4988=" || len(cmd.Fields) != 3 {
		t.Fatalf("re-sign: %v", cmd.Fields)
	}
}
