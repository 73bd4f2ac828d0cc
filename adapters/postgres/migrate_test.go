package postgres_test

import (
	"sync"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/migrations"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
)

// TestConcurrentMigrateUp: deploy jobs of several proxies (or init
// containers) run "rmqproxy migrate up" on a fresh database at once; each
// must succeed and leave the latest schema. The schema used to be created
// outside any lock, and CREATE SCHEMA IF NOT EXISTS run twice at once
// fails one of them (duplicate key in pg_namespace).
func TestConcurrentMigrateUp(t *testing.T) {
	server := pgenv.ServerDSN(t)
	for round := range 10 {
		dsn := pgenv.NewDatabase(t, server)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				st, err := postgres.Migrate(t.Context(), dsn, postgres.MigrateUp, 0)
				if err == nil && st.Version != migrations.Latest() {
					t.Errorf("round %d, run %d: version %d after up", round, i, st.Version)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, run %d: %v", round, i, err)
			}
		}
	}
}
