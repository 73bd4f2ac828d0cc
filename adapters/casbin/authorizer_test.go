package casbin_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/casbin"
	"github.com/rmqproxy/rmqproxy/domain"
)

var names = []string{"orders", "orders-eu", "orders-us", "ord", "payments", "a.b", "a*", "名前", "%RETRY%g1", "g1", "x"}

// randomEntries builds n entries for subject with a mix of types,
// patterns, actions, decisions, policy types and source restrictions.
func randomEntries(r *rand.Rand, subject string, n int, firstID int64) []domain.ACLEntry {
	seen := map[string]bool{}
	var out []domain.ACLEntry
	for len(out) < n {
		var res domain.Resource
		switch r.IntN(10) {
		case 0:
			res = domain.Resource{Type: domain.ResourceAny, Pattern: domain.PatternAny}
		case 1:
			res = domain.Resource{Type: domain.ResourceTopic, Pattern: domain.PatternAny}
		case 2:
			res = domain.Resource{Type: domain.ResourceGroup, Pattern: domain.PatternAny}
		case 3, 4:
			n := names[r.IntN(len(names))]
			res = domain.Resource{Type: domain.ResourceTopic, Pattern: domain.PatternPrefixed, Name: n[:1+r.IntN(len(n))]}
		default:
			typ := domain.ResourceTopic
			if r.IntN(3) == 0 {
				typ = domain.ResourceGroup
			}
			res = domain.Resource{Type: typ, Name: names[r.IntN(len(names))]}
		}
		if res.Name == "*" || (res.Pattern == domain.PatternPrefixed && res.Name[len(res.Name)-1] == '*') {
			continue
		}
		if err := (domain.ACLEntry{Subject: subject, Resource: res, Actions: domain.ActionAll}).Validate(); err != nil {
			continue
		}
		ptype := domain.PolicyCustom
		if r.IntN(4) == 0 {
			ptype = domain.PolicyDefault
		}
		key := ptype.String() + res.Key()
		if seen[key] {
			continue
		}
		seen[key] = true
		acts := domain.Action(1 + r.IntN(int(domain.ActionAll)))
		if r.IntN(5) == 0 {
			acts = domain.ActionAll
		}
		e := domain.ACLEntry{ID: firstID + int64(len(out)), Subject: subject, PolicyType: ptype, Resource: res, Actions: acts, Decision: domain.Decision(r.IntN(2))}
		switch r.IntN(4) {
		case 0:
			e.SourceIPs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		case 1:
			e.SourceIPs = []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("::1/128")}
		}
		out = append(out, e)
	}
	return out
}

func randomRequest(r *rand.Rand) domain.AccessRequest {
	typ := domain.ResourceTopic
	if r.IntN(3) == 0 {
		typ = domain.ResourceGroup
	}
	ips := []netip.Addr{{}, netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.168.1.7"), netip.MustParseAddr("::1"), netip.MustParseAddr("::ffff:10.9.9.9"), netip.MustParseAddr("8.8.8.8")}
	acts := domain.Action(1 << r.IntN(7))
	if r.IntN(4) == 0 {
		acts |= domain.Action(1 << r.IntN(7))
	}
	if r.IntN(20) == 0 {
		acts = domain.ActionAny
	}
	return domain.AccessRequest{Resource: domain.Resource{Type: typ, Name: names[r.IntN(len(names))]}, Actions: acts, SourceIP: ips[r.IntN(len(ips))]}
}

// TestAgreesWithReferenceSemantics compares casbin's decisions with
// domain.EvaluateACL on generated policies, in both conflict modes, with
// and without the cache.
func TestAgreesWithReferenceSemantics(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, mode := range []domain.ConflictMode{domain.DenyOverrides, domain.MostSpecific} {
		for round := range 15 {
			var all []domain.ACLEntry
			for s := range 3 {
				n := 1 + r.IntN(12)
				if s == 2 {
					// Above matchSetThreshold: decided by enforcers of the
					// entries matching each request.
					n = 33 + r.IntN(40)
				}
				all = append(all, randomEntries(r, fmt.Sprintf("User:u%d", s), n, int64(len(all)+1))...)
			}
			for _, cacheSize := range []int{0, 1000} {
				pol, err := casbin.NewCompiler(mode, cacheSize).Compile(all)
				if err != nil {
					t.Fatal(err)
				}
				for range 400 {
					subject := fmt.Sprintf("User:u%d", r.IntN(4))
					req := randomRequest(r)
					var mine []domain.ACLEntry
					for _, e := range all {
						if e.Subject == subject {
							mine = append(mine, e)
						}
					}
					want := domain.EvaluateACL(mine, req, mode)
					got := pol.Decide(subject, req)
					if got.Allowed != want.Allowed || got.EntryID != want.EntryID {
						t.Fatalf("%v round %d: %s %+v: casbin %+v, reference %+v\nentries %+v", mode, round, subject, req, got, want, mine)
					}
				}
			}
		}
	}
}

// TestTable runs the ACL 2.0 cases that matter most by name.
func TestTable(t *testing.T) {
	ent := func(id int64, res string, acts domain.Action, d domain.Decision, ips ...string) domain.ACLEntry {
		rr, err := domain.ParseResource(res)
		if err != nil {
			t.Fatal(err)
		}
		e := domain.ACLEntry{ID: id, Subject: "User:alice", Resource: rr, Actions: acts, Decision: d}
		for _, ip := range ips {
			p, _ := domain.ParseSourceIP(ip)
			e.SourceIPs = append(e.SourceIPs, p)
		}
		return e
	}
	entries := []domain.ACLEntry{
		ent(1, "Topic:orders-*", domain.ActionPub|domain.ActionSub, domain.Allow),
		ent(2, "Topic:orders-secret", domain.ActionAll, domain.Deny),
		ent(3, "Topic:internal-*", domain.ActionPub, domain.Deny),
		ent(4, "Topic:internal-ok", domain.ActionPub, domain.Allow),
		ent(5, "Group:g-*", domain.ActionSub, domain.Allow, "10.0.0.0/8"),
	}
	ip := netip.MustParseAddr("10.0.0.1")
	for _, c := range []struct {
		res            domain.Resource
		act            domain.Action
		src            netip.Addr
		strict, parity bool
	}{
		{domain.TopicResource("orders-eu"), domain.ActionPub, ip, true, true},
		{domain.TopicResource("orders-secret"), domain.ActionSub, ip, false, false},
		{domain.TopicResource("internal-ok"), domain.ActionPub, ip, false, true}, // the modes differ here
		{domain.TopicResource("payments"), domain.ActionPub, ip, false, false},
		{domain.GroupResource("g-1"), domain.ActionSub, ip, true, true},
		{domain.GroupResource("g-1"), domain.ActionSub, netip.MustParseAddr("172.16.0.1"), false, false},
		{domain.GroupResource("g-1"), domain.ActionSub, netip.Addr{}, false, false},
	} {
		for _, m := range []struct {
			mode domain.ConflictMode
			want bool
		}{{domain.DenyOverrides, c.strict}, {domain.MostSpecific, c.parity}} {
			pol, err := casbin.NewCompiler(m.mode, 100).Compile(entries)
			if err != nil {
				t.Fatal(err)
			}
			if got := pol.Decide("User:alice", domain.AccessRequest{Resource: c.res, Actions: c.act, SourceIP: c.src}); got.Allowed != m.want {
				t.Errorf("%v %s %v from %v: %+v, want allowed %v", m.mode, c.res.Key(), c.act, c.src, got, m.want)
			}
		}
	}
	pol, _ := casbin.NewCompiler(domain.DenyOverrides, 0).Compile(entries)
	if d := pol.Decide("User:bob", domain.AccessRequest{Resource: domain.TopicResource("orders-eu"), Actions: domain.ActionPub}); d.Allowed || d.Reason != domain.ReasonNoMatch {
		t.Errorf("subject without entries: %+v", d)
	}
}

func TestCompileRefusesInvalidEntries(t *testing.T) {
	bad := domain.ACLEntry{ID: 9, Subject: "User:a", Resource: domain.Resource{Type: domain.ResourceTopic, Name: "a*b"}, Actions: domain.ActionPub}
	if _, err := casbin.NewCompiler(domain.DenyOverrides, 0).Compile([]domain.ACLEntry{bad}); err == nil {
		t.Fatal("compiled an entry with * inside its name")
	}
}

func TestAdapterIsReadOnly(t *testing.T) {
	a := casbin.NewAdapter(nil, domain.DenyOverrides)
	for _, err := range []error{a.SavePolicy(nil), a.AddPolicy("p", "p", nil), a.RemovePolicy("p", "p", nil), a.RemoveFilteredPolicy("p", "p", 0)} {
		if err != casbin.ErrReadOnly {
			t.Errorf("write returned %v", err)
		}
	}
}

// TestConcurrentDecisions: many goroutines decide on one policy while
// others compile new ones (run with -race).
func TestConcurrentDecisions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	entries := randomEntries(r, "User:u0", 30, 1)
	comp := casbin.NewCompiler(domain.DenyOverrides, 64)
	pol, err := comp.Compile(entries)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rr := rand.New(rand.NewPCG(uint64(g), 9))
			for range 300 {
				req := randomRequest(rr)
				got := pol.Decide("User:u0", req)
				want := domain.EvaluateACL(entries, req, domain.DenyOverrides)
				if got.Allowed != want.Allowed || got.EntryID != want.EntryID {
					t.Errorf("%+v: %+v want %+v", req, got, want)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := comp.Compile(entries); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
}

func benchPolicy(b *testing.B, perSubject int, cache int) (*casbin.Policy, []domain.AccessRequest) {
	r := rand.New(rand.NewPCG(5, 6))
	var entries []domain.ACLEntry
	for i := range perSubject {
		entries = append(entries, domain.ACLEntry{ID: int64(i + 1), Subject: "User:bench", Resource: domain.Resource{Type: domain.ResourceTopic, Name: fmt.Sprintf("topic-%04d", i)},
			Actions: domain.ActionPub | domain.ActionSub, Decision: domain.Allow})
	}
	entries = append(entries, domain.ACLEntry{ID: int64(perSubject + 1), Subject: "User:bench", Resource: domain.Resource{Type: domain.ResourceTopic, Pattern: domain.PatternPrefixed, Name: "topic-"}, Actions: domain.ActionAll, Decision: domain.Deny, SourceIPs: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}})
	pol, err := casbin.NewCompiler(domain.DenyOverrides, cache).Compile(entries)
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]domain.AccessRequest, 64)
	for i := range reqs {
		reqs[i] = domain.AccessRequest{Resource: domain.TopicResource(fmt.Sprintf("topic-%04d", r.IntN(perSubject))), Actions: domain.ActionPub, SourceIP: netip.MustParseAddr("10.0.0.1")}
	}
	return pol.(*casbin.Policy), reqs
}

// BenchmarkDecide measures one authorization decision with 10, 100 and
// 1000 entries for the subject, through the cache (warm) and without it.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("entries=%d/cached", n), func(b *testing.B) {
			pol, reqs := benchPolicy(b, n, 100000)
			for _, r := range reqs {
				pol.Decide("User:bench", r)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if !pol.Decide("User:bench", reqs[i%len(reqs)]).Allowed {
					b.Fatal("denied")
				}
				i++
			}
		})
		// A resource none of the subject's entries covers (a name outside
		// its patterns): decided before the enforcer runs.
		benchUncachedNames(b, n, "unmatched", "other-%04d", func(d domain.AccessDecision) bool {
			return !d.Allowed && d.Reason == domain.ReasonNoMatch
		})
		// Names no literal entry has, inside the subject's prefix pattern
		// (what a client can make up): casbin runs on the entries that
		// match, not on all of them.
		benchUncachedNames(b, n, "prefix-only", "topic-x%d", func(d domain.AccessDecision) bool { return !d.Allowed })
		b.Run(fmt.Sprintf("entries=%d/uncached", n), func(b *testing.B) {
			pol, reqs := benchPolicy(b, n, 0)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if !pol.DecideUncached("User:bench", reqs[i%len(reqs)]).Allowed {
					b.Fatal("denied")
				}
				i++
			}
		})
	}
}

// benchUncachedNames measures uncached decisions of n entries for requests
// whose topic names follow format (with the request's index), each
// decision checked by want.
func benchUncachedNames(b *testing.B, n int, name, format string, want func(domain.AccessDecision) bool) {
	b.Run(fmt.Sprintf("entries=%d/uncached/%s", n, name), func(b *testing.B) {
		pol, reqs := benchPolicy(b, n, 0)
		for i := range reqs {
			reqs[i].Resource = domain.TopicResource(fmt.Sprintf(format, i))
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if d := pol.DecideUncached("User:bench", reqs[i%len(reqs)]); !want(d) {
				b.Fatal(d)
			}
			i++
		}
	})
}

// TestLongNamesAreNotCached: a request names whatever resource its client
// writes (up to the gRPC message size), and every decision was cached
// under a key holding the whole name, so a user without any grant could
// make the cache hold about cacheSize times the names it sent. A name
// longer than any entry can name is still decided, never cached.
func TestLongNamesAreNotCached(t *testing.T) {
	prefix, _ := domain.ParseResource("Topic:orders-*")
	c := casbin.NewCompiler(domain.DenyOverrides, 1000)
	pol, err := c.Compile([]domain.ACLEntry{{ID: 1, Subject: "User:u", Resource: prefix, Actions: domain.ActionPub, Decision: domain.Allow}})
	if err != nil {
		t.Fatal(err)
	}
	long := domain.TopicResource("orders-" + strings.Repeat("x", 1<<20))
	for range 2 {
		if d := pol.Decide("User:u", domain.AccessRequest{Resource: long, Actions: domain.ActionPub}); !d.Allowed || d.EntryID != 1 {
			t.Fatalf("long name inside the prefix: %+v", d)
		}
		if d := pol.Decide("User:other", domain.AccessRequest{Resource: long, Actions: domain.ActionPub}); d.Allowed {
			t.Fatalf("user without entries: %+v", d)
		}
	}
	if hits := c.Stats().Hits.Load(); hits != 0 {
		t.Fatalf("%d decisions on a 1 MiB name came from the cache: it holds them", hits)
	}
	short := domain.AccessRequest{Resource: domain.TopicResource("orders-1"), Actions: domain.ActionPub}
	pol.Decide("User:u", short)
	if d := pol.Decide("User:u", short); !d.Allowed || c.Stats().Hits.Load() != 1 {
		t.Fatalf("a usual name is cached: %+v, hits %d", d, c.Stats().Hits.Load())
	}
}
