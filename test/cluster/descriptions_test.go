package cluster_test

import (
	"net"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestDescriptionsAcrossProxies: topic and group descriptions live in the
// NameServers' KV config, so a second rmqproxy in front of the same cluster
// shows what the first stored. A third one that also lists a NameServer
// that does not answer creates the topic, stores the description on the
// NameServer that answers, and reports the one that did not.
func TestDescriptionsAcrossProxies(t *testing.T) {
	cfg, _ := testenv.ClusterConfig(t)
	a := testenv.Start(t, cfg)
	b := testenv.Start(t, cfg)
	desc := "orders from the EU shop, \"priority\"\nsecond line"
	testenv.Claim(t, "topic", "described")
	if _, err := a.Admin.CreateTopic(t.Context(), application.TopicSpec{Name: "described", Type: domain.MessageTypeNormal, Description: &desc}); err != nil {
		t.Fatal(err)
	}
	if tp, err := b.Admin.Topic(t.Context(), "described"); err != nil || tp.Description != desc {
		t.Fatalf("the topic seen through the other proxy: %+v %v", tp, err)
	}
	gdesc := "billing consumers"
	testenv.Claim(t, "consumer group", "g-described")
	if _, err := b.Admin.CreateGroup(t.Context(), application.GroupSpec{Name: "g-described", Description: &gdesc}); err != nil {
		t.Fatal(err)
	}
	if code, out := testenv.CLI(t, "group", "describe", "g-described", "--admin.address="+a.AdminAddr()); code != 0 || !strings.Contains(out, gdesc) {
		t.Fatalf("the group described through the other proxy: exit %d:\n%s", code, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	cfg2 := cfg
	cfg2.Cluster.NameServers = append([]string{dead}, cfg.Cluster.NameServers...)
	c := testenv.Start(t, cfg2)
	testenv.Claim(t, "topic", "described-half")
	half := "stored where it can be"
	_, err = c.Admin.CreateTopic(t.Context(), application.TopicSpec{Name: "described-half", Type: domain.MessageTypeNormal, Description: &half})
	if msg := domain.MessageOf(err); domain.ReasonOf(err) != domain.ReasonUnavailable ||
		!strings.Contains(msg, `topic "described-half" was created, but its description was not stored on every NameServer (1 of 2 NameServers failed: NameServer `+dead) {
		t.Fatalf("create with a NameServer down: %v", err)
	}
	if tp, err := a.Admin.Topic(t.Context(), "described-half"); err != nil || tp.Description != half {
		t.Fatalf("the topic and its description on the NameServer that answers: %+v %v", tp, err)
	}
}
