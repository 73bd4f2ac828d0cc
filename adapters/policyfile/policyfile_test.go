package policyfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/policyfile"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// An ACL 2.0 export as mqadmin lists users and ACLs (JSON).
const acl2Export = `{
  "users": [
    {"username": "admin", "password": "admin-secret-1234", "userType": "Super", "userStatus": "enable"},
    {"username": "app1", "password": "app1pass", "userType": "Normal", "userStatus": "disable"}
  ],
  "acls": [
    {"subject": "User:app1", "policies": [
      {"policyType": "Custom", "entries": [
        {"resource": "Topic:orders-*", "actions": ["Pub", "Sub"], "sourceIps": ["10.0.0.0/8", "::1"], "decision": "Allow"},
        {"resource": "Group:g1", "actions": ["Sub"], "decision": "Allow"}
      ]},
      {"policyType": "Default", "entries": [
        {"resource": "*", "actions": ["All"], "decision": "Deny"}
      ]}
    ]}
  ]
}`

func TestDecodeACL2Export(t *testing.T) {
	users, entries, err := policyfile.Decode([]byte(acl2Export))
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].Type != domain.UserSuper || users[1].Status != domain.UserDisabled || string(users[1].Secrets[0]) != "app1pass" {
		t.Fatalf("users: %+v", users)
	}
	if len(entries) != 3 {
		t.Fatalf("entries: %+v", entries)
	}
	e := entries[0]
	if e.Subject != "User:app1" || e.Resource.Key() != "Topic:orders-*" || e.Actions != domain.ActionPub|domain.ActionSub || len(e.SourceIPs) != 2 {
		t.Fatalf("entry: %+v", e)
	}
	if entries[2].PolicyType != domain.PolicyDefault || entries[2].Decision != domain.Deny || entries[2].Resource.Type != domain.ResourceAny {
		t.Fatalf("default entry: %+v", entries[2])
	}
	// A bare list of AclInfo (LIST_ACL's body) works too.
	_, list, err := policyfile.Decode([]byte(`[{"subject":"User:x","policies":[{"policyType":"Custom","entries":[{"resource":"Topic:t","actions":"Pub","decision":"Deny"}]}]}]`))
	if err != nil || len(list) != 1 || list[0].Decision != domain.Deny {
		t.Fatalf("list: %+v %v", list, err)
	}
	for name, bad := range map[string]string{
		"unknown field":      `{"users": [{"username": "a", "pasword": "x"}]}`,
		"Any action":         `{"acls": [{"subject": "User:a", "policies": [{"entries": [{"resource": "Topic:t", "actions": ["Any"], "decision": "Allow"}]}]}]}`,
		"no decision":        `{"acls": [{"subject": "User:a", "policies": [{"entries": [{"resource": "Topic:t", "actions": ["Pub"]}]}]}]}`,
		"no entries":         `{"acls": [{"subject": "User:a", "policies": [{"policyType": "Custom", "entries": []}]}]}`,
		"bad ip":             `{"acls": [{"subject": "User:a", "policies": [{"entries": [{"resource": "Topic:t", "actions": ["Pub"], "sourceIps": ["10.1.*.*"], "decision": "Allow"}]}]}]}`,
		"bad subject":        `{"acls": [{"subject": "Role:a", "policies": [{"entries": [{"resource": "Topic:t", "actions": ["Pub"], "decision": "Allow"}]}]}]}`,
		"duplicate resource": `{"acls": [{"subject": "User:a", "policies": [{"entries": [{"resource": "Topic:t", "actions": ["Pub"], "decision": "Allow"}, {"resource": "Topic:t", "actions": ["Sub"], "decision": "Allow"}]}]}]}`,
		"hostile user":       `{"users": [{"username": "x'; DROP TABLE users;--", "password": "p"}]}`,
		"secret with space":  `{"users": [{"username": "a", "password": "has space"}]}`,
	} {
		if _, _, err := policyfile.Decode([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDecodeImportLeavesOmittedFieldsNil: for an import, what a user
// leaves out is nil, so that an existing user keeps it (Decode, for the
// policy file, gives the defaults instead).
func TestDecodeImportLeavesOmittedFieldsNil(t *testing.T) {
	data := []byte(`{"users": [{"username": "root"}, {"name": "app", "secret": "app-secret-0123", "userType": "super", "userStatus": "disabled"}]}`)
	users, _, err := policyfile.DecodeImport(data)
	if err != nil {
		t.Fatal(err)
	}
	root, app := users[0], users[1]
	if root.Name != "root" || root.Type != nil || root.Status != nil || root.Description != nil || root.Secret != nil {
		t.Errorf("root: %+v", root)
	}
	if app.Name != "app" || *app.Type != domain.UserSuper || *app.Status != domain.UserDisabled || string(app.Secret) != "app-secret-0123" {
		t.Errorf("app: %+v", app)
	}
	records, _, err := policyfile.Decode(data)
	if err != nil || records[0].Type != domain.UserNormal || records[0].Status != domain.UserEnabled || len(records[0].Secrets) != 0 ||
		records[1].Type != domain.UserSuper || string(records[1].Secrets[0]) != "app-secret-0123" {
		t.Fatalf("Decode: %+v %v", records, err)
	}
}

// upstream's sample plain_acl.yml, with every permission form and address
// syntax.
const plainACL = `
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
      - topicD=SUB|PUB
      - topicE=PUB
    groupPerms:
      - groupA=DENY
      - groupB=PUB|SUB
      - groupC=SUB
  - accessKey: rocketmq2
    secretKey: 12345678
    whiteRemoteAddress: 192.168.1.*
    admin: true
  - accessKey: rocketmq3
    secretKey: 1234567890abcdef1234
    whiteRemoteAddress: 10.1.1.{1,2,3},10.2.0.0-127
    topicPerms:
      - t=PUB
`

func TestDecodePlainACL(t *testing.T) {
	users, entries, warnings, err := policyfile.DecodePlainACL([]byte(plainACL))
	if err != nil {
		t.Fatal(err)
	}
	// admin: false is Normal, admin: true Super; without admin (and
	// always for the status) an import keeps what is stored.
	if len(users) != 3 || *users[0].Type != domain.UserNormal || *users[1].Type != domain.UserSuper || users[2].Type != nil ||
		users[0].Status != nil || string(users[2].Secret) != "1234567890abcdef1234" {
		t.Fatalf("users: %+v", users)
	}
	// plain_acl.yml has no descriptions: an existing user keeps its own.
	for _, u := range users {
		if u.Description != nil || u.DescriptionIfNew != "imported from plain_acl.yml" {
			t.Errorf("user %s: description %v, if new %q", u.Name, u.Description, u.DescriptionIfNew)
		}
	}
	got := map[string]string{}
	for _, e := range entries {
		ips := []string{}
		for _, p := range e.SourceIPs {
			ips = append(ips, p.String())
		}
		got[e.Subject+" "+e.PolicyType.String()+" "+e.Resource.Key()] = e.Decision.String() + " " + e.Actions.String() + " " + strings.Join(ips, ",")
	}
	want := map[string]string{
		"User:RocketMQ Custom Topic:topicA": "Deny All ",
		"User:RocketMQ Custom Topic:topicB": "Allow Pub,Sub ",
		"User:RocketMQ Custom Topic:topicC": "Allow Sub ",
		"User:RocketMQ Custom Topic:topicD": "Allow Pub,Sub ",
		"User:RocketMQ Custom Topic:topicE": "Allow Pub ",
		"User:RocketMQ Default Topic:*":     "Deny All ",
		"User:RocketMQ Custom Group:groupA": "Deny All ",
		"User:RocketMQ Custom Group:groupB": "Allow Pub,Sub ",
		"User:RocketMQ Custom Group:groupC": "Allow Sub ",
		"User:RocketMQ Default Group:*":     "Allow Sub ",
		"User:rocketmq3 Custom Topic:t":     "Allow Pub 10.1.1.1/32,10.1.1.2/32,10.1.1.3/32,10.2.0.0/25",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d entries, want %d: %v", len(got), len(want), got)
	}
	joined := strings.Join(warnings, "\n")
	if !strings.Contains(joined, "globalWhiteRemoteAddresses") || !strings.Contains(joined, `"RocketMQ": its secretKey has 8 characters`) {
		t.Errorf("warnings: %v", warnings)
	}
	// rocketmq2 (admin: true, whiteRemoteAddress 192.168.1.*) became a
	// Super user that connects from anywhere, and nothing said so: the
	// address is kept only on entries, which it has none of and a Super
	// user skips.
	if !strings.Contains(joined, `account "rocketmq2" (admin: true): its whiteRemoteAddress (192.168.1.*) does not restrict where it connects from`) {
		t.Errorf("no warning that the Super account's address is not kept: %v", warnings)
	}
	if strings.Contains(joined, `"rocketmq3" (admin`) || strings.Contains(joined, `"RocketMQ" (admin`) {
		t.Errorf("warning for an account that is not admin: %v", warnings)
	}
	if _, _, _, err := policyfile.DecodePlainACL([]byte("accounts:\n  - accessKey: a\n    secretKey: 12345678\n    topicPerms: [t=READ]\n")); err == nil {
		t.Error("unknown permission accepted")
	}
}

func TestV1Addresses(t *testing.T) {
	for in, want := range map[string]string{
		"":               "",
		"*":              "",
		"10.1.2.3":       "10.1.2.3/32",
		"10.1.*.*":       "10.1.0.0/16",
		"10.1.2.*":       "10.1.2.0/24",
		"10.*.*.*":       "10.0.0.0/8",
		"10.1.2.{1,5}":   "10.1.2.1/32 10.1.2.5/32",
		"10.1.2.1-6":     "10.1.2.1/32 10.1.2.2/31 10.1.2.4/31 10.1.2.6/32",
		"10.1.2.0-255":   "10.1.2.0/24",
		"10.1.0-1.*":     "10.1.0.0/23",
		"10.0.0.0/8,::1": "10.0.0.0/8 ::1/128",
	} {
		ps, err := policyfile.V1Addresses(in)
		var s []string
		for _, p := range ps {
			s = append(s, p.String())
		}
		if err != nil || strings.Join(s, " ") != want {
			t.Errorf("%q: %v %v, want %s", in, s, err, want)
		}
	}
	for _, bad := range []string{"10.1.*.2", "10.1.2.9-3", "10.1.2.{x}", "host", "10.1.2.300-301", "1.2.3"} {
		if _, err := policyfile.V1Addresses(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSourceReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write := func(s string) {
		if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write("users:\n  - name: alice\n    secret: alice-secret-0123\nacls:\n  - subject: User:alice\n    policies:\n      - entries:\n          - {resource: 'Topic:a', actions: Pub, decision: Allow}\n")
	src := policyfile.NewSource(path, 10*time.Millisecond, slogDiscard())
	snap, err := src.Load(t.Context())
	if err != nil || snap.Revision != 1 || len(snap.Entries) != 1 {
		t.Fatalf("%+v %v", snap, err)
	}
	applied := policyfile.WatchApplied(t, src)
	write("users: [oops")
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the condition", func() bool { return src.Health() != nil })
	write("users:\n  - name: alice\n    secret: alice-secret-0123\n")
	select {
	case s := <-applied:
		if s.Revision != 2 || len(s.Entries) != 0 {
			t.Fatalf("reloaded %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload")
	}
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the condition", func() bool { return src.Health() == nil })
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(acl2Export))
	f.Add([]byte(`[{"subject":"User:x","policies":[{"entries":[{"resource":"*","actions":"All","decision":"Deny"}]}]}]`))
	f.Add([]byte("users:\n  - name: a\n    secret: b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		users, entries, err := policyfile.Decode(data)
		if err != nil {
			return
		}
		for _, u := range users {
			if domain.ValidateUserName(u.Name) != nil {
				t.Fatalf("invalid user %q accepted", u.Name)
			}
		}
		for _, e := range entries {
			if err := e.Validate(); err != nil {
				t.Fatalf("invalid entry accepted: %v", err)
			}
		}
	})
}

func FuzzDecodePlainACL(f *testing.F) {
	f.Add([]byte(plainACL))
	f.Add([]byte("accounts:\n  - accessKey: a\n    secretKey: s\n    whiteRemoteAddress: 1.2.3.{4,5}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, entries, _, err := policyfile.DecodePlainACL(data)
		if err != nil {
			return
		}
		for _, e := range entries {
			if err := e.Validate(); err != nil {
				t.Fatalf("invalid entry accepted: %v", err)
			}
		}
	})
}

// TestSecurityDocExampleLoads decodes the policy file docs/security.md
// shows under "Turning it on without a database" (the YAML block that
// starts with users:), so that the example an operator copies loads.
func TestSecurityDocExampleLoads(t *testing.T) {
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## Turning it on without a database")
	if !ok {
		t.Fatal(`docs/security.md lacks "## Turning it on without a database"`)
	}
	_, rest, ok = strings.Cut(rest, "```yaml\nusers:")
	body, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatal("docs/security.md shows no policy file (a yaml block starting with users:) in that section")
	}
	users, entries, err := policyfile.Decode([]byte("users:" + body))
	if err != nil {
		t.Fatalf("the policy file of docs/security.md does not load: %v", err)
	}
	if len(users) == 0 || len(entries) == 0 {
		t.Fatalf("decoded %d users and %d entries", len(users), len(entries))
	}
}
