package e2e_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// secured is a PostgreSQL database with users and ACLs, and the flags that
// start a proxy on it.
type secured struct {
	dsn   string
	keys  string
	store *postgres.Store
	flags []string
	// The names the entries grant or deny (see testenv.Name): alice may
	// consume as group; she may not use secret, a topic under orders-*;
	// carol may publish to local from loopback.
	group, secret, local string
}

const (
	adminSecret = "admin-secret-0123456789abcdef"
	aliceSecret = "alice-secret-0123456789abcdef"
	bobSecret   = "bob-secret-0123456789abcdef00"
	carolSecret = "carol-secret-0123456789abcdef"
)

var cliActor = ports.Actor{Principal: "test", Protocol: "cli"}

// waitAudited waits until the audit events q finds (up to 1000) hold every
// want among the keys key gives each event, and fails the test otherwise.
func (s *secured) waitAudited(t *testing.T, q domain.AuditQuery, key func(domain.AuditEvent) []string, want ...string) {
	t.Helper()
	q.Limit = 1000
	testenv.WaitFor(t, 10*time.Second, func() error {
		evs, err := s.store.QueryAudit(t.Context(), q)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range evs {
			for _, k := range key(e) {
				seen[k] = true
			}
		}
		for _, w := range want {
			if !seen[w] {
				return fmt.Errorf("no audit event %q: %v", w, seen)
			}
		}
		return nil
	})
}

func newSecured(t *testing.T) *secured {
	t.Helper()
	return newSecuredOn(t, pgenv.Database(t))
}

// newSecuredOn fills the migrated database dsn with users and entries.
func newSecuredOn(t *testing.T, dsn string) *secured {
	t.Helper()
	var k [32]byte
	_, _ = rand.Read(k[:])
	keys := "k1:" + base64.StdEncoding.EncodeToString(k[:])
	ring, err := postgres.ParseKeyring(keys, "")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := &secured{dsn: dsn, keys: keys, store: postgres.NewStore(pool, ring, "e2e"),
		flags: []string{"--auth.enabled", "--auth.source=postgres", "--postgres.dsn=" + dsn, "--postgres.secretKeys=" + keys,
			"--messaging.consumer.minLongPolling=1s"},
		group: testenv.Name(t, "g-orders"), secret: testenv.Name(t, "orders-secret"), local: testenv.Name(t, "orders-local")}
	ctx := t.Context()
	for _, u := range []struct {
		name, secret string
		typ          domain.UserType
		status       domain.UserStatus
	}{
		{"admin", adminSecret, domain.UserSuper, domain.UserEnabled},
		{"alice", aliceSecret, domain.UserNormal, domain.UserEnabled},
		{"bob", bobSecret, domain.UserNormal, domain.UserDisabled},
		{"carol", carolSecret, domain.UserNormal, domain.UserEnabled},
	} {
		if err := s.store.CreateUser(ctx, cliActor, domain.User{Name: u.name, Type: u.typ, Status: u.status}, domain.Secret(u.secret)); err != nil {
			t.Fatal(err)
		}
	}
	s.put(t,
		aclEntry(t, "User:alice", "Topic:orders-*", "Pub,Sub", "Allow"),
		aclEntry(t, "User:alice", "Topic:"+s.secret, "All", "Deny"),
		aclEntry(t, "User:alice", "Group:"+s.group, "Sub", "Allow"),
		aclEntry(t, "User:bob", "*", "All", "Allow"),
		aclEntry(t, "User:carol", "Topic:orders-*", "Pub", "Allow", "10.0.0.0/8"),
		aclEntry(t, "User:carol", "Topic:"+s.local, "Pub", "Allow", "127.0.0.0/8"),
	)
	return s
}

func (s *secured) put(t *testing.T, entries ...domain.ACLEntry) {
	t.Helper()
	if err := s.store.PutEntries(t.Context(), cliActor, entries, ports.PutUpsert); err != nil {
		t.Fatal(err)
	}
}

func aclEntry(t *testing.T, subject, res, acts, decision string, ips ...string) domain.ACLEntry {
	t.Helper()
	e, err := domain.ParseACLEntry(subject, res, acts, decision, ips...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (s *secured) start(t *testing.T, extra ...string) *testenv.Child {
	t.Helper()
	c := testenv.StartChild(t, t.TempDir(), append(append([]string{}, s.flags...), extra...)...)
	if c.GRPCAddr == "" {
		t.Fatalf("rmqproxy did not start:\n%s", c.Output())
	}
	return c
}

// createTopics creates topics through the admin API, signed as the Super
// user admin (the API answers only Super users once auth is on).
func createTopics(t *testing.T, c *testenv.Child, names ...string) {
	t.Helper()
	t.Setenv("RMQPROXY_ADMIN_SECRET_KEY", adminSecret)
	for _, n := range names {
		code, out := testenv.CLI(t, "topic", "create", n, "--admin.address="+c.AdminAddr, "--admin.accessKey=admin")
		// In the cluster pass the proxies of a test share the broker: the
		// second proxy finds the topic there.
		shared := testenv.Target == testenv.TargetCluster && strings.Contains(out, "already exists")
		if code != 0 && !shared {
			t.Fatalf("topic create %s: %s", n, out)
		}
	}
}

func clientConfig(c *testenv.Child, ak, sk, group string) *rmq.Config {
	cfg := &rmq.Config{Endpoint: c.GRPCAddr, ConsumerGroup: group}
	if ak != "" {
		cfg.Credentials = &credentials.SessionCredentials{AccessKey: ak, AccessSecret: sk}
	}
	return cfg
}

// startProducer starts a producer; it returns the start error.
func startProducer(t *testing.T, cfg *rmq.Config, topics ...string) (rmq.Producer, error) {
	t.Helper()
	p, err := rmq.NewProducer(cfg, rmq.WithTopics(topics...))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = p.GracefulStop() })
	return p, nil
}

func send(p rmq.Producer, topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.Send(ctx, &rmq.Message{Topic: topic, Body: []byte("hello " + topic)})
	return err
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "CODE: "+code) {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

// TestSecurityWithOfficialClient is "must be shown" 2 with the Go client
// v5.1.4 configured with credentials: allowed publish and subscribe work;
// a denied topic answers FORBIDDEN; a bad signature, an unknown user and a
// disabled user answer UNAUTHORIZED; prefix patterns, deny-overrides and
// source address conditions decide as ACL 2.0 says; the denials are in the
// audit log.
func TestSecurityWithOfficialClient(t *testing.T) {
	s := newSecured(t)
	c := s.start(t)
	eu, payments := testenv.Name(t, "orders-eu"), testenv.Name(t, "payments")
	createTopics(t, c, eu, s.secret, s.local, payments)
	// The admin API answers Super users only.
	t.Setenv("RMQPROXY_ADMIN_SECRET_KEY", "")
	if code, out := testenv.CLI(t, "topic", "list", "--admin.address="+c.AdminAddr); code == 0 || !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Fatalf("admin API without credentials: exit %d: %s", code, out)
	}
	t.Setenv("RMQPROXY_ADMIN_SECRET_KEY", aliceSecret)
	if code, out := testenv.CLI(t, "topic", "create", "alice-topic", "--admin.address="+c.AdminAddr, "--admin.accessKey=alice"); code == 0 || !strings.Contains(strings.ToLower(out), "forbidden") {
		t.Fatalf("admin API as a Normal user: exit %d: %s", code, out)
	}
	t.Setenv("RMQPROXY_ADMIN_SECRET_KEY", "wrong-secret-0123456789")
	if code, out := testenv.CLI(t, "topic", "list", "--admin.address="+c.AdminAddr, "--admin.accessKey=admin"); code == 0 || !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Fatalf("admin API with a wrong secret: exit %d: %s", code, out)
	}
	t.Setenv("RMQPROXY_ADMIN_SECRET_KEY", adminSecret)
	if code, out := testenv.CLI(t, "topic", "list", "--admin.address="+c.AdminAddr, "--admin.accessKey=admin"); code != 0 || !strings.Contains(out, eu) {
		t.Fatalf("admin API as Super: exit %d: %s", code, out)
	}

	alice, err := startProducer(t, clientConfig(c, "alice", aliceSecret, ""), eu)
	if err != nil {
		t.Fatalf("alice's producer: %v", err)
	}
	if err := send(alice, eu); err != nil {
		t.Fatalf("alice publishes to orders-eu (Topic:orders-* Allow): %v", err)
	}
	wantCode(t, "alice publishes to payments (no entry)", send(alice, payments), "FORBIDDEN")
	wantCode(t, "alice publishes to orders-secret (Deny beats the prefix Allow)", send(alice, s.secret), "FORBIDDEN")

	// Subscribe: group and topic allowed.
	cons, err := rmq.NewSimpleConsumer(clientConfig(c, "alice", aliceSecret, s.group), rmq.WithSimpleAwaitDuration(2*time.Second),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{eu: rmq.SUB_ALL}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(); err != nil {
		t.Fatalf("alice's consumer: %v", err)
	}
	t.Cleanup(func() { _ = cons.GracefulStop() })
	// The official client's Ack does not report a refused ack.
	cons = testenv.CheckedAcks(cons)
	testenv.WaitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		mvs, err := cons.Receive(ctx, 16, 20*time.Second)
		if err != nil {
			return err
		}
		if len(mvs) == 0 {
			return fmt.Errorf("alice's message to %s not received yet", eu)
		}
		for _, mv := range mvs {
			if err := cons.Ack(ctx, mv); err != nil {
				t.Fatalf("alice acks a message of %s: %v", eu, err)
			}
		}
		return nil
	})
	// A group alice has no grant on: its Telemetry settings are refused
	// (a status command, then the end of the stream, as upstream), so the
	// client cannot start.
	other := testenv.Name(t, "g-other")
	otherCons, err := rmq.NewSimpleConsumer(clientConfig(c, "alice", aliceSecret, other), rmq.WithSimpleAwaitDuration(time.Second),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{eu: rmq.SUB_ALL}))
	if err != nil {
		t.Fatal(err)
	}
	if err := otherCons.Start(); err == nil {
		_ = otherCons.GracefulStop()
		t.Fatalf("alice started a consumer of group %s", other)
	}

	// Authentication failures.
	_, err = startProducer(t, clientConfig(c, "alice", "wrong-secret-0123456789", ""), eu)
	wantCode(t, "bad signature", err, "UNAUTHORIZED")
	_, err = startProducer(t, clientConfig(c, "mallory", aliceSecret, ""), eu)
	wantCode(t, "unknown user", err, "UNAUTHORIZED")
	_, err = startProducer(t, clientConfig(c, "bob", bobSecret, ""), eu)
	wantCode(t, "disabled user", err, "UNAUTHORIZED")
	_, err = startProducer(t, clientConfig(c, "", "", ""), eu)
	wantCode(t, "no credentials", err, "UNAUTHORIZED")

	// Source address conditions: carol may publish to orders-* only from
	// 10.0.0.0/8, to orders-local from loopback.
	carol, err := startProducer(t, clientConfig(c, "carol", carolSecret, ""), s.local)
	if err != nil {
		t.Fatalf("carol's producer: %v", err)
	}
	if err := send(carol, s.local); err != nil {
		t.Fatalf("carol publishes from loopback to orders-local: %v", err)
	}
	wantCode(t, "carol publishes from loopback to orders-eu (entry limited to 10.0.0.0/8)", send(carol, eu), "FORBIDDEN")

	// Super user: no entries needed.
	admin, err := startProducer(t, clientConfig(c, "admin", adminSecret, ""), payments)
	if err != nil {
		t.Fatalf("admin's producer: %v", err)
	}
	if err := send(admin, payments); err != nil {
		t.Fatalf("super user publishes: %v", err)
	}

	// Every denial is audited (written in batches off the hot path).
	testenv.WaitFor(t, 10*time.Second, func() error {
		evs, err := s.store.QueryAudit(t.Context(), domain.AuditQuery{Decision: domain.AuditDeny, Limit: 1000})
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range evs {
			seen[e.Category+" "+e.Principal+" "+e.Reason+" "+e.Resource] = true
		}
		for _, want := range []string{
			"authz alice no_match_default_deny Topic:" + payments,
			"authn alice bad_signature ",
			"authn mallory unknown_user ",
			"authn bob user_disabled ",
			"authn  missing_credentials ",
			"authz carol no_match_default_deny Topic:" + eu,
			"authz alice no_match_default_deny Group:" + other,
			"authz alice admin_requires_super_user ",
		} {
			if !seen[want] {
				return fmt.Errorf("no audit event %q in %v", want, seen)
			}
		}
		// The denial by the explicit Deny entry names that entry (its id is
		// the database's).
		for k := range seen {
			if strings.HasPrefix(k, "authz alice entry:") && strings.HasSuffix(k, " Topic:"+s.secret) {
				return nil
			}
		}
		return fmt.Errorf("no audit event of the Deny entry for alice on Topic:%s in %v", s.secret, seen)
	})
}

// rawCall calls QueryRoute with hand-made metadata (see queryRoute).
func rawCall(t *testing.T, addr string, md ...string) *v2.Status {
	t.Helper()
	st, err := queryRoute(t, addr, md...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// signedClient returns a raw MessagingService client of the proxy at addr
// and a function giving a request context signed as a user (a timeout of
// its own, the Go client's headers with clientID, then extra metadata).
func signedClient(t *testing.T, addr string) (v2.MessagingServiceClient, func(user, secret, clientID string, timeout time.Duration, extra ...string) (context.Context, context.CancelFunc)) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	as := func(user, secret, clientID string, timeout time.Duration, extra ...string) (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		md := signed(user, secret, time.Now(), false, append([]string{"x-mq-client-id", clientID, "x-mq-language", "GO",
			"x-mq-protocol", "v2", "x-mq-client-version", "5.1.4"}, extra...)...)
		return metadata.AppendToOutgoingContext(ctx, md...), cancel
	}
	return v2.NewMessagingServiceClient(conn), as
}

func signed(ak, secret string, at time.Time, upper bool, extra ...string) []string {
	dt := at.Format("20060102T150405Z")
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(dt))
	sig := hex.EncodeToString(m.Sum(nil))
	if upper {
		sig = strings.ToUpper(sig)
	}
	return append([]string{"x-mq-date-time", dt, "authorization",
		"MQv2-HMAC-SHA1 Credential=" + ak + ", SignedHeaders=x-mq-date-time, Signature=" + sig}, extra...)
}

// TestSignatureRules drives the signature rules with hand-made metadata:
// both hex cases; local time of any time zone labelled Z (as the Java and
// Go clients send it); a stale or future timestamp; a smuggled
// x-mq-authorization-ak naming the super user.
func TestSignatureRules(t *testing.T) {
	s := newSecured(t)
	c := s.start(t)
	createTopics(t, c, "orders-eu")
	now := time.Now().UTC()
	for _, tc := range []struct {
		name string
		md   []string
		want v2.Code
	}{
		{"lowercase hex (Go client)", signed("alice", aliceSecret, now, false), v2.Code_OK},
		{"uppercase hex (Java client)", signed("alice", aliceSecret, now, true), v2.Code_OK},
		{"client in UTC+8 labels local time Z", signed("alice", aliceSecret, now.Add(8*time.Hour), false), v2.Code_OK},
		{"client in UTC-5:30", signed("alice", aliceSecret, now.Add(-(5*time.Hour + 30*time.Minute)), false), v2.Code_OK},
		{"stale date-time (two days old)", signed("alice", aliceSecret, now.Add(-48*time.Hour), false), v2.Code_UNAUTHORIZED},
		{"date-time 7m30s off any time zone", signed("alice", aliceSecret, now.Add(-7*time.Minute-30*time.Second), false), v2.Code_UNAUTHORIZED},
		{"date-time a day ahead", signed("alice", aliceSecret, now.Add(24*time.Hour), false), v2.Code_UNAUTHORIZED},
		{"no date-time", signed("alice", aliceSecret, now, false)[2:], v2.Code_UNAUTHORIZED},
		{"go credential form AK//Rocketmq", []string{"x-mq-date-time", now.Format("20060102T150405Z"), "authorization",
			"MQv2-HMAC-SHA1 Credential=alice//Rocketmq, SignedHeaders=x-mq-date-time, Signature=" + strings.Split(signed("alice", aliceSecret, now, false)[3], "Signature=")[1]}, v2.Code_OK},
		{"a retry re-signed on the same context (Go client): two of each, the last pair counts",
			append(signed("alice", "stale-secret-0123456789", now.Add(-time.Hour), false), signed("alice", aliceSecret, now, false)...), v2.Code_OK},
		{"truncated signature", []string{"x-mq-date-time", now.Format("20060102T150405Z"), "authorization", "MQv2-HMAC-SHA1 Credential=alice, SignedHeaders=x-mq-date-time, Signature=abcdef"}, v2.Code_UNAUTHORIZED},
		{"smuggled x-mq-authorization-ak", signed("carol", carolSecret, now, false, "x-mq-authorization-ak", "admin", "rpc-remote-address", "10.1.1.1:1"), v2.Code_FORBIDDEN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st := rawCall(t, c.GRPCAddr, tc.md...); st.GetCode() != tc.want {
				t.Fatalf("got %v %q, want %v", st.GetCode(), st.GetMessage(), tc.want)
			}
		})
	}
	// With grpc.auth.clockSkew utc, a timestamp 10 minutes old is stale.
	utc := s.start(t, "--grpc.auth.clockSkew=utc")
	createTopics(t, utc, "orders-eu")
	if st := rawCall(t, utc.GRPCAddr, signed("alice", aliceSecret, now.Add(-10*time.Minute), false)...); st.GetCode() != v2.Code_UNAUTHORIZED {
		t.Fatalf("utc, 10 minutes old: %v", st)
	}
	if st := rawCall(t, utc.GRPCAddr, signed("alice", aliceSecret, time.Now().UTC(), false)...); st.GetCode() != v2.Code_OK {
		t.Fatalf("utc, now: %v", st)
	}
}

// TestPolicyChangeReachesRunningProxies is "must be shown" 3: a change
// made with the CLI against PostgreSQL takes effect in two running proxies
// without restart.
func TestPolicyChangeReachesRunningProxies(t *testing.T) {
	s := newSecured(t)
	proxies := []*testenv.Child{s.start(t), s.start(t)}
	var producers []rmq.Producer
	eu, payments := testenv.Name(t, "orders-policy"), testenv.Name(t, "payments-policy")
	for _, c := range proxies {
		createTopics(t, c, eu, payments)
		p, err := startProducer(t, clientConfig(c, "alice", aliceSecret, ""), eu)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, "before the grant", send(p, payments), "FORBIDDEN")
		producers = append(producers, p)
	}
	pgflags := []string{"--postgres.dsn=" + s.dsn, "--postgres.secretKeys=" + s.keys}
	if code, out := testenv.CLI(t, append([]string{"acl", "create", "User:alice", "--resource", "Topic:" + payments, "--actions", "Pub", "--decision", "Allow"}, pgflags...)...); code != 0 {
		t.Fatalf("acl create: %s", out)
	}
	for i, p := range producers {
		testenv.WaitFor(t, 5*time.Second, func() error { return send(p, payments) })
		t.Logf("proxy %d applies the grant", i)
	}
	if code, out := testenv.CLI(t, append([]string{"acl", "delete", "User:alice", "--resource", "Topic:" + payments}, pgflags...)...); code != 0 {
		t.Fatalf("acl delete: %s", out)
	}
	for _, p := range producers {
		testenv.WaitFor(t, 5*time.Second, func() error {
			if err := send(p, payments); err == nil || !strings.Contains(err.Error(), "FORBIDDEN") {
				return fmt.Errorf("still allowed: %v", err)
			}
			return nil
		})
	}
}

// TestPostgresOutageDuringTraffic is "must be shown" 3, second half:
// PostgreSQL stopped and restarted while clients work. The proxy keeps
// serving with the last policy (allowed stays allowed, denied stays
// denied), reports itself degraded, buffers audit events and counts those
// that do not fit, and recovers by itself: the audit log then holds every
// event that was buffered plus one audit.dropped event counting the rest,
// so buffered + dropped equals what happened.
func TestPostgresOutageDuringTraffic(t *testing.T) {
	srv := pgenv.StartServer(t)
	dsn := pgenv.NewDatabase(t, srv.DSN)
	pgenv.Migrate(t, dsn)
	s := newSecuredOn(t, dsn)
	// Coalescing off: each denial is an event, so that they overflow.
	// Refusals fill at most three quarters of the buffer.
	const buffer, room = 20, 20 - 20/4
	c := s.start(t, "--postgres.reconnectDelay=100ms", fmt.Sprintf("--postgres.audit.bufferSize=%d", buffer), "--postgres.audit.batchSize=5",
		"--auth.auditCoalesce.window=0")
	eu, payments := testenv.Name(t, "orders-outage"), testenv.Name(t, "payments-outage")
	createTopics(t, c, eu, payments)
	alice, err := startProducer(t, clientConfig(c, "alice", aliceSecret, ""), eu)
	if err != nil {
		t.Fatal(err)
	}
	if got := checkReadiness(t, c.HealthAddr, "security").state; got != "ready" {
		t.Fatalf("readyz before the outage: %s", got)
	}
	// The audit metrics: nothing dropped, the buffer empty once the admin
	// calls' events are written.
	var m0 map[string]*dto.MetricFamily
	testenv.WaitFor(t, 10*time.Second, func() error {
		m0 = scrapeAt(t, c.HealthAddr)
		if b := metricValue(m0, "rmqproxy_audit_buffered_events", nil); b != 0 {
			return fmt.Errorf("%v audit events buffered", b)
		}
		return nil
	})
	if capacity, dropped := metricValue(m0, "rmqproxy_audit_buffer_capacity", nil), metricValue(m0, "rmqproxy_audit_dropped_total", nil); capacity != buffer || dropped != 0 {
		t.Fatalf("before the outage: audit buffer capacity %v (want %d), %v dropped (want 0)", capacity, buffer, dropped)
	}
	written0 := metricValue(m0, "rmqproxy_audit_events_total", nil)

	srv.Stop(t)
	testenv.WaitFor(t, 10*time.Second, func() error {
		if got := checkReadiness(t, c.HealthAddr, "security").state; got != "degraded" {
			return fmt.Errorf("readyz %s", got)
		}
		return nil
	})
	// Traffic during the outage: the last policy holds.
	for i := range 5 {
		if err := send(alice, eu); err != nil {
			t.Fatalf("allowed send %d during the outage: %v", i, err)
		}
	}
	const denials = 3 * buffer
	for range denials {
		// carol may use orders-* only from 10.0.0.0/8.
		if st := rawCall(t, c.GRPCAddr, signed("carol", carolSecret, time.Now().UTC(), false)...); st.GetCode() != v2.Code_FORBIDDEN {
			t.Fatalf("denied request during the outage: %v", st)
		}
	}

	// The writer holds one batch (1 to batchSize events) and retries it;
	// the refusals' part of the buffer is full; everything else was
	// dropped and counted.
	m1 := scrapeAt(t, c.HealthAddr)
	if b := metricValue(m1, "rmqproxy_audit_buffered_events", nil); b != room {
		t.Fatalf("during the outage: %v audit events buffered, want %d (all refusals may take)", b, room)
	}
	dropped1 := metricValue(m1, "rmqproxy_audit_dropped_total", nil)
	if dropped1 < denials-room-5 || dropped1 > denials-room-1 {
		t.Fatalf("during the outage: %v audit events dropped, want %d..%d", dropped1, denials-room-5, denials-room-1)
	}
	if w := metricValue(m1, "rmqproxy_audit_events_total", nil); w != written0 {
		t.Fatalf("during the outage: %v audit events written, want %v (none since the outage began)", w, written0)
	}

	srv.Start(t)
	testenv.WaitFor(t, 30*time.Second, func() error {
		if got := checkReadiness(t, c.HealthAddr, "security").state; got != "ready" {
			return fmt.Errorf("readyz %s", got)
		}
		return nil
	})
	// Every denial is either in the audit log or counted as dropped.
	testenv.WaitFor(t, 30*time.Second, func() error {
		evs, err := s.store.QueryAudit(t.Context(), domain.AuditQuery{Limit: 10000})
		if err != nil {
			return err
		}
		logged, dropped := 0, 0
		for _, e := range evs {
			switch {
			case e.Category == domain.AuditAuthz && e.Principal == "carol" && e.Operation == "QueryRoute":
				logged++
			case e.Operation == "audit.dropped":
				var d struct {
					Dropped int `json:"dropped"`
				}
				if err := json.Unmarshal([]byte(e.Details), &d); err != nil {
					return err
				}
				dropped += d.Dropped
			}
		}
		if dropped == 0 || logged+dropped < denials {
			return fmt.Errorf("%d denials logged, %d events counted as dropped; %d denials happened", logged, dropped, denials)
		}
		t.Logf("%d denials during the outage: %d in the audit log, %d counted as dropped", denials, logged, dropped)
		// The metrics agree exactly with the log: the drops counted, and
		// every logged denial plus the one audit.dropped event written.
		m2 := scrapeAt(t, c.HealthAddr)
		if d := metricValue(m2, "rmqproxy_audit_dropped_total", nil); d != float64(dropped) || d != dropped1 {
			return fmt.Errorf("rmqproxy_audit_dropped_total %v, the log counts %d, %v during the outage", d, dropped, dropped1)
		}
		if w := metricValue(m2, "rmqproxy_audit_events_total", nil) - written0; w != float64(logged+1) {
			return fmt.Errorf("rmqproxy_audit_events_total moved by %v, want %d (%d denials and one audit.dropped event)", w, logged+1, logged)
		}
		if b := metricValue(m2, "rmqproxy_audit_buffered_events", nil); b != 0 {
			return fmt.Errorf("%v audit events still buffered", b)
		}
		return nil
	})
	// The policy follows changes again.
	s.put(t, aclEntry(t, "User:alice", "Topic:"+payments, "Pub", "Allow"))
	testenv.WaitFor(t, 10*time.Second, func() error { return send(alice, payments) })
}
