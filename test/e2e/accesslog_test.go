package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/freeport"
)

// TestAccessLogNamesTheAuthenticatedUser: with authentication on, a
// request's access-log line names the user it was signed as and the
// address of its connection, which a client cannot choose, besides the
// client id the client declares itself: an auditor reading log.access can
// tell who sent which message. The line named the client id only.
func TestAccessLogNamesTheAuthenticatedUser(t *testing.T) {
	const appSecret = "app-secret-0123456789abcdef"
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	text := "users:\n" +
		"  - {name: admin, secret: \"" + adminSecret + "\", userType: Super}\n" +
		"  - {name: orders-app, secret: \"" + appSecret + "\"}\n" +
		"acls:\n" +
		"  - subject: User:orders-app\n" +
		"    policies:\n" +
		"      - policyType: Custom\n" +
		"        entries:\n" +
		"          - {resource: \"Topic:*\", actions: [Pub], decision: Allow}\n"
	if err := os.WriteFile(policy, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testenv.StartChild(t, t.TempDir(), "--auth.enabled", "--auth.source=file", "--auth.file="+policy,
		"--log.access=true", "--grpc.address="+freeport.Addr(t))
	if c.GRPCAddr == "" {
		t.Fatalf("rmqproxy did not start:\n%s", c.Output())
	}
	topic := testenv.Name(t, "access-who-t")
	createTopics(t, c, topic)
	p, err := startProducer(t, clientConfig(c, "orders-app", appSecret, ""), topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := send(p, topic); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		sc := bufio.NewScanner(strings.NewReader(c.Output()))
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		var seen []string
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil || line["component"] != "access" || line["rpc"] != "SendMessage" {
				continue
			}
			seen = append(seen, sc.Text())
			addr, _ := line["remote_addr"].(string)
			ap, err := netip.ParseAddrPort(addr)
			if line["user"] == "orders-app" && line["code"] == "OK" && err == nil && ap.Addr().IsLoopback() {
				return nil
			}
		}
		return fmt.Errorf("no SendMessage access line with user orders-app and a loopback remote_addr; SendMessage lines: %q", seen)
	})
}
