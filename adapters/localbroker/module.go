package localbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/brokermodule"
	"github.com/rmqproxy/rmqproxy/adapters/internal/listenaddr"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Config is the local broker's slice of rmqproxy's configuration.
type Config struct {
	DataDir          string        `yaml:"dataDir" help:"directory holding the commit log, consume queues, snapshots and metadata"`
	BrokerName       string        `yaml:"brokerName" help:"broker name shown in routes and receipt handles; no spaces"`
	StoreHost        string        `yaml:"storeHost" help:"ip:port recorded as the store host of stored messages; empty (the default): follows grpc.address, with 127.0.0.1 when that listens on every interface or names a host"`
	Flush            string        `yaml:"flush" enum:"sync,async" help:"sync: a send returns after fdatasync (survives power loss); async: after write(2), fdatasync every flushInterval (survives a process crash, a power loss may lose up to one interval)"`
	FlushInterval    time.Duration `yaml:"flushInterval" help:"how often written but unsynced commit-log bytes are fdatasync'ed"`
	GroupCommitWait  time.Duration `yaml:"groupCommitWait" help:"with flush: sync, the longest the commit-log writer waits for more sends before one fdatasync covers them all, when its previous fdatasync covered several (a lone sender never waits); 0 syncs as soon as anything is written"`
	SegmentSize      int64         `yaml:"segmentSize" unit:"bytes" help:"size of one commit-log segment file"`
	Preallocate      int64         `yaml:"preallocate" unit:"bytes" help:"zeros written ahead of the commit log's records, this many at a time (at most segmentSize), so that a send's fdatasync flushes its data without also committing a new file size (faster on ext4 and XFS); none while the disk has less than four times this free; 0 turns it off (copy-on-write file systems such as btrfs or ZFS gain nothing from it)"`
	MaxRecordSize    int64         `yaml:"maxRecordSize" unit:"bytes" help:"largest commit-log record (one send batch); must be smaller than segmentSize"`
	SnapshotInterval time.Duration `yaml:"snapshotInterval" help:"how often consumer state is checkpointed; shorter means faster restarts"`
	Retention        time.Duration `yaml:"retention" help:"commit-log segments older than this are deleted once a snapshot covers them; 0 keeps them forever"`
	Recovery         string        `yaml:"recovery" enum:"strict,truncate" help:"strict: refuse to start on a corrupt record followed by valid ones; truncate: drop the log from the first corrupt record (either way a torn last write and the never-synced tail a power loss leaves are cut, with a warning)"`
	MaxPendingBytes  int64         `yaml:"maxPendingBytes" unit:"bytes" help:"bound on the commit-log bytes accepted but not yet written; beyond it sends wait (within their deadline) and then get TOO_MANY_REQUESTS"`
	DiskReserve      int64         `yaml:"diskReserve" unit:"bytes" help:"space kept in a ballast file (<dataDir>/reserve) and given up when the disk is full, so that acknowledgements and receives go on while sends are refused; 0 turns it off"`
	// MaxInflightPerQueue bounds one consumer group's deliveries of one
	// queue not yet acked (each ~150 B of memory and snapshot).
	MaxInflightPerQueue int     `yaml:"maxInflightPerQueue" help:"deliveries one consumer group may hold unacked from one queue (each costs ~150 bytes of memory and of every snapshot); at the bound, receives get no new messages from that queue, only those visible again, until acks or invisible times that run out make room (as the Apache broker's popInflightMessageThreshold, which is off by default); 0: no limit"`
	DiskHighWater       float64 `yaml:"diskHighWater" help:"/readyz and grpc.health.v1 report not ready once the file system of dataDir is fuller than this fraction (0.95 = 95%); 0 turns the check off"`

	AutoCreateTopics    bool    `yaml:"autoCreateTopics" help:"create unknown topics on first use (route, send, receive)"`
	AutoCreateTopicType string  `yaml:"autoCreateTopicType" enum:"NORMAL,FIFO,DELAY,TRANSACTION,MIXED" help:"message type of auto-created topics: NORMAL, FIFO, DELAY, TRANSACTION or MIXED"`
	AutoCreateGroups    bool    `yaml:"autoCreateGroups" help:"create unknown consumer groups on first use (a consumer's settings, receive, pull, offset commit)"`
	AutoCreateMaxTopics int     `yaml:"autoCreateMaxTopics" help:"auto-creation creates no topic once this many topics exist (the client gets TOPIC_NOT_FOUND saying so); topics created with rmqproxy topic create are not limited"`
	AutoCreateMaxGroups int     `yaml:"autoCreateMaxGroups" help:"auto-creation creates no consumer group once this many groups exist (CONSUMER_GROUP_NOT_FOUND saying so)"`
	AutoCreateRate      float64 `yaml:"autoCreateRate" help:"at most this many topics and groups are auto-created per second, with bursts of one second's worth; beyond it the client gets TOO_MANY_REQUESTS and retries"`
	DefaultQueueCount   int32   `yaml:"defaultQueueCount" help:"queue count of auto-created topics"`

	TransactionTimeout        time.Duration `yaml:"transactionTimeout" help:"a half message neither committed nor rolled back this long after it was stored is checked back with a producer; when its producer gave an orphaned-transaction recovery duration of 1s or more, that duration (whole seconds, shorter or longer) instead, as a RocketMQ broker"`
	TransactionCheckInterval  time.Duration `yaml:"transactionCheckInterval" help:"how long to wait between two check-backs of the same unresolved half message"`
	TransactionCheckMax       int32         `yaml:"transactionCheckMax" help:"how many check-backs an unresolved half message gets before transactionCheckMaxAction applies; only those a connected producer took count (one that reached no producer is repeated one interval later)"`
	TransactionCheckMaxAction string        `yaml:"transactionCheckMaxAction" enum:"rollback,commit,keep" help:"what happens to a half message still unresolved after transactionCheckMax check-backs, or (unless retention is 0) retention after it was stored: rollback (discard it, logged as a warning), commit (deliver it) or keep (keep it, stop checking after the last check-back; it pins the commit log until resolved)"`
}

// DefaultConfig returns the configuration rmqproxy runs with when nothing is
// configured.
func DefaultConfig() Config {
	return Config{
		DataDir:             "./data",
		BrokerName:          "rmqproxy-local",
		StoreHost:           "127.0.0.1:8081",
		Flush:               "sync",
		FlushInterval:       200 * time.Millisecond,
		GroupCommitWait:     500 * time.Microsecond,
		SegmentSize:         1 << 30,
		Preallocate:         4 << 20,
		MaxRecordSize:       64 << 20,
		SnapshotInterval:    time.Minute,
		Retention:           72 * time.Hour,
		Recovery:            "strict",
		MaxPendingBytes:     64 << 20,
		DiskReserve:         64 << 20,
		DiskHighWater:       0.95,
		MaxInflightPerQueue: 100000,
		AutoCreateTopics:    true,
		AutoCreateTopicType: "MIXED",
		AutoCreateGroups:    true,
		AutoCreateMaxTopics: 1000,
		AutoCreateMaxGroups: 1000,
		AutoCreateRate:      100,
		DefaultQueueCount:   8,
		// Apache RocketMQ's BrokerConfig defaults: transactionTimeOut 6 s,
		// transactionCheckInterval 30 s, transactionCheckMax 15; upstream
		// discards the message after the last check.
		TransactionTimeout:        6 * time.Second,
		TransactionCheckInterval:  30 * time.Second,
		TransactionCheckMax:       15,
		TransactionCheckMaxAction: "rollback",
	}
}

// Validate checks the configuration; each message names the yaml key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if strings.TrimSpace(c.DataDir) == "" {
		bad("dataDir must not be empty")
	}
	if c.BrokerName == "" || strings.ContainsAny(c.BrokerName, " \t\r\n") {
		bad("brokerName must be non-empty and contain no whitespace (it is a field of space-separated receipt handles), got %q", c.BrokerName)
	}
	if _, err := netip.ParseAddrPort(c.StoreHost); err != nil {
		bad("storeHost must be ip:port, got %q%s", c.StoreHost, listenaddr.IPv6Hint(c.StoreHost, 8081))
	}
	switch c.Flush {
	case "sync", "async":
	default:
		bad("flush must be sync or async, got %q", c.Flush)
	}
	if c.FlushInterval <= 0 {
		bad("flushInterval must be > 0, got %v", c.FlushInterval)
	}
	if c.GroupCommitWait < 0 || c.GroupCommitWait > time.Second {
		bad("groupCommitWait must be between 0 and 1s, got %v", c.GroupCommitWait)
	}
	if c.MaxRecordSize < 1024 {
		bad("maxRecordSize must be at least 1024 bytes, got %d", c.MaxRecordSize)
	}
	if c.SegmentSize <= c.MaxRecordSize+64 {
		bad("segmentSize must be > maxRecordSize (+64 bytes of framing), got segmentSize %d and maxRecordSize %d", c.SegmentSize, c.MaxRecordSize)
	}
	if c.Preallocate < 0 {
		bad("preallocate must be >= 0 (0 turns it off), got %d", c.Preallocate)
	}
	if c.SnapshotInterval <= 0 {
		bad("snapshotInterval must be > 0, got %v", c.SnapshotInterval)
	}
	if c.Retention < 0 {
		bad("retention must be >= 0 (0 keeps segments forever), got %v", c.Retention)
	}
	if c.MaxPendingBytes < 1<<20 {
		bad("maxPendingBytes must be at least 1 MiB, got %d", c.MaxPendingBytes)
	}
	if c.DiskReserve < 0 {
		bad("diskReserve must be >= 0 (0 turns the reserve off), got %d", c.DiskReserve)
	}
	if !(c.DiskHighWater >= 0 && c.DiskHighWater < 1) {
		bad("diskHighWater must be a fraction in [0, 1) (0 turns the check off), got %v", c.DiskHighWater)
	}
	switch c.Recovery {
	case "strict", "truncate":
	default:
		bad("recovery must be strict or truncate, got %q", c.Recovery)
	}
	if _, err := domain.ParseTopicMessageType(c.AutoCreateTopicType); err != nil {
		bad("autoCreateTopicType must be NORMAL, FIFO, DELAY, TRANSACTION or MIXED, got %q", c.AutoCreateTopicType)
	}
	if c.AutoCreateMaxTopics < 0 {
		bad("autoCreateMaxTopics must be >= 0, got %d", c.AutoCreateMaxTopics)
	}
	if c.MaxInflightPerQueue < 0 {
		bad("maxInflightPerQueue must be >= 0 (0: no limit), got %d", c.MaxInflightPerQueue)
	}
	if c.AutoCreateMaxGroups < 0 {
		bad("autoCreateMaxGroups must be >= 0, got %d", c.AutoCreateMaxGroups)
	}
	if !(c.AutoCreateRate > 0) || math.IsInf(c.AutoCreateRate, 0) {
		bad("autoCreateRate must be a positive number of creations per second, got %v", c.AutoCreateRate)
	}
	if c.DefaultQueueCount < 1 || c.DefaultQueueCount > domain.MaxQueueCount {
		bad("defaultQueueCount must be in [1, %d], got %d", domain.MaxQueueCount, c.DefaultQueueCount)
	}
	if c.TransactionTimeout <= 0 {
		bad("transactionTimeout must be > 0, got %v", c.TransactionTimeout)
	}
	if c.TransactionCheckInterval <= 0 {
		bad("transactionCheckInterval must be > 0, got %v", c.TransactionCheckInterval)
	}
	if c.TransactionCheckMax < 1 {
		bad("transactionCheckMax must be at least 1, got %d", c.TransactionCheckMax)
	}
	switch c.TransactionCheckMaxAction {
	case "rollback", "commit", "keep":
	default:
		bad("transactionCheckMaxAction must be rollback, commit or keep, got %q", c.TransactionCheckMaxAction)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localbroker: %w", err)
	}
	return nil
}

// Module provides the embedded engine as *Engine, [ports.Broker],
// [ports.Metadata], [ports.Admin], [ports.Transactions], [ports.Recaller],
// [ports.Offsets], [ports.MessageLookup] and [ports.TopicQueueStats], and its readiness check ("localbroker", see
// [Engine.Ready]) to the health server. It takes Config, *slog.Logger and
// [ports.Clock] from the container; the engine recovers in OnStart and
// flushes, fsyncs and writes a final snapshot in OnStop. The hooks are
// appended by the module's invoke, not when the engine is built, so that
// modules listed before it (the health server) start before recovery and
// report it.
var Module = brokermodule.Module("localbroker", newModuleEngine,
	func(e *Engine) func(context.Context) error { return e.Ready },
	new(ports.TopicQueueStats),
)

func newModuleEngine(cfg Config, log *slog.Logger, clock ports.Clock) (*Engine, error) {
	e, err := New(cfg, log, clock)
	if err != nil {
		return nil, err
	}
	// Checked when the engine is built, before anything else uses the
	// directory (the gRPC server keeps its self-signed certificate under
	// it): the first error then names the setting to fix.
	if err := CheckDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	return e, nil
}

// CheckDataDir checks that dir (local.dataDir) is, or can be created as, a
// directory that rmqproxy can read and write; the error names the setting
// and the cause.
func CheckDataDir(dir string) error {
	bad := func(what string, err error) error {
		return fmt.Errorf("local.dataDir %q %s: %w; choose another directory with --local.dataDir", dir, what, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return bad("cannot be created", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return bad("cannot be read", err)
	}
	if !st.IsDir() {
		return bad("is not a directory", errors.New("a file is in its place"))
	}
	if _, err := os.ReadDir(dir); err != nil {
		return bad("cannot be read", err)
	}
	f, err := os.CreateTemp(dir, ".rmqproxy-write-check-*")
	if err != nil {
		return bad("is not writable", err)
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return bad("is not writable", err)
	}
	return nil
}

// Open creates an engine and recovers it from cfg.DataDir: New then Start.
func Open(ctx context.Context, cfg Config, log *slog.Logger, clock ports.Clock) (*Engine, error) {
	e, err := New(cfg, log, clock)
	if err != nil {
		return nil, err
	}
	if err := e.Start(ctx); err != nil {
		return nil, err
	}
	return e, nil
}
