package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestBrokerWithTLS puts rmqproxy (cluster.tls on, trusting a certificate
// the test's CA issues for 127.0.0.1) in front of a NameServer and a broker of
// the test's own that serve TLS with that certificate; the broker only TLS
// (tls.server.mode=enforcing: a plaintext connection is refused), the
// NameServer both (the broker registers with it in plaintext). Admin
// commands, sends, receives and acks work through it, and through a second
// rmqproxy that asks for TLS 1.3 (cluster.tls.minVersion).
func TestBrokerWithTLS(t *testing.T) {
	t.Parallel()             // see TestMain
	testenv.ClusterConfig(t) // skips (or fails) the test as the cluster pass does when RocketMQ is missing
	dir := t.TempDir()
	ca, cert, key, caFile := testenv.NewCA(t), filepath.Join(dir, "broker.pem"), filepath.Join(dir, "broker.key"), filepath.Join(dir, "ca.pem")
	ca.WriteServerCert(t, 2, cert, key)
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	serve := []string{"-Dtls.test.mode.enable=false", "-Dtls.server.certPath=" + cert, "-Dtls.server.keyPath=" + key,
		"-Dtls.server.need.client.auth=none"}
	c := rocketmqenv.StartNameServer(t, append([]string{"-Dtls.server.mode=permissive"}, serve...)...)
	b := c.AddBroker(t, rocketmqenv.Options{BrokerName: "broker-tls", ClusterName: "cluster-tls",
		JVM: append([]string{"-Dtls.server.mode=enforcing"}, serve...)})
	// The broker speaks TLS only: a plaintext request gets no answer.
	plain := client.New(client.Config{})
	defer plain.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if resp, err := plain.Invoke(ctx, b.Addr, remoting.NewRequest(remoting.RequestGetBrokerClusterInfo, nil, nil)); err == nil {
		t.Fatalf("the broker answered a plaintext request (%v): it does not enforce TLS", resp.Code)
	}

	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.NameServers = []string{c.NameServer}
	// This test is about TLS, not time: its own broker, just
	// started, answered its first admin requests in more than the default
	// 5 s once when CI's other suites loaded the 2 cores.
	cfg.Cluster.RequestTimeout = 20 * time.Second
	cfg.Cluster.ClusterName = "cluster-tls"
	cfg.Cluster.TLS.Enabled = true
	cfg.Cluster.TLS.CAFile = caFile
	p := testenv.Start(t, cfg)
	const topic, group = "tls-orders", "g-tls-orders"
	raw := p.Subscriber(t, topic, group, 2)
	raw.SendN(t, topic, 4)
	got := raw.ReceiveN(t, group, topic, 4, time.Minute, 60*time.Second)
	if ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, got)); err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack over TLS: %v %v", ack, err)
	}

	// cluster.tls.minVersion 1.3: the Apache NameServer and broker (on a
	// JDK that speaks TLS 1.3) are reached as well.
	cfg13, _ := testenv.ClusterConfig(t)
	cfg13.Cluster = cfg.Cluster
	cfg13.Cluster.TLS.MinVersion = "1.3"
	p13 := testenv.Start(t, cfg13)
	const topic13, group13 = "tls13-orders", "g-tls13-orders"
	raw13 := p13.Subscriber(t, topic13, group13, 2)
	raw13.SendN(t, topic13, 2)
	got13 := raw13.ReceiveN(t, group13, topic13, 2, time.Minute, 60*time.Second)
	if ack, err := raw13.AckMessage(raw13.Ctx(t), testenv.AckRequest(group13, topic13, got13)); err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack over TLS 1.3: %v %v", ack, err)
	}
}
