package application_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// auditOnlyStore answers audit queries and records the last one.
type auditOnlyStore struct {
	ports.SecurityStore
	got *domain.AuditQuery
}

func (s auditOnlyStore) QueryAudit(_ context.Context, q domain.AuditQuery) ([]domain.AuditEvent, error) {
	*s.got = q
	return nil, nil
}

// TestQueryAuditRefusesUnknownFilters: the store matches decision and
// category exactly, so an unknown value found nothing and "rmqproxy audit
// query --category authorization" printed an empty log and exited 0.
func TestQueryAuditRefusesUnknownFilters(t *testing.T) {
	var got domain.AuditQuery
	a := application.NewSecurityAdmin(auditOnlyStore{got: &got})
	for _, q := range []domain.AuditQuery{
		{Decision: "FOO"}, {Decision: "deny"}, {Category: "authorization"}, {Category: "ADMIN"},
	} {
		_, err := a.QueryAudit(t.Context(), q)
		if domain.ReasonOf(err) != domain.ReasonBadRequest || !strings.Contains(err.Error(), "must be") {
			t.Errorf("%+v: got %v, want a bad request naming the values", q, err)
		}
	}
	for _, q := range []domain.AuditQuery{
		{}, {Decision: domain.AuditDeny, Category: domain.AuditAuthz}, {Decision: domain.AuditAllow, Category: domain.AuditAdmin},
		{Decision: domain.AuditError, Category: domain.AuditAuthn}, {Category: domain.AuditSystem},
	} {
		if _, err := a.QueryAudit(t.Context(), q); err != nil || got != q {
			t.Errorf("%+v: got %v (store saw %+v)", q, err, got)
		}
	}
}
