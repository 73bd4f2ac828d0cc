package remoting_test

import (
	"encoding/base64"
	"net/netip"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

func verify(cmd *remoting.Command, secret string) (string, bool) {
	ak, content, sig, fault := remoting.RequestCredentials(cmd)
	if fault != "" {
		return fault, false
	}
	return ak, remoting.VerifySignature([]byte(secret), content, sig)
}

// TestVerifySignature is the server side of classic ACL signing
// (security.md §3.2, test T2): what the client hook signs verifies, and
// the tampering the design lists is caught or, where the wire format
// cannot catch it, shown for what it is.
func TestVerifySignature(t *testing.T) {
	cred := remoting.Credentials{AccessKey: "rocketmq2", SecretKey: "12345678"}
	signed := func(fields remoting.Fields, body string) *remoting.Command {
		cmd := &remoting.Command{Code: int32(remoting.RequestSendMessageV2), Version: 479, Fields: fields, Body: []byte(body)}
		cred.Sign(cmd)
		return cmd
	}
	cmd := signed(remoting.Fields{{"a", "PG"}, {"b", "TopicTest"}}, "hello")
	if ak, ok := verify(cmd, "12345678"); !ok || ak != "rocketmq2" {
		t.Fatalf("a correctly signed request: %s %v", ak, ok)
	}
	if _, ok := verify(cmd, "wrong-secret"); ok {
		t.Fatal("wrong secret verified")
	}
	// The upstream vector (remoting-protocol.md §8.1) verifies.
	vec := &remoting.Command{Fields: remoting.Fields{{"topic", "TopicTest"}, {"AccessKey", "rocketmq2"}, {"Signature", "VCoakk8D+zaEPRCyxQHvWUF4988="}}, Body: []byte("hello"), Version: 479}
	if _, ok := verify(vec, "12345678"); !ok {
		t.Fatal("upstream vector does not verify")
	}
	tamper := func(name string, change func(*remoting.Command), wantOK bool) {
		c := signed(remoting.Fields{{"a", "PG"}, {"b", "TopicTest"}}, "hello")
		change(c)
		if _, ok := verify(c, "12345678"); ok != wantOK {
			t.Errorf("%s: verified %v, want %v", name, ok, wantOK)
		}
	}
	tamper("body altered", func(c *remoting.Command) { c.Body = []byte("hellO") }, false)
	tamper("field added after signing", func(c *remoting.Command) { c.Fields = append(c.Fields, remoting.Field{Key: "c", Value: "x"}) }, false)
	tamper("field value changed", func(c *remoting.Command) { c.Fields[1].Value = "OtherTopic" }, false)
	// Values are concatenated without delimiters: moving characters
	// between adjacent fields keeps the signature (an inherent weakness of
	// the wire format; authorization still runs on the parsed fields).
	tamper("boundary shift between two fields", func(c *remoting.Command) { c.Fields[0].Value, c.Fields[1].Value = "PGTopic", "Test" }, true)
	// _UNIQUE_KEY_QUERY added after signing: ignored for old clients only.
	old := signed(remoting.Fields{{"a", "PG"}, {"b", "TopicTest"}}, "")
	old.Version = 399
	old.Fields = append(old.Fields, remoting.Field{Key: "_UNIQUE_KEY_QUERY", Value: "true"})
	if _, ok := verify(old, "12345678"); !ok {
		t.Error("version 399 with _UNIQUE_KEY_QUERY added after signing must verify")
	}
	old.Version = 400
	if _, ok := verify(old, "12345678"); ok {
		t.Error("version 400 with _UNIQUE_KEY_QUERY added after signing verified")
	}
	for name, c := range map[string]*remoting.Command{
		"no AccessKey":       {Fields: remoting.Fields{{"topic", "t"}}},
		"signature not b64":  {Fields: remoting.Fields{{"AccessKey", "ak"}, {"Signature", "!!"}}},
		"signature 19 bytes": {Fields: remoting.Fields{{"AccessKey", "ak"}, {"Signature", base64.StdEncoding.EncodeToString(make([]byte, 19))}}},
		"non-ASCII key":      {Fields: remoting.Fields{{"AccessKey", "ak"}, {"Signature", base64.StdEncoding.EncodeToString(make([]byte, 20))}, {"tópico", "t"}}},
		"hostile AccessKey":  {Fields: remoting.Fields{{"AccessKey", "x'; DROP"}, {"Signature", base64.StdEncoding.EncodeToString(make([]byte, 20))}}},
	} {
		if _, _, _, fault := remoting.RequestCredentials(c); fault == "" {
			t.Errorf("%s: no fault", name)
		}
	}
}

func TestAccessOf(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.1")
	cases := []struct {
		code   remoting.RequestCode
		fields remoting.Fields
		body   string
		want   string
		known  bool
	}{
		{remoting.RequestSendMessageV2, remoting.Fields{{"a", "PG"}, {"b", "orders"}}, "", "Topic:orders=Pub", true},
		{remoting.RequestSendMessage, remoting.Fields{{"producerGroup", "PG"}, {"topic", "%RETRY%g1"}}, "", "Group:g1=Sub", true},
		{remoting.RequestPullMessage, remoting.Fields{{"consumerGroup", "g"}, {"topic", "t"}}, "", "Group:g=Sub Topic:t=Sub", true},
		{remoting.RequestPopMessage, remoting.Fields{{"consumerGroup", "g"}, {"topic", "t"}}, "", "Group:g=Sub Topic:t=Sub", true},
		{remoting.RequestUpdateConsumerOffset, remoting.Fields{{"consumerGroup", "g"}, {"topic", "t"}}, "", "Group:g=Sub,Update Topic:t=Sub,Update", true},
		{remoting.RequestGetRouteinfoByTopic, remoting.Fields{{"topic", "t"}}, "", "Topic:t=Pub,Sub,Get", true},
		{remoting.RequestHeartBeat, nil, `{"clientID":"c","producerDataSet":[{"groupName":"PG"}],"consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"t1"},{"topic":"%RETRY%g"}]}]}`, "Group:g=Sub Topic:t1=Sub", true},
		{remoting.RequestHeartBeat, nil, `{"clientID":"c","producerDataSet":[{"groupName":"PG"}]}`, "", true},
		{remoting.RequestLockBatchMq, nil, `{"consumerGroup":"g","mqSet":[{"topic":"t1"},{"topic":"t2"}]}`, "Group:g=Sub Topic:t1=Sub Topic:t2=Sub", true},
		{remoting.RequestAuthCreateUser, nil, "", "Cluster:=Update", true},
		{remoting.RequestAuthListAcl, nil, "", "Cluster:=Get", true},
		{remoting.RequestRegisterBroker, nil, "", "", false},
		{remoting.RequestCode(99999), nil, "", "", false},
	}
	for _, c := range cases {
		reqs, known, err := remoting.AccessOf(&remoting.Command{Code: int32(c.code), Fields: c.fields, Body: []byte(c.body)}, ip)
		if err != nil || known != c.known {
			t.Errorf("%v: known %v, %v", c.code, known, err)
			continue
		}
		got := ""
		for i, r := range reqs {
			if i > 0 {
				got += " "
			}
			got += r.Resource.Type.String() + ":" + r.Resource.Name + "=" + r.Actions.String()
			if r.SourceIP != ip {
				t.Errorf("%v: source %v", c.code, r.SourceIP)
			}
		}
		if got != c.want {
			t.Errorf("%v: %q, want %q", c.code, got, c.want)
		}
	}
	if _, _, err := remoting.AccessOf(&remoting.Command{Code: int32(remoting.RequestHeartBeat), Body: []byte("{bad")}, ip); !domain.HasReason(err, domain.ReasonBadRequest) {
		t.Errorf("bad heartbeat body: %v", err)
	}
	if _, _, err := remoting.AccessOf(&remoting.Command{Code: int32(remoting.RequestEndTransaction)}, ip); !domain.HasReason(err, domain.ReasonBadRequest) {
		t.Errorf("END_TRANSACTION without topic: %v", err)
	}
}

func FuzzRequestCredentials(f *testing.F) {
	f.Add("AccessKey", "rocketmq2", "Signature", "VCoakk8D+zaEPRCyxQHvWUF4988=", "topic", "TopicTest", []byte("hello"), int32(479))
	f.Add("AccessKey", "", "Signature", "", "_UNIQUE_KEY_QUERY", "x", []byte{}, int32(1))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string, body []byte, version int32) {
		cmd := &remoting.Command{Version: version, Fields: remoting.Fields{{k1, v1}, {k2, v2}, {k3, v3}}, Body: body}
		ak, content, sig, fault := remoting.RequestCredentials(cmd)
		if fault != "" {
			return
		}
		if ak == "" || len(sig) != 20 || len(content) < len(body) {
			t.Fatalf("accepted %+v as %q %d %d", cmd.Fields, ak, len(content), len(sig))
		}
		_, _, _ = remoting.AccessOf(cmd, netip.Addr{})
	})
}
