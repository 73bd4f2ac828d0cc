package casbin

import (
	_ "embed"
	"fmt"
	"hash/maphash"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	casbinv2 "github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

//go:embed model.conf
var modelText string

// Compiler builds casbin policies (ports.PolicyCompiler).
type Compiler struct {
	mode      domain.ConflictMode
	cacheSize int
	stats     *Stats
}

// Stats counts decisions of every policy a compiler built.
type Stats struct {
	Hits, Misses atomic.Uint64
}

var _ ports.PolicyCompiler = (*Compiler)(nil)

// NewCompiler returns a compiler for mode whose policies cache up to
// cacheSize decisions each (0: no cache).
func NewCompiler(mode domain.ConflictMode, cacheSize int) *Compiler {
	return &Compiler{mode: mode, cacheSize: cacheSize, stats: &Stats{}}
}

// Stats returns the decision counters.
func (c *Compiler) Stats() *Stats { return c.stats }

// Compile implements ports.PolicyCompiler: it validates every entry (a
// snapshot with an invalid entry is refused whole) and builds one enforcer
// per subject, or, for a subject with more than [matchSetThreshold]
// entries, one per set of its resources that requests match, on first use.
func (c *Compiler) Compile(entries []domain.ACLEntry) (ports.Policy, error) {
	proto, err := model.NewModelFromString(modelText)
	if err != nil {
		return nil, err
	}
	p := &Policy{subjects: map[string]*subjectPolicy{}, resources: map[string]domain.Resource{}, ips: map[string][]netip.Prefix{},
		stats: c.stats, mode: c.mode, proto: proto}
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("ACL entry %d: %w", e.ID, err)
		}
		sp := p.subjects[e.Subject]
		if sp == nil {
			sp = &subjectPolicy{byKey: map[string][]domain.ACLEntry{}}
			p.subjects[e.Subject] = sp
		}
		key := e.Resource.Key()
		p.resources[key] = e.Resource
		if _, seen := sp.byKey[key]; !seen {
			sp.keys = append(sp.keys, key)
			sp.keyResources = append(sp.keyResources, e.Resource)
		}
		sp.byKey[key] = append(sp.byKey[key], e)
		sp.entries = append(sp.entries, e)
		p.ips[ipsText(e)] = e.SourceIPs
	}
	for subject, sp := range p.subjects {
		if len(sp.entries) > matchSetThreshold {
			sp.bySet = true
			if p.sets == nil {
				p.sets = &enforcerSets{limit: matchSetCacheSize, m: map[string]*casbinv2.Enforcer{}}
			}
			continue
		}
		enf, err := p.enforcer(sp.entries)
		if err != nil {
			return nil, fmt.Errorf("load the entries of %s: %w", subject, err)
		}
		sp.all = enf
	}
	if c.cacheSize > 0 {
		p.cache = newCache(c.cacheSize)
	}
	return p, nil
}

// matchSetThreshold is the number of entries above which a subject's
// requests are decided by an enforcer holding only the entries whose
// resource matches the request: casbin evaluates its matcher on every
// entry of an enforcer (milliseconds at a thousand), while the entries one
// request matches are few.
const matchSetThreshold = 32

// matchSetCacheSize bounds the enforcers one policy keeps per subject and
// set of matched resources, all subjects together: about 10 KB each with
// a few entries, so ~10 MB at most (a full cache is emptied).
const matchSetCacheSize = 1024

// enforcer returns a casbin enforcer over entries (all of one subject).
func (p *Policy) enforcer(entries []domain.ACLEntry) (*casbinv2.Enforcer, error) {
	enf, err := casbinv2.NewEnforcer(p.proto.Copy())
	if err != nil {
		return nil, err
	}
	enf.EnableAutoSave(false)
	enf.SetAdapter(NewAdapter(entries, p.mode))
	enf.AddFunction("resMatch", p.resMatch)
	enf.AddFunction("actMatch", actMatch)
	enf.AddFunction("ipAllowed", p.ipAllowed)
	if err := enf.LoadPolicy(); err != nil {
		return nil, err
	}
	return enf, nil
}

// Policy is a compiled, immutable policy (ports.Policy).
type Policy struct {
	subjects map[string]*subjectPolicy
	// resources and ips hold the parsed forms of every p.res and p.ips
	// string, built before the policy is used and only read afterwards.
	resources map[string]domain.Resource
	ips       map[string][]netip.Prefix
	cache     *cache
	stats     *Stats
	mode      domain.ConflictMode
	proto     model.Model // the parsed model, copied for every enforcer
	// sets holds the enforcers of subjects decided by matching set.
	sets *enforcerSets
}

// subjectPolicy holds one subject's entries.
type subjectPolicy struct {
	entries []domain.ACLEntry
	// keys are the distinct resource keys of the entries (keyResources
	// their parsed forms) and byKey the entries of each: a request none
	// of them covers is decided (no match, denied) without an enforcer.
	keys         []string
	keyResources []domain.Resource
	byKey        map[string][]domain.ACLEntry
	// all is the enforcer of every entry (small subjects); a subject above
	// matchSetThreshold (bySet) is decided by an enforcer per set of
	// matched keys, kept in Policy.sets.
	all   *casbinv2.Enforcer
	bySet bool
}

// enforcerSets caches enforcers by the set of resource keys they hold.
type enforcerSets struct {
	mu    sync.Mutex
	limit int
	m     map[string]*casbinv2.Enforcer
}

// Decide implements ports.Policy. Requests naming a resource longer than
// any an entry names (domain.MaxResourceName) are decided but not cached:
// they are bad requests (no topic or group is that long), and a cache of
// keys of any length lets a client hold as much memory as it sends.
func (p *Policy) Decide(subject string, req domain.AccessRequest) domain.AccessDecision {
	var key string
	cached := p.cache != nil && len(req.Resource.Name) <= domain.MaxResourceName
	if cached {
		key = cacheKey(subject, req)
		if d, ok := p.cache.get(key); ok {
			p.stats.Hits.Add(1)
			return d
		}
		p.stats.Misses.Add(1)
	}
	d := p.decide(subject, req)
	if cached {
		p.cache.put(key, d)
	}
	return d
}

// DecideUncached decides without the cache (benchmarks).
func (p *Policy) DecideUncached(subject string, req domain.AccessRequest) domain.AccessDecision {
	return p.decide(subject, req)
}

func (p *Policy) decide(subject string, req domain.AccessRequest) domain.AccessDecision {
	sp, ok := p.subjects[subject]
	if !ok {
		return domain.AccessDecision{Reason: domain.ReasonNoMatch}
	}
	key := req.Resource.Key()
	rr, ok := requestResource(key)
	if !ok {
		return domain.AccessDecision{Reason: domain.ReasonNoMatch}
	}
	enf, err := p.enforcerFor(subject, sp, rr)
	if err != nil {
		// Fail closed; the entries were validated, so this is a bug.
		return domain.AccessDecision{Reason: "authorizer_error: " + err.Error()}
	}
	if enf == nil {
		// What the enforcer answers too: no entry matches.
		return domain.AccessDecision{Reason: domain.ReasonNoMatch}
	}
	ip := ""
	if req.SourceIP.IsValid() {
		ip = req.SourceIP.Unmap().String()
	}
	allowed, explain, err := enf.EnforceEx(subject, key, strconv.FormatUint(uint64(req.Actions), 10), ip)
	if err != nil {
		return domain.AccessDecision{Reason: "authorizer_error: " + err.Error()}
	}
	if len(explain) < 7 {
		return domain.AccessDecision{Reason: domain.ReasonNoMatch}
	}
	id, _ := strconv.ParseInt(explain[6], 10, 64)
	return domain.AccessDecision{Allowed: allowed, EntryID: id, Reason: "entry:" + explain[6]}
}

// enforcerFor returns the enforcer that decides a request for res: nil
// when no entry of the subject covers res; the subject's enforcer when it
// has few entries; otherwise one holding only the entries of the keys
// that cover res, which has the same first match (the adapter ranks them
// by priority, then id, as it ranks all of them).
func (p *Policy) enforcerFor(subject string, sp *subjectPolicy, res domain.Resource) (*casbinv2.Enforcer, error) {
	var matched []int
	for i := range sp.keyResources {
		if sp.keyResources[i].Matches(res) {
			matched = append(matched, i)
		}
	}
	if matched == nil {
		return nil, nil
	}
	if !sp.bySet {
		return sp.all, nil
	}
	var id strings.Builder
	id.WriteString(subject)
	id.WriteByte(0)
	for _, i := range matched {
		id.WriteString(strconv.Itoa(i))
		id.WriteByte(' ')
	}
	sets := p.sets
	sets.mu.Lock()
	enf := sets.m[id.String()]
	sets.mu.Unlock()
	if enf != nil {
		return enf, nil
	}
	var entries []domain.ACLEntry
	for _, i := range matched {
		entries = append(entries, sp.byKey[sp.keys[i]]...)
	}
	enf, err := p.enforcer(entries)
	if err != nil {
		return nil, err
	}
	sets.mu.Lock()
	if len(sets.m) >= sets.limit {
		clear(sets.m)
	}
	sets.m[id.String()] = enf
	sets.mu.Unlock()
	return enf, nil
}

// resMatch(r.res, p.res): does the entry's resource cover the request's?
func (p *Policy) resMatch(args ...interface{}) (interface{}, error) {
	rres, _ := args[0].(string)
	pres, _ := args[1].(string)
	return p.matchKey(rres, pres), nil
}

// matchKey reports whether the entry resource key pres covers the request
// resource key rres.
func (p *Policy) matchKey(rres, pres string) bool {
	entry, ok := p.resources[pres]
	if !ok {
		return false
	}
	req, ok := requestResource(rres)
	return ok && entry.Matches(req)
}

// requestResource parses a request's resource key (TYPE:NAME, literal).
func requestResource(key string) (domain.Resource, bool) {
	typ, name, ok := strings.Cut(key, ":")
	if !ok {
		return domain.Resource{}, false
	}
	t, ok := domain.ParseResourceType(typ)
	if !ok {
		return domain.Resource{}, false
	}
	return domain.Resource{Type: t, Name: name}, true
}

// actMatch(r.act, p.act): do the entry's actions cover any requested one?
func actMatch(args ...interface{}) (interface{}, error) {
	ra, _ := args[0].(string)
	pa, _ := args[1].(string)
	r, err1 := strconv.ParseUint(ra, 10, 16)
	a, err2 := strconv.ParseUint(pa, 10, 16)
	if err1 != nil || err2 != nil {
		return false, nil
	}
	return domain.Action(a).Covers(domain.Action(r)), nil
}

// ipAllowed(r.ip, p.ips): is the request's address in the entry's list
// (any address when the list is empty; never a request without address)?
func (p *Policy) ipAllowed(args ...interface{}) (interface{}, error) {
	rip, _ := args[0].(string)
	pips, _ := args[1].(string)
	if pips == "" {
		return true, nil
	}
	if rip == "" {
		return false, nil
	}
	ip, err := netip.ParseAddr(rip)
	if err != nil {
		return false, nil
	}
	return domain.ACLEntry{SourceIPs: p.ips[pips]}.MatchesSource(ip), nil
}

func cacheKey(subject string, req domain.AccessRequest) string {
	var b strings.Builder
	b.Grow(len(subject) + len(req.Resource.Name) + 40)
	b.WriteString(subject)
	b.WriteByte(0)
	b.WriteString(req.Resource.Type.String())
	b.WriteByte(0)
	b.WriteString(req.Resource.Name)
	b.WriteByte(0)
	b.WriteString(strconv.FormatUint(uint64(req.Actions), 10))
	b.WriteByte(0)
	if req.SourceIP.IsValid() {
		b.WriteString(req.SourceIP.Unmap().String())
	}
	return b.String()
}

// cache is a bounded decision cache in shards; a full shard is emptied
// (decisions are cheap to recompute, and a bound matters more than LRU
// order).
type cache struct {
	seed   maphash.Seed
	shards [16]cacheShard
	limit  int // per shard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]domain.AccessDecision
}

func newCache(size int) *cache {
	c := &cache{seed: maphash.MakeSeed(), limit: max(1, size/16)}
	for i := range c.shards {
		c.shards[i].m = map[string]domain.AccessDecision{}
	}
	return c
}

func (c *cache) shard(key string) *cacheShard {
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

func (c *cache) get(key string) (domain.AccessDecision, bool) {
	s := c.shard(key)
	s.mu.RLock()
	d, ok := s.m[key]
	s.mu.RUnlock()
	return d, ok
}

func (c *cache) put(key string, d domain.AccessDecision) {
	s := c.shard(key)
	s.mu.Lock()
	if len(s.m) >= c.limit {
		clear(s.m)
	}
	s.m[key] = d
	s.mu.Unlock()
}
