package domain_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

func TestParseResource(t *testing.T) {
	cases := []struct {
		key  string
		want domain.Resource
		err  bool
	}{
		{"*", domain.Resource{Type: domain.ResourceAny, Pattern: domain.PatternAny}, false},
		{"Topic:*", domain.Resource{Type: domain.ResourceTopic, Pattern: domain.PatternAny}, false},
		{"topic:orders-*", domain.Resource{Type: domain.ResourceTopic, Pattern: domain.PatternPrefixed, Name: "orders-"}, false},
		{"Group:G1", domain.Resource{Type: domain.ResourceGroup, Name: "G1"}, false},
		{"Cluster:DefaultCluster", domain.Resource{Type: domain.ResourceCluster, Name: "DefaultCluster"}, false},
		{"Namespace:ns1*", domain.Resource{Type: domain.ResourceNamespace, Pattern: domain.PatternPrefixed, Name: "ns1"}, false},
		{"Topic:名前", domain.Resource{Type: domain.ResourceTopic, Name: "名前"}, false},
		{"Topic:a'; DROP TABLE users;--", domain.Resource{Type: domain.ResourceTopic, Name: "a'; DROP TABLE users;--"}, false},
		{"Any:*", domain.Resource{}, true},
		{"Topic:", domain.Resource{}, true},
		{"Topic:a*b", domain.Resource{}, true},
		{"Topic:a**", domain.Resource{}, true},
		{"Topic:**", domain.Resource{}, true},
		{"Queue:x", domain.Resource{}, true},
		{"orders", domain.Resource{}, true},
		{"", domain.Resource{}, true},
		{"Topic:a\x00b", domain.Resource{}, true},
		{"Topic:\xff", domain.Resource{}, true},
		{"Topic:" + strings.Repeat("a", 1024), domain.Resource{}, true},
	}
	for _, c := range cases {
		got, err := domain.ParseResource(c.key)
		if (err != nil) != c.err {
			t.Errorf("ParseResource(%q) error %v, want error %v", c.key, err, c.err)
			continue
		}
		if err != nil {
			if !domain.HasReason(err, domain.ReasonBadRequest) {
				t.Errorf("ParseResource(%q): %v is not a bad request", c.key, err)
			}
			continue
		}
		if got != c.want {
			t.Errorf("ParseResource(%q) = %+v, want %+v", c.key, got, c.want)
		}
		if again, err := domain.ParseResource(got.Key()); err != nil || again != got {
			t.Errorf("%q does not round-trip: %q -> %+v, %v", c.key, got.Key(), again, err)
		}
	}
}

func TestParseActions(t *testing.T) {
	for in, want := range map[string]domain.Action{
		"Pub":           domain.ActionPub,
		"pub,SUB":       domain.ActionPub | domain.ActionSub,
		"PUB|SUB":       domain.ActionPub | domain.ActionSub,
		" Get , List ":  domain.ActionGet | domain.ActionList,
		"All":           domain.ActionAll,
		"Create,Update": domain.ActionCreate | domain.ActionUpdate,
	} {
		got, err := domain.ParseActions(in)
		if err != nil || got != want {
			t.Errorf("ParseActions(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ",", "Any", "Pub,Any", "Publish", "Pub;Sub"} {
		if _, err := domain.ParseActions(bad); err == nil {
			t.Errorf("ParseActions(%q) accepted", bad)
		}
	}
	if s := (domain.ActionSub | domain.ActionPub).String(); s != "Pub,Sub" {
		t.Errorf("String = %q", s)
	}
}

func TestParseSourceIP(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3":            "10.1.2.3/32",
		"10.1.2.3/8":          "10.0.0.0/8",
		"::1":                 "::1/128",
		"fd00::1/8":           "fd00::/8",
		"::ffff:10.1.2.3":     "10.1.2.3/32",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"0.0.0.0/0":           "0.0.0.0/0",
	} {
		got, err := domain.ParseSourceIP(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseSourceIP(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10.1.*.*", "10.1.2.3/33", "host", "fe80::1%eth0", "::ffff:1.2.3.4/64"} {
		if _, err := domain.ParseSourceIP(bad); err == nil {
			t.Errorf("ParseSourceIP(%q) accepted", bad)
		}
	}
}

func TestValidateUserName(t *testing.T) {
	for _, ok := range []string{"alice", "a", "svc.orders_1@team-a", strings.Repeat("x", 128)} {
		if err := domain.ValidateUserName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".alice", "al ice", "alice'--", "al%ce", "ünï", "a\x00", strings.Repeat("x", 129), "a/b", "a:b"} {
		if err := domain.ValidateUserName(bad); !domain.HasReason(err, domain.ReasonBadRequest) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}

// TestSecretNeverPrints checks every way a secret could be printed.
func TestSecretNeverPrints(t *testing.T) {
	s := domain.Secret("very-secret-value-123")
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "secret", s)
	js, _ := json.Marshal(struct{ S domain.Secret }{s})
	for _, out := range []string{
		fmt.Sprint(s), fmt.Sprintf("%v %s %q %x %X %#v %+v", s, s, s, s, s, s, s), logged.String(), string(js),
		fmt.Sprintf("%v", domain.UserRecord{Secrets: []domain.Secret{s}}),
	} {
		if strings.Contains(out, "very-secret") || strings.Contains(out, "766572792d") {
			t.Errorf("secret printed: %s", out)
		}
	}
}

func entry(id int64, res string, acts domain.Action, d domain.Decision, ips ...string) domain.ACLEntry {
	r, err := domain.ParseResource(res)
	if err != nil {
		panic(err)
	}
	e := domain.ACLEntry{ID: id, Subject: "User:u", Resource: r, Actions: acts, Decision: d}
	for _, ip := range ips {
		p, err := domain.ParseSourceIP(ip)
		if err != nil {
			panic(err)
		}
		e.SourceIPs = append(e.SourceIPs, p)
	}
	return e
}

// TestEvaluateACL is the ACL 2.0 table (docs/security.md §4) in both
// conflict modes.
func TestEvaluateACL(t *testing.T) {
	ip := netip.MustParseAddr("10.1.2.3")
	other := netip.MustParseAddr("192.168.1.1")
	topic := func(n string) domain.Resource { return domain.TopicResource(n) }
	def := func(e domain.ACLEntry) domain.ACLEntry { e.PolicyType = domain.PolicyDefault; return e }
	cases := []struct {
		name     string
		entries  []domain.ACLEntry
		res      domain.Resource
		act      domain.Action
		src      netip.Addr
		strict   int64 // deciding entry in deny_overrides mode (negative: denied by it; 0: no match)
		rocketmq int64 // in rocketmq mode
	}{
		{"no entries", nil, topic("a"), domain.ActionPub, ip, 0, 0},
		{"literal allow", []domain.ACLEntry{entry(1, "Topic:a", domain.ActionPub, domain.Allow)}, topic("a"), domain.ActionPub, ip, 1, 1},
		{"other action", []domain.ACLEntry{entry(1, "Topic:a", domain.ActionPub, domain.Allow)}, topic("a"), domain.ActionSub, ip, 0, 0},
		{"any of the request's actions", []domain.ACLEntry{entry(1, "Topic:a", domain.ActionSub, domain.Allow)}, topic("a"), domain.ActionPub | domain.ActionSub, ip, 1, 1},
		{"All covers", []domain.ACLEntry{entry(1, "Topic:a", domain.ActionAll, domain.Allow)}, topic("a"), domain.ActionDelete, ip, 1, 1},
		{"request Any", []domain.ACLEntry{entry(1, "Topic:a", domain.ActionGet, domain.Allow)}, topic("a"), domain.ActionAny, ip, 1, 1},
		{"other type", []domain.ACLEntry{entry(1, "Group:a", domain.ActionAll, domain.Allow)}, topic("a"), domain.ActionPub, ip, 0, 0},
		{"star", []domain.ACLEntry{entry(1, "*", domain.ActionAll, domain.Allow)}, topic("a"), domain.ActionPub, ip, 1, 1},
		{"prefix", []domain.ACLEntry{entry(1, "Topic:ord*", domain.ActionPub, domain.Allow)}, topic("orders"), domain.ActionPub, ip, 1, 1},
		{"prefix no match", []domain.ACLEntry{entry(1, "Topic:ord*", domain.ActionPub, domain.Allow)}, topic("or"), domain.ActionPub, ip, 0, 0},
		{"prefix is not a glob", []domain.ACLEntry{entry(1, "Topic:a.*", domain.ActionPub, domain.Allow)}, topic("ab"), domain.ActionPub, ip, 0, 0},
		{"longer prefix wins", []domain.ACLEntry{
			entry(1, "Topic:ord*", domain.ActionPub, domain.Deny), entry(2, "Topic:orders-*", domain.ActionPub, domain.Allow),
		}, topic("orders-eu"), domain.ActionPub, ip, -1, 2},
		{"literal allow vs prefix deny", []domain.ACLEntry{
			entry(1, "Topic:orders-*", domain.ActionPub, domain.Deny), entry(2, "Topic:orders-eu", domain.ActionPub, domain.Allow),
		}, topic("orders-eu"), domain.ActionPub, ip, -1, 2},
		{"literal deny vs star allow", []domain.ACLEntry{
			entry(1, "*", domain.ActionAll, domain.Allow), entry(2, "Topic:secret", domain.ActionAll, domain.Deny),
		}, topic("secret"), domain.ActionSub, ip, -2, -2},
		{"typed any before star", []domain.ACLEntry{
			entry(1, "*", domain.ActionAll, domain.Deny), entry(2, "Topic:*", domain.ActionAll, domain.Allow),
		}, topic("x"), domain.ActionPub, ip, -1, 2},
		{"deny on other action does not match", []domain.ACLEntry{
			entry(1, "Topic:*", domain.ActionSub, domain.Deny), entry(2, "Topic:a", domain.ActionPub, domain.Allow),
		}, topic("a"), domain.ActionPub, ip, 2, 2},
		{"ip allowed", []domain.ACLEntry{entry(1, "Topic:a", domain.ActionPub, domain.Allow, "10.0.0.0/8")}, topic("a"), domain.ActionPub, ip, 1, 1},
		{"ip not allowed", []domain.ACLEntry{entry(1, "Topic:a", domain.ActionPub, domain.Allow, "10.0.0.0/8")}, topic("a"), domain.ActionPub, other, 0, 0},
		{"no ip never matches a restricted entry", []domain.ACLEntry{entry(1, "Topic:a", domain.ActionPub, domain.Allow, "0.0.0.0/0")}, topic("a"), domain.ActionPub, netip.Addr{}, 0, 0},
		{"v4-mapped request", []domain.ACLEntry{entry(1, "Topic:a", domain.ActionPub, domain.Allow, "10.1.2.3")}, topic("a"), domain.ActionPub, netip.MustParseAddr("::ffff:10.1.2.3"), 1, 1},
		{"ip-restricted deny", []domain.ACLEntry{
			entry(1, "Topic:*", domain.ActionAll, domain.Allow), entry(2, "Topic:*", domain.ActionAll, domain.Deny, "192.168.0.0/16"),
		}, topic("a"), domain.ActionPub, other, -2, -2},
		{"default only without custom match", []domain.ACLEntry{
			def(entry(1, "Topic:a", domain.ActionPub, domain.Deny)), entry(2, "Topic:*", domain.ActionPub, domain.Allow),
		}, topic("a"), domain.ActionPub, ip, 2, 2},
		{"default applies", []domain.ACLEntry{
			def(entry(1, "Topic:*", domain.ActionPub, domain.Allow)), entry(2, "Topic:b", domain.ActionPub, domain.Deny),
		}, topic("a"), domain.ActionPub, ip, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := domain.AccessRequest{Resource: c.res, Actions: c.act, SourceIP: c.src}
			for _, m := range []struct {
				mode domain.ConflictMode
				want int64
			}{{domain.DenyOverrides, c.strict}, {domain.MostSpecific, c.rocketmq}} {
				got := domain.EvaluateACL(c.entries, req, m.mode)
				id, allowed := m.want, m.want > 0
				if id < 0 {
					id = -id
				}
				if got.Allowed != allowed || got.EntryID != id {
					t.Errorf("%v: got %+v, want entry %d allowed %v", m.mode, got, id, allowed)
				}
			}
		})
	}
}

func TestEntryValidate(t *testing.T) {
	good := entry(0, "Topic:a", domain.ActionPub, domain.Allow, "10.0.0.0/8")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*domain.ACLEntry){
		func(e *domain.ACLEntry) { e.Subject = "alice" },
		func(e *domain.ACLEntry) { e.Subject = "Role:x" },
		func(e *domain.ACLEntry) { e.Actions = 0 },
		func(e *domain.ACLEntry) { e.Actions = domain.ActionAny },
		func(e *domain.ACLEntry) { e.Resource.Name = "" },
		func(e *domain.ACLEntry) { e.Resource = domain.Resource{Type: domain.ResourceAny, Name: "x"} },
		func(e *domain.ACLEntry) { e.SourceIPs = make([]netip.Prefix, 65) },
		func(e *domain.ACLEntry) { e.Description = strings.Repeat("d", 1025) },
		func(e *domain.ACLEntry) { e.Decision = 7 },
	}
	for i, f := range bad {
		e := good
		f(&e)
		if err := e.Validate(); err == nil {
			t.Errorf("case %d accepted: %+v", i, e)
		}
	}
}

func FuzzParseResource(f *testing.F) {
	for _, s := range []string{"*", "Topic:*", "Topic:a*", "Group:g", "topic:a", "Topic:a*b", "x", ":", "Topic:\xff*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		r, err := domain.ParseResource(key)
		if err != nil {
			return
		}
		again, err := domain.ParseResource(r.Key())
		if err != nil || again != r {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", key, r, r.Key(), again, err)
		}
		if r.Type != domain.ResourceAny && r.Pattern != domain.PatternAny && !r.Matches(domain.Resource{Type: r.Type, Name: r.Name}) {
			t.Fatalf("%q does not match its own name", key)
		}
	})
}

func TestParseACLEntry(t *testing.T) {
	e, err := domain.ParseACLEntry("User:alice", "Topic:orders", "Pub,Sub", "Allow", "10.0.0.0/8", "::1")
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject != "User:alice" || e.Resource.Key() != "Topic:orders" || e.Actions != domain.ActionPub|domain.ActionSub || e.Decision != domain.Allow ||
		len(e.SourceIPs) != 2 || e.SourceIPs[1].String() != "::1/128" {
		t.Fatalf("%+v", e)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][4]string{{"Nope:x", "Pub", "Allow", ""}, {"Topic:x", "Fly", "Allow", ""}, {"Topic:x", "Pub", "Maybe", ""}, {"Topic:x", "Pub", "Allow", "10.0.0.999"}} {
		ips := []string{}
		if bad[3] != "" {
			ips = append(ips, bad[3])
		}
		if _, err := domain.ParseACLEntry("User:alice", bad[0], bad[1], bad[2], ips...); err == nil {
			t.Errorf("ParseACLEntry(%q) = nil error", bad)
		}
	}
}

// TestAccessRequestsManyResources: a request may name any number of
// resources (a SendMessage batch gives each message its topic), and its
// accesses are collected before it is even authenticated. Collecting them
// must stay linear: it was quadratic (a linear search per Add), so one
// unauthenticated 130 MiB batch of a million one-message topics kept a
// core busy for most of an hour. Repeated mentions still merge, in order.
func TestAccessRequestsManyResources(t *testing.T) {
	const n = 100_000
	done := make(chan domain.AccessRequests, 1)
	go func() {
		var a domain.AccessRequests
		for i := range n {
			a.AddTopic(fmt.Sprintf("t%d", i), domain.ActionPub)
		}
		for i := range n {
			a.AddTopic(fmt.Sprintf("t%d", i), domain.ActionSub)
		}
		a.AddTopic("%RETRY%g", domain.ActionPub)
		a.Add(domain.GroupResource("g"), domain.ActionGet)
		done <- a
	}()
	var a domain.AccessRequests
	select {
	case a = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("collecting the accesses of %d topics took more than 10s", n)
	}
	if len(a.List) != n+1 {
		t.Fatalf("%d accesses, want %d", len(a.List), n+1)
	}
	for i, r := range a.List[:n] {
		if want := domain.TopicResource(fmt.Sprintf("t%d", i)); r.Resource != want || r.Actions != domain.ActionPub|domain.ActionSub {
			t.Fatalf("access %d: %+v, want %v Pub,Sub", i, r, want)
		}
	}
	if last := a.List[n]; last.Resource != domain.GroupResource("g") || last.Actions != domain.ActionSub|domain.ActionGet {
		t.Fatalf("group access: %+v", last)
	}
}
