package cluster_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestBrokerWithTLS puts rmqproxy (cluster.tls on, trusting a certificate
// the test makes for 127.0.0.1) in front of a NameServer and a broker of
// the test's own that serve TLS with that certificate; the broker only TLS
// (tls.server.mode=enforcing: a plaintext connection is refused), the
// NameServer both (the broker registers with it in plaintext). Admin
// commands, sends, receives and acks work through it.
func TestBrokerWithTLS(t *testing.T) {
	testenv.ClusterConfig(t) // skips (or fails) the test as the cluster pass does when RocketMQ is missing
	cert, key := writeCertificate(t)
	serve := []string{"-Dtls.test.mode.enable=false", "-Dtls.server.certPath=" + cert, "-Dtls.server.keyPath=" + key,
		"-Dtls.server.need.client.auth=none"}
	c, err := rocketmqenv.LaunchNameServerWith(t.TempDir(), append([]string{"-Dtls.server.mode=permissive"}, serve...))
	if c != nil {
		t.Cleanup(c.Close)
	}
	if err == nil {
		err = c.AwaitNameServer()
	}
	if err != nil {
		t.Fatal(err)
	}
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
	cfg.Cluster.ClusterName = "cluster-tls"
	cfg.Cluster.TLS.Enabled = true
	cfg.Cluster.TLS.CAFile = cert
	p := testenv.Start(t, cfg)
	const topic, group = "tls-orders", "g-tls-orders"
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, group, topic)
	for i := range 4 {
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, []byte(fmt.Sprint("m", i)), "")}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send over TLS: %v %v", resp, err)
		}
	}
	got := raw.ReceiveN(t, group, topic, 4, time.Minute, 60*time.Second)
	if ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, got)); err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack over TLS: %v %v", ack, err)
	}
}

// writeCertificate writes a self-signed certificate for 127.0.0.1 and its
// key (PKCS #8, which the brokers' netty reads) to PEM files.
func writeCertificate(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rmqproxy test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "broker.pem"), filepath.Join(dir, "broker.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
