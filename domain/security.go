package domain

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"
)

// The security model is RocketMQ's ACL 2.0: users (super or normal,
// enabled or disabled) authenticate with an AccessKey and a secret; ACL
// entries grant or deny actions on resources to subjects, optionally only
// from some source addresses. See docs/security.md.

// UserType is a user's kind. Super users are not subject to ACL entries.
type UserType uint8

// User types, with upstream's names "Normal" and "Super".
const (
	UserNormal UserType = iota
	UserSuper
)

func (t UserType) String() string {
	if t == UserSuper {
		return "Super"
	}
	return "Normal"
}

// ParseUserType reads "Super" or "Normal" in any case, as upstream does.
func ParseUserType(s string) (UserType, error) {
	switch strings.ToLower(s) {
	case "super":
		return UserSuper, nil
	case "normal":
		return UserNormal, nil
	}
	return 0, Errorf(ReasonBadRequest, "user type %q must be Super or Normal", clipName(s))
}

// UserStatus says whether a user may authenticate.
type UserStatus uint8

// User statuses, with upstream's names "enable" and "disable".
const (
	UserEnabled UserStatus = iota
	UserDisabled
)

func (s UserStatus) String() string {
	if s == UserDisabled {
		return "disable"
	}
	return "enable"
}

// ParseUserStatus reads enable/enabled or disable/disabled in any case.
func ParseUserStatus(s string) (UserStatus, error) {
	switch strings.ToLower(s) {
	case "enable", "enabled":
		return UserEnabled, nil
	case "disable", "disabled":
		return UserDisabled, nil
	}
	return 0, Errorf(ReasonBadRequest, "user status %q must be enable or disable", clipName(s))
}

// User is an account that clients authenticate as. Its secret is kept
// apart (see [Secret]) so that a User can be logged and listed.
type User struct {
	Name        string
	Type        UserType
	Status      UserStatus
	Description string
}

// Subject returns the ACL subject of the user, "User:<name>".
func (u User) Subject() string { return SubjectOf(u.Name) }

// SubjectOf returns the ACL subject of a user name.
func SubjectOf(name string) string { return "User:" + name }

// Limits of the security model's names.
const (
	MaxUserNameLength    = 128
	MaxDescriptionLength = 1024
	MaxResourceName      = 1023 // bytes; longer names cannot be granted
	MinSecretLength      = 16
	MaxSecretLength      = 1024
	MaxSourceIPs         = 64 // per ACL entry
)

// ValidateUserName checks a user name (the AccessKey): 1 to 128
// characters from A-Z a-z 0-9 . _ @ -, starting with a letter or digit.
func ValidateUserName(name string) error {
	if name == "" {
		return Errorf(ReasonBadRequest, "user name is empty")
	}
	if len(name) > MaxUserNameLength {
		return Errorf(ReasonBadRequest, "user name is %d bytes, longer than %d", len(name), MaxUserNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '@' || c == '-')
		if !ok {
			return Errorf(ReasonBadRequest, "user name %q has a character other than A-Z a-z 0-9 . _ @ - (or does not start with a letter or digit)", clipName(name))
		}
	}
	return nil
}

// ValidateDescription checks free text stored with users and entries.
func ValidateDescription(s string) error {
	if len(s) > MaxDescriptionLength {
		return Errorf(ReasonBadRequest, "description is %d bytes, longer than %d", len(s), MaxDescriptionLength)
	}
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return Errorf(ReasonBadRequest, "description is not valid UTF-8 text (or contains NUL)")
	}
	return nil
}

// Secret is a user's secret key. It never prints itself: fmt, slog and
// JSON show REDACTED.
type Secret []byte

func (s Secret) String() string {
	if len(s) == 0 {
		return ""
	}
	return "REDACTED"
}

// GoString keeps %#v from printing the bytes.
func (s Secret) GoString() string { return `domain.Secret("` + s.String() + `")` }

// Format covers every fmt verb, including %x and %s.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue implements [slog.LogValuer].
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler with the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ValidateSecret checks a caller-chosen secret: 16 to 1024 bytes of
// printable ASCII (the official clients send it as UTF-8, and some
// configuration formats mangle anything else).
func ValidateSecret(s Secret) error {
	if len(s) < MinSecretLength {
		return Errorf(ReasonBadRequest, "secret is %d bytes, shorter than %d; let rmqproxy generate one", len(s), MinSecretLength)
	}
	if len(s) > MaxSecretLength {
		return Errorf(ReasonBadRequest, "secret is %d bytes, longer than %d", len(s), MaxSecretLength)
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return Errorf(ReasonBadRequest, "secret has a character that is not printable ASCII (spaces and control characters are refused)")
		}
	}
	return nil
}

// ValidateImportedSecret checks a secret taken over from an existing
// RocketMQ ACL (plain_acl.yml, an ACL 2.0 export): those are often short
// (upstream's samples use 8 characters), so only the character set and
// the upper bound apply; the store flags short ones as weak.
func ValidateImportedSecret(s Secret) error {
	if len(s) == 0 || len(s) > MaxSecretLength {
		return Errorf(ReasonBadRequest, "secret must have 1 to %d bytes", MaxSecretLength)
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return Errorf(ReasonBadRequest, "secret has a character that is not printable ASCII (spaces and control characters are refused)")
		}
	}
	return nil
}

// ResourceType is the kind of a resource.
type ResourceType uint8

// Resource types, with upstream's names.
const (
	ResourceAny ResourceType = iota
	ResourceCluster
	ResourceNamespace
	ResourceTopic
	ResourceGroup
)

var resourceTypeNames = [...]string{"Any", "Cluster", "Namespace", "Topic", "Group"}

func (t ResourceType) String() string {
	if int(t) < len(resourceTypeNames) {
		return resourceTypeNames[t]
	}
	return fmt.Sprintf("ResourceType(%d)", uint8(t))
}

// ParseResourceType reads a type name in any case.
func ParseResourceType(s string) (ResourceType, bool) {
	for i, n := range resourceTypeNames {
		if strings.EqualFold(s, n) {
			return ResourceType(i), true
		}
	}
	return 0, false
}

// Pattern says how an entry's resource name matches request names.
type Pattern uint8

// Patterns: a literal name, a prefix ("orders-*"), or every name ("*").
const (
	PatternLiteral Pattern = iota
	PatternPrefixed
	PatternAny
)

var patternNames = [...]string{"LITERAL", "PREFIXED", "ANY"}

func (p Pattern) String() string {
	if int(p) < len(patternNames) {
		return patternNames[p]
	}
	return fmt.Sprintf("Pattern(%d)", uint8(p))
}

// ParsePattern reads LITERAL, PREFIXED or ANY in any case.
func ParsePattern(s string) (Pattern, bool) {
	for i, n := range patternNames {
		if strings.EqualFold(s, n) {
			return Pattern(i), true
		}
	}
	return 0, false
}

// Resource is what an ACL entry is about: upstream's resource key "*"
// (everything), "Topic:*" (every topic), "Topic:orders-*" (prefix) or
// "Topic:orders" (one topic). A request names a resource with a literal
// pattern and a type other than Any.
type Resource struct {
	Type    ResourceType
	Pattern Pattern
	Name    string // empty for PatternAny; the prefix without "*" for PatternPrefixed
}

// TopicResource and GroupResource name one topic or group of a request.
func TopicResource(name string) Resource { return Resource{Type: ResourceTopic, Name: name} }

// GroupResource names one consumer group of a request.
func GroupResource(name string) Resource { return Resource{Type: ResourceGroup, Name: name} }

// ClusterResource names the cluster (admin operations).
func ClusterResource(name string) Resource { return Resource{Type: ResourceCluster, Name: name} }

// Key returns upstream's resource key.
func (r Resource) Key() string {
	switch {
	case r.Type == ResourceAny:
		return "*"
	case r.Pattern == PatternAny:
		return r.Type.String() + ":*"
	case r.Pattern == PatternPrefixed:
		return r.Type.String() + ":" + r.Name + "*"
	}
	return r.Type.String() + ":" + r.Name
}

func (r Resource) String() string { return r.Key() }

// ParseResource reads a resource key. The type is case-insensitive; the
// name is case-sensitive, at most 1023 bytes of valid UTF-8 without
// control characters, and may contain "*" only as its last character.
func ParseResource(key string) (Resource, error) {
	if key == "*" {
		return Resource{Type: ResourceAny, Pattern: PatternAny}, nil
	}
	typ, name, ok := strings.Cut(key, ":")
	if !ok {
		return Resource{}, Errorf(ReasonBadRequest, "resource %q is not *, TYPE:* , TYPE:PREFIX* or TYPE:NAME (TYPE is Cluster, Namespace, Topic or Group)", clipName(key))
	}
	t, ok := ParseResourceType(typ)
	if !ok || t == ResourceAny {
		return Resource{}, Errorf(ReasonBadRequest, "resource %q: type %q must be Cluster, Namespace, Topic or Group (or the whole resource *)", clipName(key), clipName(typ))
	}
	r := Resource{Type: t}
	switch {
	case name == "*":
		r.Pattern = PatternAny
		return r, nil
	case strings.HasSuffix(name, "*"):
		r.Pattern, r.Name = PatternPrefixed, strings.TrimSuffix(name, "*")
	default:
		r.Name = name
	}
	if err := validateResourceName(r.Name); err != nil {
		return Resource{}, Errorf(ReasonBadRequest, "resource %q: %s", clipName(key), err)
	}
	return r, nil
}

func validateResourceName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("the name is empty")
	case len(name) > MaxResourceName:
		return fmt.Errorf("the name is %d bytes, longer than %d", len(name), MaxResourceName)
	case !utf8.ValidString(name):
		return fmt.Errorf("the name is not valid UTF-8")
	case strings.ContainsRune(name, '*'):
		return fmt.Errorf("* may only end the name (a prefix) or be the whole name")
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("the name contains a control character")
		}
	}
	return nil
}

// Matches reports whether the entry resource r covers the request
// resource req (literal, typed).
func (r Resource) Matches(req Resource) bool {
	if r.Type == ResourceAny {
		return true
	}
	if r.Type != req.Type {
		return false
	}
	switch r.Pattern {
	case PatternAny:
		return true
	case PatternPrefixed:
		return strings.HasPrefix(req.Name, r.Name)
	}
	return req.Name == r.Name
}

// Action is a set of actions.
type Action uint16

// Actions. ActionAll in an entry covers every action; ActionAny in a
// request matches any entry's actions (upstream's Any, used by requests
// that need no particular right).
const (
	ActionPub Action = 1 << iota
	ActionSub
	ActionCreate
	ActionUpdate
	ActionDelete
	ActionGet
	ActionList
	ActionAll
	ActionAny
)

var actionNames = []struct {
	a    Action
	name string
}{
	{ActionAll, "All"}, {ActionAny, "Any"}, {ActionPub, "Pub"}, {ActionSub, "Sub"}, {ActionCreate, "Create"},
	{ActionUpdate, "Update"}, {ActionDelete, "Delete"}, {ActionGet, "Get"}, {ActionList, "List"},
}

// Names returns the names of the actions in a, in upstream's order.
func (a Action) Names() []string {
	var out []string
	for _, n := range actionNames {
		if a&n.a != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (a Action) String() string { return strings.Join(a.Names(), ",") }

// ParseAction reads one action name in any case.
func ParseAction(s string) (Action, bool) {
	for _, n := range actionNames {
		if strings.EqualFold(strings.TrimSpace(s), n.name) {
			return n.a, true
		}
	}
	return 0, false
}

// ParseActions reads action names separated by commas or |, as
// "Pub,Sub" or "PUB|SUB". An entry's actions may not contain Any.
func ParseActions(s string) (Action, error) {
	var a Action
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '|' }) {
		x, ok := ParseAction(part)
		if !ok {
			return 0, Errorf(ReasonBadRequest, "action %q must be one of All, Pub, Sub, Create, Update, Delete, Get, List", clipName(strings.TrimSpace(part)))
		}
		if x == ActionAny {
			return 0, Errorf(ReasonBadRequest, "action Any is for requests only; an ACL entry grants All or named actions")
		}
		a |= x
	}
	if a == 0 {
		return 0, Errorf(ReasonBadRequest, "no action given; name one or more of All, Pub, Sub, Create, Update, Delete, Get, List")
	}
	return a, nil
}

// Covers reports whether entry actions a cover a request asking for any
// one of req.
func (a Action) Covers(req Action) bool {
	if a == 0 {
		return false
	}
	return req&ActionAny != 0 || a&ActionAll != 0 || a&req != 0
}

// Decision is an ACL entry's effect.
type Decision uint8

// Decisions, with upstream's names.
const (
	Allow Decision = iota
	Deny
)

func (d Decision) String() string {
	if d == Deny {
		return "Deny"
	}
	return "Allow"
}

// ParseDecision reads Allow or Deny in any case.
func ParseDecision(s string) (Decision, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "allow":
		return Allow, nil
	case "deny":
		return Deny, nil
	}
	return 0, Errorf(ReasonBadRequest, "decision %q must be Allow or Deny", clipName(s))
}

// PolicyType separates entries a subject's owner set (Custom) from
// defaults (Default), which count only when no Custom entry matches.
type PolicyType uint8

// Policy types, with upstream's names.
const (
	PolicyCustom PolicyType = iota
	PolicyDefault
)

func (p PolicyType) String() string {
	if p == PolicyDefault {
		return "Default"
	}
	return "Custom"
}

// ParsePolicyType reads Custom or Default in any case; empty is Custom.
func ParsePolicyType(s string) (PolicyType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "custom":
		return PolicyCustom, nil
	case "default":
		return PolicyDefault, nil
	}
	return 0, Errorf(ReasonBadRequest, "policy type %q must be Custom or Default", clipName(s))
}

// ACLEntry is one rule: Subject may (or may not) perform Actions on
// Resource, from SourceIPs (any address when empty).
type ACLEntry struct {
	ID          int64 // store-assigned; 0 before it is stored
	Subject     string
	PolicyType  PolicyType
	Resource    Resource
	Actions     Action
	SourceIPs   []netip.Prefix
	Decision    Decision
	Description string
}

// ParseSubject checks a subject "User:<name>" and returns the user name.
func ParseSubject(s string) (string, error) {
	typ, name, ok := strings.Cut(s, ":")
	if !ok || !strings.EqualFold(typ, "User") {
		return "", Errorf(ReasonBadRequest, "subject %q must be User:<name>", clipName(s))
	}
	if err := ValidateUserName(name); err != nil {
		return "", err
	}
	return name, nil
}

// ParseACLEntry builds an ACL entry of the default policy type from its
// parts as an administrator writes them: a resource key ("Topic:orders"),
// actions ("Pub,Sub"), a decision ("Allow") and source addresses or
// prefixes (none: any). It checks each part; Validate checks the whole.
func ParseACLEntry(subject, resource, actions, decision string, sourceIPs ...string) (ACLEntry, error) {
	e := ACLEntry{Subject: subject}
	if name, err := ParseSubject(subject); err == nil {
		e.Subject = SubjectOf(name) // the type in any case, as upstream: stored and matched as User:
	}
	var err error
	if e.Resource, err = ParseResource(resource); err != nil {
		return ACLEntry{}, err
	}
	if e.Actions, err = ParseActions(actions); err != nil {
		return ACLEntry{}, err
	}
	if e.Decision, err = ParseDecision(decision); err != nil {
		return ACLEntry{}, err
	}
	for _, s := range sourceIPs {
		p, err := ParseSourceIP(s)
		if err != nil {
			return ACLEntry{}, err
		}
		e.SourceIPs = append(e.SourceIPs, p)
	}
	return e, nil
}

// ParseSourceIP reads an address or a CIDR prefix ("10.0.0.1",
// "10.0.0.0/8", "::1", "fd00::/8"); an address is a /32 or /128 prefix.
// IPv4-mapped IPv6 addresses are unmapped. Host bits are cleared.
func ParseSourceIP(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, Errorf(ReasonBadRequest, "source address %q is not an IP address or CIDR prefix", clipName(s))
		}
		a := p.Addr()
		bits := p.Bits()
		if a.Is4In6() {
			if bits < 96 {
				return netip.Prefix{}, Errorf(ReasonBadRequest, "source prefix %q mixes IPv4-mapped and plain IPv6", clipName(s))
			}
			a, bits = a.Unmap(), bits-96
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, Errorf(ReasonBadRequest, "source address %q is not an IP address or CIDR prefix", clipName(s))
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Validate checks an entry before it is stored.
func (e ACLEntry) Validate() error {
	if _, err := ParseSubject(e.Subject); err != nil {
		return err
	}
	if e.Resource.Type == ResourceAny && (e.Resource.Pattern != PatternAny || e.Resource.Name != "") {
		return Errorf(ReasonBadRequest, "resource of type Any must be *")
	}
	if e.Resource.Type != ResourceAny {
		if e.Resource.Pattern == PatternAny {
			if e.Resource.Name != "" {
				return Errorf(ReasonBadRequest, "resource %s:* has a name", e.Resource.Type)
			}
		} else if err := validateResourceName(e.Resource.Name); err != nil {
			return Errorf(ReasonBadRequest, "resource %q: %s", clipName(e.Resource.Key()), err)
		}
	}
	if e.Actions == 0 || e.Actions&ActionAny != 0 || e.Actions&^(ActionAny-1) != 0 {
		return Errorf(ReasonBadRequest, "entry for %s needs actions from All, Pub, Sub, Create, Update, Delete, Get, List (not Any)", clipName(e.Resource.Key()))
	}
	if len(e.SourceIPs) > MaxSourceIPs {
		return Errorf(ReasonBadRequest, "entry for %s has %d source addresses, more than %d", clipName(e.Resource.Key()), len(e.SourceIPs), MaxSourceIPs)
	}
	for _, p := range e.SourceIPs {
		if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return Errorf(ReasonBadRequest, "entry for %s has an invalid source prefix", clipName(e.Resource.Key()))
		}
	}
	if e.Decision > Deny || e.PolicyType > PolicyDefault {
		return Errorf(ReasonBadRequest, "entry for %s has an unknown decision or policy type", clipName(e.Resource.Key()))
	}
	return ValidateDescription(e.Description)
}

// MatchesSource reports whether ip may use the entry: an entry without
// source addresses matches every request; one with addresses never
// matches a request without an address.
func (e ACLEntry) MatchesSource(ip netip.Addr) bool {
	if len(e.SourceIPs) == 0 {
		return true
	}
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range e.SourceIPs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ConflictMode chooses how matching entries of one subject are ranked.
type ConflictMode uint8

// Conflict modes. DenyOverrides (the default): within a policy type, any
// matching Deny beats every matching Allow, then the most specific entry
// decides. MostSpecific: the most specific matching entry decides, as
// Apache RocketMQ's ACL 2.0 does (a literal Allow beats a prefix Deny).
const (
	DenyOverrides ConflictMode = iota
	MostSpecific
)

func (m ConflictMode) String() string {
	if m == MostSpecific {
		return "rocketmq"
	}
	return "deny_overrides"
}

// ParseConflictMode reads deny_overrides or rocketmq.
func ParseConflictMode(s string) (ConflictMode, error) {
	switch s {
	case "deny_overrides":
		return DenyOverrides, nil
	case "rocketmq":
		return MostSpecific, nil
	}
	return 0, fmt.Errorf("conflict resolution %q must be deny_overrides or rocketmq", s)
}

// Priority ranks an entry among the matching entries of its subject: the
// lowest priority decides. It encodes, from most to least significant:
// policy type (Custom before Default: Default entries count only when no
// Custom entry matches), in DenyOverrides mode the decision (Deny before
// Allow), specificity (literal, then longer prefixes, then TYPE:*, then
// *), and the decision again (Deny wins a tie).
func (e ACLEntry) Priority(mode ConflictMode) int {
	p := 0
	if e.PolicyType == PolicyDefault {
		p += 10_000_000
	}
	d := 0
	if e.Decision == Allow {
		d = 1
	}
	if mode == DenyOverrides {
		p += d * 1_000_000
	}
	var spec int
	switch {
	case e.Resource.Type == ResourceAny:
		spec = 3000
	case e.Resource.Pattern == PatternAny:
		spec = 2000
	case e.Resource.Pattern == PatternPrefixed:
		n := len(e.Resource.Name)
		if n > MaxResourceName {
			n = MaxResourceName
		}
		spec = 1 + (1024 - n)
	}
	return p + spec*10 + d
}

// AccessRequest is one thing a request needs: Actions (any one of them)
// on Resource (literal, typed), from SourceIP.
type AccessRequest struct {
	Resource Resource
	Actions  Action
	SourceIP netip.Addr
}

// AccessRequests collects what one request needs, from one source IP: one
// AccessRequest per resource, the actions of repeated mentions merged. The
// request tables of every protocol build their lists with it.
type AccessRequests struct {
	SourceIP netip.Addr
	List     []AccessRequest
	// index finds a resource in a long List: a request names as many
	// resources as its sender likes (a SendMessage batch of a million
	// messages with a topic each, before it is authenticated), and a
	// linear search per Add made that quadratic.
	index map[Resource]int
}

// accessIndexAfter is the List length beyond which Add uses an index.
const accessIndexAfter = 8

// Add adds acts on res.
func (a *AccessRequests) Add(res Resource, acts Action) {
	if a.index == nil {
		for i := range a.List {
			if a.List[i].Resource == res {
				a.List[i].Actions |= acts
				return
			}
		}
	} else if i, ok := a.index[res]; ok {
		a.List[i].Actions |= acts
		return
	}
	a.List = append(a.List, AccessRequest{Resource: res, Actions: acts, SourceIP: a.SourceIP})
	switch {
	case a.index != nil:
		a.index[res] = len(a.List) - 1
	case len(a.List) > accessIndexAfter:
		a.index = make(map[Resource]int, 2*len(a.List))
		for i := range a.List {
			a.index[a.List[i].Resource] = i
		}
	}
}

// AddTopic adds acts on the topic name. Retry and dead-letter topics
// (%RETRY%group, %DLQ%group) belong to their consumer group: they need Sub
// on the group instead.
func (a *AccessRequests) AddTopic(name string, acts Action) {
	for _, prefix := range []string{RetryTopicPrefix, DeadLetterTopicPrefix} {
		if g, ok := strings.CutPrefix(name, prefix); ok {
			a.Add(GroupResource(g), ActionSub)
			return
		}
	}
	a.Add(TopicResource(name), acts)
}

// AccessDecision is the outcome of one authorization check.
type AccessDecision struct {
	Allowed bool
	EntryID int64  // the deciding entry, 0 when none matched
	Reason  string // "entry:<id>", "no_match_default_deny", "super_user", ...
}

// Decision reasons that are not entries.
const (
	ReasonNoMatch      = "no_match_default_deny"
	ReasonSuperUser    = "super_user"
	ReasonUnknownUser  = "unknown_user"
	ReasonUserDisabled = "user_disabled"
	ReasonAuthDisabled = "auth_disabled"
)

// EvaluateACL is the reference semantics of ACL 2.0 evaluation over one
// subject's entries: among the entries that match the request's resource,
// actions and source address, the one with the lowest [ACLEntry.Priority]
// decides; no match denies. Authorizer adapters must agree with it (their
// tests compare).
func EvaluateACL(entries []ACLEntry, req AccessRequest, mode ConflictMode) AccessDecision {
	best, bestPrio := -1, 0
	for i, e := range entries {
		if !e.Resource.Matches(req.Resource) || !e.Actions.Covers(req.Actions) || !e.MatchesSource(req.SourceIP) {
			continue
		}
		if p := e.Priority(mode); best < 0 || p < bestPrio || p == bestPrio && e.ID < entries[best].ID {
			best, bestPrio = i, p
		}
	}
	if best < 0 {
		return AccessDecision{Reason: ReasonNoMatch}
	}
	e := entries[best]
	return AccessDecision{Allowed: e.Decision == Allow, EntryID: e.ID, Reason: fmt.Sprintf("entry:%d", e.ID)}
}

// UserRecord is a user with its secrets, as a policy snapshot holds it.
// A user may have more than one valid secret while it rotates them.
type UserRecord struct {
	User
	Secrets []Secret
	// SecretExpiry[i], when present and not zero, is the time Secrets[i]
	// stops authenticating; a snapshot stays in force past it, so the
	// expiry is checked against the clock, not only when loading.
	SecretExpiry []time.Time
}

// SecretExpired reports whether Secrets[i] no longer authenticates at now.
func (u UserRecord) SecretExpired(i int, now time.Time) bool {
	return i < len(u.SecretExpiry) && !u.SecretExpiry[i].IsZero() && !now.Before(u.SecretExpiry[i])
}

// PolicySnapshot is everything authentication and authorization decide
// from, consistent with one revision of the policy store.
type PolicySnapshot struct {
	Revision int64
	Users    []UserRecord
	Entries  []ACLEntry
}

// clipName is what a message quotes of a name or a value that is not one.
func clipName(s string) string { return Clip(s, 64) }
