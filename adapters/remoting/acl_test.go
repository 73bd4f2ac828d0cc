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

// Vectors produced by running upstream's AclClientRPCHook (rocketmq-client
// 5.5.0 from Maven Central) on the same commands: non-ASCII values, a
// body, and a security token (which Java signs too).
func TestSignatureMatchesJava(t *testing.T) {
	fields := func() remoting.Fields {
		return remoting.Fields{{"topic", "TopicTest"}, {"a", "PG"}, {"Zeta", "é€😀"}, {"bname", "broker-a"}}
	}
	tests := []struct {
		cred remoting.Credentials
		want string
	}{
		{remoting.Credentials{AccessKey: "rocketmq2", SecretKey: "12345678"}, "k2aq/GY/2y7qKOK4S1xoDe40s74="},
		{remoting.Credentials{AccessKey: "ak", SecretKey: "sk", SecurityToken: "sts-token"}, "sNYPvnsHeHdKAwbjT8fTNgWiBII="},
	}
	for _, tt := range tests {
		cmd := remoting.Command{Fields: fields(), Body: []byte("hello")}
		tt.cred.Sign(&cmd)
		if got := cmd.Fields.Value("Signature"); got != tt.want {
			t.Fatalf("%s: got %s want %s", tt.cred.AccessKey, got, tt.want)
		}
	}
}
