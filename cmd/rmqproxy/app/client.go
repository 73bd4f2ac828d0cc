package app

import (
	"errors"
	"fmt"
	"slices"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
)

// The settings each client command reads from the configuration it may
// share with the server; they are loaded with config.LoadFor, which
// applies no server validation, and checked by the command (see
// CheckPostgresClient, and the admin commands' address check).
var (
	// AdminClientKeys are what the topic, group and client commands read.
	AdminClientKeys = []string{"admin.address", "admin.tls.enabled", "admin.accessKey", "admin.secretKey"}
	// MigrateKeys are what the migrate command reads.
	MigrateKeys = []string{"profile", "postgres.dsn"}
	// AuditClientKeys are what the audit command reads (auth.source and
	// auth.file only to say where a proxy with a policy file keeps its
	// audit events).
	AuditClientKeys = []string{"profile", "postgres.dsn", "auth.source", "auth.file"}
	// SecurityClientKeys are what the user and acl commands read: also
	// the keys user secrets are encrypted with.
	SecurityClientKeys = append(slices.Clip(AuditClientKeys), "postgres.secretKeys", "postgres.activeSecretKey")
)

// CheckPostgresClient checks the settings the migrate, user, acl and audit
// commands connect to PostgreSQL with, each error naming its key: profile,
// postgres.dsn (a connection string; in the production profile one that
// verifies the server's certificate, as for the proxy, since the command
// sends the same credentials), and with keys postgres.secretKeys and
// postgres.activeSecretKey when set. The proxy's other requirements (a
// database and keys for auth.enabled, pool sizes, listeners, files) are
// not the commands' and are left to Validate.
func (r Root) CheckPostgresClient(keys bool) error {
	var errs []error
	if r.Profile != ProfileDevelopment && r.Profile != ProfileProduction {
		errs = append(errs, fmt.Errorf("profile %q must be development or production", r.Profile))
	}
	if r.Postgres.DSN != "" {
		err := postgres.CheckDSN(r.Postgres.DSN)
		if err == nil && r.Profile == ProfileProduction {
			err = postgres.RequireVerifiedTLS(r.Postgres.DSN)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("postgres.%w", err))
		}
	}
	if keys && r.Postgres.SecretKeys != "" {
		if _, err := postgres.ParseKeyring(r.Postgres.SecretKeys, r.Postgres.ActiveSecretKey); err != nil {
			errs = append(errs, fmt.Errorf("postgres.%w", err))
		}
	}
	return errors.Join(errs...)
}
