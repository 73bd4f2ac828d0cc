package postgres

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rmqproxy/rmqproxy/domain"
)

var passwordPattern = regexp.MustCompile(`(?i)(password=|://[^:/@\s]*:)[^@\s]*`)

// redactedError hides passwords that a driver error might quote.
type redactedError struct{ err error }

func (e redactedError) Error() string {
	return passwordPattern.ReplaceAllString(e.err.Error(), "${1}REDACTED")
}
func (e redactedError) Unwrap() error { return e.err }

func redact(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{err}
}

// storeError turns a database error into a domain error: constraint
// violations are the caller's (bad request, already exists), connection
// trouble is unavailable (retryable), anything else internal.
func storeError(op string, err error) error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return domain.Wrap(domain.ReasonAlreadyExists, err, op+": it already exists")
		case "23514", "23502", "22001", "22P02", "23503", "22021": // check, not null, too long, invalid text, foreign key, bad encoding
			return domain.Wrap(domain.ReasonBadRequest, err, op+": the value is not accepted ("+pgErr.ConstraintName+")")
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isConnError(err) {
		return domain.Wrap(domain.ReasonUnavailable, redact(err), op+": PostgreSQL is unavailable; try again")
	}
	return fmt.Errorf("%s: %w", op, redact(err))
}

func isConnError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || errors.Is(err, errClosedPool)
}

var errClosedPool = errors.New("closed pool")
