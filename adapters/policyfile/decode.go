package policyfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// MaxFileSize bounds a policy or import file.
const MaxFileSize = 16 << 20

// File is the policy file and ACL 2.0 export format.
type File struct {
	Users []UserInfo `yaml:"users" json:"users"`
	ACLs  []AclInfo  `yaml:"acls" json:"acls"`
}

// UserInfo is ACL 2.0's UserInfo: username, password (the secret),
// userType (Super, Normal), userStatus (enable, disable). name and secret
// are accepted as synonyms.
type UserInfo struct {
	Username   string `yaml:"username" json:"username"`
	Name       string `yaml:"name" json:"name"`
	Password   string `yaml:"password" json:"password"`
	Secret     string `yaml:"secret" json:"secret"`
	UserType   string `yaml:"userType" json:"userType"`
	UserStatus string `yaml:"userStatus" json:"userStatus"`
}

// AclInfo is ACL 2.0's AclInfo.
type AclInfo struct {
	Subject  string       `yaml:"subject" json:"subject"`
	Policies []PolicyInfo `yaml:"policies" json:"policies"`
}

// PolicyInfo is one policy of an AclInfo.
type PolicyInfo struct {
	PolicyType string      `yaml:"policyType" json:"policyType"`
	Entries    []EntryInfo `yaml:"entries" json:"entries"`
}

// EntryInfo is one entry of a policy. actions is a list or a
// comma-separated string.
type EntryInfo struct {
	Resource  string      `yaml:"resource" json:"resource"`
	Actions   actionsList `yaml:"actions" json:"actions"`
	SourceIPs []string    `yaml:"sourceIps" json:"sourceIps"`
	Decision  string      `yaml:"decision" json:"decision"`
}

type actionsList []string

func (a *actionsList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*a = actionsList{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*a = list
	return nil
}

// Decode reads a policy file or an ACL 2.0 export (YAML or JSON; JSON may
// also be a bare array of AclInfo). A user without userType or userStatus
// is Normal or enabled; one without a secret has none.
func Decode(data []byte) ([]domain.UserRecord, []domain.ACLEntry, error) {
	imported, entries, err := DecodeImport(data)
	if err != nil {
		return nil, nil, err
	}
	users := make([]domain.UserRecord, len(imported))
	for i, u := range imported {
		users[i].Name = u.Name
		if u.Type != nil {
			users[i].Type = *u.Type
		}
		if u.Status != nil {
			users[i].Status = *u.Status
		}
		if u.Secret != nil {
			users[i].Secrets = []domain.Secret{u.Secret}
		}
	}
	return users, entries, nil
}

// DecodeImport reads what [Decode] reads for an import: a field a user
// leaves out (userType, userStatus, the secret; the format has no
// description) is nil, so that the import keeps the stored value of an
// existing user.
func DecodeImport(data []byte) ([]ports.ImportUser, []domain.ACLEntry, error) {
	if len(data) > MaxFileSize {
		return nil, nil, fmt.Errorf("the file is %d bytes, more than %d", len(data), MaxFileSize)
	}
	var f File
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := yaml.Unmarshal(trimmed, &f.ACLs); err != nil {
			return nil, nil, fmt.Errorf("not a list of ACLs: %v", yamlError(err))
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("not a policy file: %v", yamlError(err))
		}
	}
	return f.convert()
}

func (f File) convert() ([]ports.ImportUser, []domain.ACLEntry, error) {
	var users []ports.ImportUser
	seen := map[string]bool{}
	for i, u := range f.Users {
		name := u.Username
		if name == "" {
			name = u.Name
		}
		if err := domain.ValidateUserName(name); err != nil {
			return nil, nil, fmt.Errorf("user %d: %v", i+1, err)
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("user %q appears twice", name)
		}
		seen[name] = true
		rec := ports.ImportUser{Name: name}
		if u.UserType != "" {
			typ, err := domain.ParseUserType(u.UserType)
			if err != nil {
				return nil, nil, fmt.Errorf("user %q: %v", name, err)
			}
			rec.Type = &typ
		}
		if u.UserStatus != "" {
			status, err := domain.ParseUserStatus(u.UserStatus)
			if err != nil {
				return nil, nil, fmt.Errorf("user %q: %v", name, err)
			}
			rec.Status = &status
		}
		secret := u.Password
		if secret == "" {
			secret = u.Secret
		}
		if secret != "" {
			if err := domain.ValidateImportedSecret(domain.Secret(secret)); err != nil {
				return nil, nil, fmt.Errorf("user %q: %v", name, err)
			}
			rec.Secret = domain.Secret(secret)
		}
		users = append(users, rec)
	}
	var entries []domain.ACLEntry
	keys := map[string]bool{}
	for i, acl := range f.ACLs {
		if _, err := domain.ParseSubject(acl.Subject); err != nil {
			return nil, nil, fmt.Errorf("ACL %d: %v", i+1, err)
		}
		if len(acl.Policies) == 0 {
			return nil, nil, fmt.Errorf("ACL of %s has no policies", acl.Subject)
		}
		for _, p := range acl.Policies {
			ptype, err := domain.ParsePolicyType(p.PolicyType)
			if err != nil {
				return nil, nil, fmt.Errorf("ACL of %s: %v", acl.Subject, err)
			}
			if len(p.Entries) == 0 {
				return nil, nil, fmt.Errorf("ACL of %s: a %s policy has no entries", acl.Subject, ptype)
			}
			for _, ei := range p.Entries {
				e, err := ei.entry(acl.Subject, ptype)
				if err != nil {
					return nil, nil, fmt.Errorf("ACL of %s: %v", acl.Subject, err)
				}
				key := e.Subject + "\x00" + ptype.String() + "\x00" + e.Resource.Key()
				if keys[key] {
					return nil, nil, fmt.Errorf("ACL of %s: resource %s appears twice in its %s policy", acl.Subject, e.Resource.Key(), ptype)
				}
				keys[key] = true
				e.ID = int64(len(entries) + 1)
				entries = append(entries, e)
			}
		}
	}
	return users, entries, nil
}

func (ei EntryInfo) entry(subject string, ptype domain.PolicyType) (domain.ACLEntry, error) {
	res, err := domain.ParseResource(strings.TrimSpace(ei.Resource))
	if err != nil {
		return domain.ACLEntry{}, err
	}
	acts, err := domain.ParseActions(strings.Join(ei.Actions, ","))
	if err != nil {
		return domain.ACLEntry{}, fmt.Errorf("entry %s: %v", res.Key(), err)
	}
	if ei.Decision == "" {
		return domain.ACLEntry{}, fmt.Errorf("entry %s: decision (Allow or Deny) is required", res.Key())
	}
	d, err := domain.ParseDecision(ei.Decision)
	if err != nil {
		return domain.ACLEntry{}, fmt.Errorf("entry %s: %v", res.Key(), err)
	}
	e := domain.ACLEntry{Subject: canonicalSubject(subject), PolicyType: ptype, Resource: res, Actions: acts, Decision: d}
	for _, s := range ei.SourceIPs {
		p, err := domain.ParseSourceIP(s)
		if err != nil {
			return domain.ACLEntry{}, fmt.Errorf("entry %s: %v", res.Key(), err)
		}
		e.SourceIPs = append(e.SourceIPs, p)
	}
	return e, e.Validate()
}

// canonicalSubject writes User:<name> with upstream's capitalization.
func canonicalSubject(s string) string {
	_, name, _ := strings.Cut(s, ":")
	return domain.SubjectOf(name)
}
