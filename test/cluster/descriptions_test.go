package cluster_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestDescriptionsAcrossProxies: topic and group descriptions live in the
// NameServers' KV config, so a second rmqproxy in front of the same cluster
// shows what the first stored. A third one that also lists a NameServer
// that does not answer creates the topic, stores the description on the
// NameServer that answers, and reports the one that did not.
func TestDescriptionsAcrossProxies(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	a := testenv.Start(t, cfg)
	b := testenv.Start(t, cfg)
	topic, group, half := testenv.Name(t, "described"), testenv.Name(t, "g-described"), testenv.Name(t, "described-half")
	desc := "orders from the EU shop, \"priority\"\nsecond line"
	testenv.Claim(t, "topic", topic)
	if _, err := a.Admin.CreateTopic(t.Context(), application.TopicSpec{Name: topic, Type: domain.MessageTypeNormal, Description: &desc}); err != nil {
		t.Fatal(err)
	}
	if tp, err := b.Admin.Topic(t.Context(), topic); err != nil || tp.Description != desc {
		t.Fatalf("the topic seen through the other proxy: %+v %v", tp, err)
	}
	gdesc := "billing consumers"
	testenv.Claim(t, "consumer group", group)
	if _, err := b.Admin.CreateGroup(t.Context(), application.GroupSpec{Name: group, Description: &gdesc}); err != nil {
		t.Fatal(err)
	}
	if code, out := testenv.CLI(t, "group", "describe", group, "--admin.address="+a.AdminAddr()); code != 0 || !strings.Contains(out, gdesc) {
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
	testenv.Claim(t, "topic", half)
	halfDesc := "stored where it can be"
	_, err = c.Admin.CreateTopic(t.Context(), application.TopicSpec{Name: half, Type: domain.MessageTypeNormal, Description: &halfDesc})
	if msg := domain.MessageOf(err); domain.ReasonOf(err) != domain.ReasonUnavailable ||
		!strings.Contains(msg, `topic "`+half+`" was created, but its description was not stored on every NameServer (1 of 2 NameServers failed: NameServer `+dead) {
		t.Fatalf("create with a NameServer down: %v", err)
	}
	if tp, err := a.Admin.Topic(t.Context(), half); err != nil || tp.Description != halfDesc {
		t.Fatalf("the topic and its description on the NameServer that answers: %+v %v", tp, err)
	}
}

// TestDescriptionsLatestCopyAcrossNameServers runs a second, real
// NameServer beside the cluster's, as the KV config of a cluster with two
// NameServers: rmqproxy writes a topic's description and times to both. The
// first NameServer is then made to hold what it would had it been down
// during the last update (the older description and times, written with
// PUT_KV_CONFIG as rmqproxy writes them). A describe still shows the
// latest update (not the first NameServer's copy), with the created time
// of the creation, and gives the first NameServer the latest copy again.
func TestDescriptionsLatestCopyAcrossNameServers(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	second := rocketmqenv.StartNameServer(t)
	first := cfg.Cluster.NameServers[0]
	cfg.Cluster.NameServers = []string{first, second.NameServer}
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "described-twice")
	testenv.Claim(t, "topic", topic)
	v1, v2 := "first text", "second text"
	created, err := p.Admin.CreateTopic(t.Context(), application.TopicSpec{Name: topic, Type: domain.MessageTypeNormal, Description: &v1})
	if err != nil {
		t.Fatal(err)
	}
	rc := client.New(client.Config{})
	defer rc.Close()
	kv := func(addr string, code remoting.RequestCode, ns, value string) string {
		t.Helper()
		h := &remoting.KVConfigRequestHeader{Namespace: ns + cfg.Cluster.ClusterName, Key: topic, Value: value}
		resp, err := rc.Invoke(t.Context(), addr, remoting.NewRequest(code, remoting.EncodeHeader(h), nil))
		if err == nil {
			err = remoting.Expect(resp)
		}
		if err != nil {
			t.Fatalf("%v on NameServer %s: %v", code, addr, err)
		}
		var out remoting.KVConfigResponseHeader
		_ = out.DecodeFields(resp.Fields)
		return out.Value
	}
	createdTimes := kv(first, remoting.RequestGetKvConfig, "rmqproxy.topic.times.", "")
	if want := fmt.Sprint(created.CreatedAt.UnixMilli(), " ", created.CreatedAt.UnixMilli()); createdTimes != want {
		t.Fatalf("the NameServer holds the times %q, want %q", createdTimes, want)
	}
	testenv.WaitFor(t, 10*time.Second, func() error { // updated times must differ from the created ones
		if time.Since(created.CreatedAt) < 5*time.Millisecond {
			return errors.New("too soon")
		}
		return nil
	})
	updated, err := p.Admin.UpdateTopic(t.Context(), application.TopicSpec{Name: topic, Description: &v2})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{first, second.NameServer} {
		if d := kv(ns, remoting.RequestGetKvConfig, "rmqproxy.topic.description.", ""); d != v2 {
			t.Fatalf("NameServer %s holds %q after the update", ns, d)
		}
	}
	// The first NameServer "missed" the update.
	kv(first, remoting.RequestPutKvConfig, "rmqproxy.topic.description.", v1)
	kv(first, remoting.RequestPutKvConfig, "rmqproxy.topic.times.", createdTimes)

	tp, err := p.Admin.Topic(t.Context(), topic)
	if err != nil || tp.Description != v2 || !tp.CreatedAt.Equal(created.CreatedAt) || !tp.UpdatedAt.Equal(updated.UpdatedAt) || tp.UpdatedAt.Equal(tp.CreatedAt) {
		t.Fatalf("described as %+v (%v), want %q created %v updated %v", tp, err, v2, created.CreatedAt, updated.UpdatedAt)
	}
	if d := kv(first, remoting.RequestGetKvConfig, "rmqproxy.topic.description.", ""); d != v2 {
		t.Fatalf("the first NameServer was not given the latest description: it holds %q", d)
	}
	code, out := testenv.CLI(t, "topic", "describe", topic, "--admin.address="+p.AdminAddr())
	if code != 0 || !strings.Contains(out, "Created:      "+created.CreatedAt.Format(time.RFC3339)) {
		t.Fatalf("rmqproxy topic describe: exit %d:\n%s", code, out)
	}
}
