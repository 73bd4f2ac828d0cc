package policyfile

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// plainACL is ACL 1.0's plain_acl.yml.
type plainACL struct {
	GlobalWhiteRemoteAddresses []string       `yaml:"globalWhiteRemoteAddresses"`
	Accounts                   []plainAccount `yaml:"accounts"`
	DataVersion                any            `yaml:"dataVersion"`
}

type plainAccount struct {
	AccessKey          string   `yaml:"accessKey"`
	SecretKey          string   `yaml:"secretKey"`
	WhiteRemoteAddress string   `yaml:"whiteRemoteAddress"`
	Admin              *bool    `yaml:"admin"` // nil: an import keeps the stored type
	DefaultTopicPerm   string   `yaml:"defaultTopicPerm"`
	DefaultGroupPerm   string   `yaml:"defaultGroupPerm"`
	TopicPerms         []string `yaml:"topicPerms"`
	GroupPerms         []string `yaml:"groupPerms"`
}

// DecodePlainACL converts a plain_acl.yml as upstream's AuthMigrator does:
// each account becomes a user (admin: true Super, false Normal; without
// admin an existing user keeps its type, a new one is Normal; an existing
// user keeps its status) with its secretKey; each
// topicPerms/groupPerms item a Custom entry (PUB → Pub, SUB → Sub, PUB|SUB
// → Pub,Sub, DENY → All denied); defaultTopicPerm/defaultGroupPerm Default
// entries on Topic:* and Group:*. Unlike upstream, whiteRemoteAddress is
// kept as the source addresses of every entry of the account (the v1
// forms 10.1.*.*, 10.1.1.{1,2}, 10.1.1.1-100 become CIDR prefixes; "*"
// means any address; an admin account's restricts nothing, which a
// warning says), and unknown permissions are errors instead of All.
// globalWhiteRemoteAddresses, which let v1 skip signatures, are not
// imported: the returned warnings say so.
func DecodePlainACL(data []byte) (users []ports.ImportUser, entries []domain.ACLEntry, warnings []string, err error) {
	if len(data) > MaxFileSize {
		return nil, nil, nil, fmt.Errorf("the file is %d bytes, more than %d", len(data), MaxFileSize)
	}
	var f plainACL
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, nil, nil, fmt.Errorf("not a plain_acl.yml: %v", yamlError(err))
	}
	if len(f.GlobalWhiteRemoteAddresses) > 0 {
		warnings = append(warnings, fmt.Sprintf("globalWhiteRemoteAddresses (%s) not imported: rmqproxy never lets an address replace a signature", strings.Join(f.GlobalWhiteRemoteAddresses, ", ")))
	}
	seen := map[string]bool{}
	for i, a := range f.Accounts {
		if err := domain.ValidateUserName(a.AccessKey); err != nil {
			return nil, nil, nil, fmt.Errorf("account %d: accessKey: %v", i+1, err)
		}
		if seen[a.AccessKey] {
			return nil, nil, nil, fmt.Errorf("account %q appears twice", a.AccessKey)
		}
		seen[a.AccessKey] = true
		if err := domain.ValidateImportedSecret(domain.Secret(a.SecretKey)); err != nil {
			return nil, nil, nil, fmt.Errorf("account %q: secretKey: %v", a.AccessKey, err)
		}
		if len(a.SecretKey) < 16 {
			warnings = append(warnings, fmt.Sprintf("account %q: its secretKey has %d characters; rotate it (rmqproxy user update %s --secret-generate)", a.AccessKey, len(a.SecretKey), a.AccessKey))
		}
		u := ports.ImportUser{Name: a.AccessKey, UserUpdate: ports.UserUpdate{Secret: domain.Secret(a.SecretKey)},
			DescriptionIfNew: "imported from plain_acl.yml"}
		if a.Admin != nil {
			typ := domain.UserNormal
			if *a.Admin {
				typ = domain.UserSuper
			}
			u.Type = &typ
		}
		users = append(users, u)
		ips, err := V1Addresses(a.WhiteRemoteAddress)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("account %q: whiteRemoteAddress: %v", a.AccessKey, err)
		}
		if a.Admin != nil && *a.Admin && len(ips) > 0 {
			// The address is kept on the account's entries only, which a
			// Super user skips: it would be dropped without a word.
			warnings = append(warnings, fmt.Sprintf("account %q (admin: true): its whiteRemoteAddress (%s) does not restrict where it connects from: "+
				"rmqproxy keeps a whiteRemoteAddress only on the account's ACL entries, which a Super user skips (auth.superUserBypass); "+
				"to bind it to those addresses, import it with admin: false and give it entries", a.AccessKey, strings.TrimSpace(a.WhiteRemoteAddress)))
		}
		subject := domain.SubjectOf(a.AccessKey)
		add := func(ptype domain.PolicyType, typ domain.ResourceType, item, perm string) error {
			res := domain.Resource{Type: typ, Pattern: domain.PatternAny}
			if item != "" {
				res = domain.Resource{Type: typ, Name: item}
			}
			acts, d, err := v1Perm(perm)
			if err != nil {
				return err
			}
			e := domain.ACLEntry{ID: int64(len(entries) + 1), Subject: subject, PolicyType: ptype, Resource: res, Actions: acts, Decision: d, SourceIPs: ips}
			if err := e.Validate(); err != nil {
				return err
			}
			entries = append(entries, e)
			return nil
		}
		for _, p := range []struct {
			typ   domain.ResourceType
			perms []string
			def   string
		}{{domain.ResourceTopic, a.TopicPerms, a.DefaultTopicPerm}, {domain.ResourceGroup, a.GroupPerms, a.DefaultGroupPerm}} {
			names := map[string]bool{}
			for _, item := range p.perms {
				name, perm, ok := strings.Cut(item, "=")
				name = strings.TrimSpace(name)
				if !ok || name == "" {
					return nil, nil, nil, fmt.Errorf("account %q: %q is not NAME=PERM", a.AccessKey, item)
				}
				if names[name] {
					return nil, nil, nil, fmt.Errorf("account %q: %s %q appears twice", a.AccessKey, p.typ, name)
				}
				names[name] = true
				if err := add(domain.PolicyCustom, p.typ, name, perm); err != nil {
					return nil, nil, nil, fmt.Errorf("account %q: %s %q: %v", a.AccessKey, p.typ, name, err)
				}
			}
			if p.def != "" {
				if err := add(domain.PolicyDefault, p.typ, "", p.def); err != nil {
					return nil, nil, nil, fmt.Errorf("account %q: default %s permission: %v", a.AccessKey, p.typ, err)
				}
			}
		}
	}
	return users, entries, warnings, nil
}

func v1Perm(perm string) (domain.Action, domain.Decision, error) {
	switch strings.ToUpper(strings.TrimSpace(perm)) {
	case "PUB":
		return domain.ActionPub, domain.Allow, nil
	case "SUB":
		return domain.ActionSub, domain.Allow, nil
	case "PUB|SUB", "SUB|PUB":
		return domain.ActionPub | domain.ActionSub, domain.Allow, nil
	case "DENY":
		return domain.ActionAll, domain.Deny, nil
	}
	return 0, 0, fmt.Errorf("permission %q must be PUB, SUB, PUB|SUB or DENY", perm)
}

// V1Addresses converts an ACL 1.0 address expression to prefixes: "" or
// "*" (any address: no restriction), an IP or CIDR, a.b.*.* style
// wildcards, a.b.c.{x,y,z} lists and a.b.c.x-y ranges (IPv4), several
// separated by commas outside braces.
func V1Addresses(expr string) ([]netip.Prefix, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == "*" || expr == "*.*.*.*" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, part := range splitOutsideBraces(expr) {
		ps, err := v1Address(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
		if len(out) > domain.MaxSourceIPs {
			return nil, fmt.Errorf("%q expands to more than %d prefixes", expr, domain.MaxSourceIPs)
		}
	}
	return out, nil
}

func splitOutsideBraces(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

func v1Address(s string) ([]netip.Prefix, error) {
	if p, err := domain.ParseSourceIP(s); err == nil {
		return []netip.Prefix{p}, nil
	}
	octets := strings.Split(s, ".")
	if len(octets) != 4 {
		return nil, fmt.Errorf("%q is not an address, a CIDR prefix or an ACL 1.0 address pattern", s)
	}
	// Leading fixed octets, then at most one pattern octet, then only *.
	var fixed []byte
	i := 0
	for ; i < 4; i++ {
		n, err := strconv.ParseUint(octets[i], 10, 8)
		if err != nil {
			break
		}
		fixed = append(fixed, byte(n))
	}
	if i == 4 {
		return nil, fmt.Errorf("%q is not an address", s)
	}
	pattern := octets[i]
	for _, o := range octets[i+1:] {
		if o != "*" {
			return nil, fmt.Errorf("%q: only * may follow a wildcard, list or range octet", s)
		}
	}
	stars := 3 - i // octets after the pattern one, all *
	var lo, hi uint64
	switch {
	case pattern == "*":
		lo, hi = 0, 255
	case strings.HasPrefix(pattern, "{") && strings.HasSuffix(pattern, "}"):
		var out []netip.Prefix
		for _, v := range strings.Split(pattern[1:len(pattern)-1], ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 8)
			if err != nil {
				return nil, fmt.Errorf("%q: %q is not 0-255", s, v)
			}
			out = append(out, octetPrefix(fixed, byte(n), stars))
		}
		return out, nil
	case strings.Contains(pattern, "-"):
		a, b, _ := strings.Cut(pattern, "-")
		var err1, err2 error
		lo, err1 = strconv.ParseUint(a, 10, 8)
		hi, err2 = strconv.ParseUint(b, 10, 8)
		if err1 != nil || err2 != nil || lo > hi {
			return nil, fmt.Errorf("%q: %q is not a range LOW-HIGH within 0-255", s, pattern)
		}
	default:
		return nil, fmt.Errorf("%q is not an address, a CIDR prefix or an ACL 1.0 address pattern", s)
	}
	// Cover [lo, hi] of the pattern octet with aligned blocks.
	var out []netip.Prefix
	for lo <= hi {
		size := uint64(1)
		for lo%(size*2) == 0 && lo+size*2-1 <= hi && size < 256 {
			size *= 2
		}
		bits := 8
		for x := size; x > 1; x /= 2 {
			bits--
		}
		p := octetPrefix(fixed, byte(lo), stars)
		out = append(out, netip.PrefixFrom(p.Addr(), len(fixed)*8+bits).Masked())
		lo += size
	}
	return out, nil
}

// octetPrefix is fixed.v followed by stars wildcard octets.
func octetPrefix(fixed []byte, v byte, stars int) netip.Prefix {
	var b [4]byte
	copy(b[:], fixed)
	b[len(fixed)] = v
	return netip.PrefixFrom(netip.AddrFrom4(b), 32-8*stars).Masked()
}
