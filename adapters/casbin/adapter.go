package casbin

import (
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"

	"github.com/rmqproxy/rmqproxy/domain"
)

// ErrReadOnly is returned by every write of [Adapter]: policies change in
// the policy store (PostgreSQL or the policy file), never through casbin.
var ErrReadOnly = errors.New("the rmqproxy casbin adapter is read-only: change policies with rmqproxy acl")

// Adapter hands a snapshot's ACL entries to casbin, as rows of the model's
// policy definition (priority, sub, res, act, ips, eft, id). It is
// read-only and supports filtering by subject (a string filter).
type Adapter struct {
	mode     domain.ConflictMode
	entries  []domain.ACLEntry
	filtered bool
}

var (
	_ persist.Adapter         = (*Adapter)(nil)
	_ persist.FilteredAdapter = (*Adapter)(nil)
)

// NewAdapter returns an adapter over entries, ranked for mode.
func NewAdapter(entries []domain.ACLEntry, mode domain.ConflictMode) *Adapter {
	sorted := append([]domain.ACLEntry(nil), entries...)
	// Equal priorities keep id order (casbin's sort is stable), as
	// domain.EvaluateACL breaks ties.
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	return &Adapter{mode: mode, entries: sorted}
}

// Row returns the policy row of an entry.
func Row(e domain.ACLEntry, mode domain.ConflictMode) []string {
	eft := "allow"
	if e.Decision == domain.Deny {
		eft = "deny"
	}
	return []string{"p", strconv.Itoa(e.Priority(mode)), e.Subject, e.Resource.Key(),
		strconv.FormatUint(uint64(e.Actions), 10), ipsText(e), eft, strconv.FormatInt(e.ID, 10)}
}

func ipsText(e domain.ACLEntry) string {
	parts := make([]string, len(e.SourceIPs))
	for i, p := range e.SourceIPs {
		parts[i] = p.String()
	}
	return strings.Join(parts, " ")
}

// LoadPolicy loads every entry.
func (a *Adapter) LoadPolicy(m model.Model) error {
	a.filtered = false
	return a.load(m, func(domain.ACLEntry) bool { return true })
}

// LoadFilteredPolicy loads the entries of one subject (filter is the
// subject string).
func (a *Adapter) LoadFilteredPolicy(m model.Model, filter interface{}) error {
	subject, ok := filter.(string)
	if !ok {
		return errors.New("the rmqproxy casbin adapter filters by subject (a string)")
	}
	a.filtered = true
	return a.load(m, func(e domain.ACLEntry) bool { return e.Subject == subject })
}

func (a *Adapter) load(m model.Model, keep func(domain.ACLEntry) bool) error {
	for _, e := range a.entries {
		if !keep(e) {
			continue
		}
		if err := persist.LoadPolicyArray(Row(e, a.mode), m); err != nil {
			return err
		}
	}
	return nil
}

// IsFiltered reports whether the last load was filtered.
func (a *Adapter) IsFiltered() bool { return a.filtered }

// SavePolicy implements persist.Adapter; it always fails.
func (a *Adapter) SavePolicy(model.Model) error { return ErrReadOnly }

// AddPolicy implements persist.Adapter; it always fails.
func (a *Adapter) AddPolicy(string, string, []string) error { return ErrReadOnly }

// RemovePolicy implements persist.Adapter; it always fails.
func (a *Adapter) RemovePolicy(string, string, []string) error { return ErrReadOnly }

// RemoveFilteredPolicy implements persist.Adapter; it always fails.
func (a *Adapter) RemoveFilteredPolicy(string, string, int, ...string) error { return ErrReadOnly }
