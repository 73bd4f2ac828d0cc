package postgres

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config is the PostgreSQL slice of the configuration (key postgres).
type Config struct {
	DSN             string        `yaml:"dsn" secret:"true" help:"PostgreSQL connection string for users, ACL policies and the audit log (auth.source postgres), e.g. postgres://rmqproxy:PASSWORD@db:5432/rmqproxy?sslmode=verify-full&sslrootcert=/etc/rmqproxy/pg-ca.pem (sslcert and sslkey add a client certificate)"`
	MaxConns        int32         `yaml:"maxConns" help:"connections in the pool (admin changes, policy reloads and audit writes; requests never wait on PostgreSQL)"`
	SecretKeys      string        `yaml:"secretKeys" secret:"true" help:"keys that encrypt user secrets at rest: comma-separated ID:BASE64 pairs of 32-byte AES-256 keys (e.g. k1:..., from head -c32 /dev/urandom | base64); keep old keys listed while secrets still use them"`
	ActiveSecretKey string        `yaml:"activeSecretKey" help:"ID (in secretKeys) of the key that encrypts new and changed secrets; empty: the only key"`
	ReloadInterval  time.Duration `yaml:"reloadInterval" help:"how often the policy revision is checked as a backstop to LISTEN/NOTIFY (a missed notification is caught within this time)"`
	ReconnectDelay  time.Duration `yaml:"reconnectDelay" help:"wait between attempts to reconnect the LISTEN connection while PostgreSQL is unreachable"`
	Audit           AuditConfig   `yaml:"audit"`
}

// AuditConfig tunes the audit writer.
type AuditConfig struct {
	BufferSize    int           `yaml:"bufferSize" help:"audit events held in memory while they wait to be written (or while PostgreSQL is down); more are dropped and counted"`
	BatchSize     int           `yaml:"batchSize" help:"most audit events written in one batch"`
	FlushInterval time.Duration `yaml:"flushInterval" help:"longest time an audit event waits before its batch is written"`
}

// DefaultConfig returns the defaults: no database.
func DefaultConfig() Config {
	return Config{
		MaxConns:       8,
		ReloadInterval: 30 * time.Second,
		ReconnectDelay: time.Second,
		Audit:          AuditConfig{BufferSize: 65536, BatchSize: 1000, FlushInterval: 200 * time.Millisecond},
	}
}

// Validate checks the settings; an empty DSN is valid (no database).
func (c Config) Validate() error {
	var errs []error
	if c.DSN != "" {
		errs = append(errs, CheckDSN(c.DSN))
	}
	if c.SecretKeys != "" {
		if _, err := ParseKeyring(c.SecretKeys, c.ActiveSecretKey); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MaxConns < 2 {
		errs = append(errs, fmt.Errorf("maxConns must be at least 2, not %d", c.MaxConns))
	}
	if c.ReloadInterval < time.Second {
		errs = append(errs, fmt.Errorf("reloadInterval must be at least 1s, not %v", c.ReloadInterval))
	}
	if c.ReconnectDelay <= 0 {
		errs = append(errs, fmt.Errorf("reconnectDelay must be positive, not %v", c.ReconnectDelay))
	}
	if c.Audit.BufferSize < 1 {
		errs = append(errs, fmt.Errorf("audit.bufferSize must be at least 1, not %d", c.Audit.BufferSize))
	}
	if c.Audit.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("audit.batchSize must be at least 1, not %d", c.Audit.BatchSize))
	}
	if c.Audit.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("audit.flushInterval must be positive, not %v", c.Audit.FlushInterval))
	}
	return errors.Join(errs...)
}

// CheckDSN reports a dsn that is not a PostgreSQL connection string,
// without quoting it (pgx's message may quote the DSN, password included).
// Its message starts with the key, dsn.
func CheckDSN(dsn string) error {
	if _, err := pgx.ParseConfig(dsn); err != nil {
		return errors.New("dsn is not a PostgreSQL connection string (postgres://user:password@host:5432/database?sslmode=verify-full or key=value form)")
	}
	return nil
}

// RequireVerifiedTLS reports an error unless dsn verifies the server's
// certificate (sslmode=verify-full) or connects over loopback or a Unix
// socket. The production profile requires it: sslmode require encrypts
// without checking whom it talks to.
func RequireVerifiedTLS(dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return errors.New("dsn is not a PostgreSQL connection string")
	}
	hosts := []string{cfg.Host}
	for _, fb := range cfg.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	local := true
	for _, h := range hosts {
		if strings.HasPrefix(h, "/") || h == "localhost" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
			continue
		}
		local = false
	}
	if local {
		return nil
	}
	if cfg.TLSConfig == nil || cfg.TLSConfig.InsecureSkipVerify || cfg.TLSConfig.ServerName == "" {
		return fmt.Errorf("dsn must verify the server's certificate (sslmode=verify-full, with sslrootcert) when PostgreSQL is not on loopback; the production profile refuses sslmode disable, allow, prefer and require")
	}
	return nil
}
