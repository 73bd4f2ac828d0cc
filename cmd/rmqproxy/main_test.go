package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, config.Sources{}, &o, &e)
	return code, o.String(), e.String()
}

// TestHelp: every way of asking for help prints it on stdout and exits 0;
// the top-level help lists the commands.
func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string // substrings of stdout
	}{
		{[]string{"--help"}, []string{"rmqproxy topic create|", "rmqproxy group create|", "rmqproxy version", "rmqproxy config print", "rmqproxy serve --help"}},
		{[]string{"-h"}, []string{"rmqproxy topic create|"}},
		{[]string{"help"}, []string{"rmqproxy topic create|"}},
		{[]string{"help", "help"}, []string{"rmqproxy topic create|"}},
		{[]string{"help", "serve"}, []string{"Usage: rmqproxy [serve]", "--grpc.address", "--shutdown.grpcDrain", "RMQPROXY_LOCAL_DATA_DIR"}},
		{[]string{"serve", "--help"}, []string{"Usage: rmqproxy [serve]", "--local.flush"}},
		{[]string{"--grpc.address=:1", "--help"}, []string{"Usage: rmqproxy [serve]"}},
		{[]string{"config", "--help"}, []string{"Usage: rmqproxy config print", "--local.flush"}},
		{[]string{"config", "print", "-h"}, []string{"Usage: rmqproxy config print", "--local.flush"}},
		{[]string{"help", "topic"}, []string{"rmqproxy topic describe NAME", "--admin.address", "--wait"}},
		{[]string{"topic", "--help"}, []string{"rmqproxy topic describe NAME", "create makes a NORMAL topic with 8 queues", "a queue count can\nonly grow"}},
		{[]string{"group", "-h"}, []string{"rmqproxy group stats NAME", "--maxDeliveryAttempts"}},
		{[]string{"group", "stats", "--help"}, []string{"rmqproxy group stats NAME"}},
		{[]string{"help", "version"}, []string{"rmqproxy version"}},
		{[]string{"version", "--help"}, []string{"rmqproxy version"}},
		{[]string{"help", "--help"}, []string{"rmqproxy topic create|"}},
		{[]string{"migrate", "--help"}, []string{"rmqproxy migrate up"}},
		{[]string{"migrate", "up", "--help"}, []string{"rmqproxy migrate up"}},
		{[]string{"migrate", "down", "-h"}, []string{"rmqproxy migrate down"}},
		{[]string{"migrate", "version", "--help"}, []string{"rmqproxy migrate version"}},
		{[]string{"user", "create", "--help"}, []string{"rmqproxy user create NAME"}},
		{[]string{"acl", "import", "--help"}, []string{"rmqproxy acl import"}},
		{[]string{"audit", "query", "--help"}, []string{"rmqproxy audit query"}},
		{[]string{"client", "stack", "--help"}, []string{"rmqproxy client stack CLIENT_ID", "print JSON (every command but delete)"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestHelpListsEverySubcommand: the top-level help left out "group reset"
// ("rmqproxy group create|update|delete|list|describe|stats ..."), so a
// user reading --help did not learn the group's offsets could be reset.
// Every subcommand a command's own help shows is now on its line of the
// top-level help.
func TestHelpListsEverySubcommand(t *testing.T) {
	_, top, _ := runCLI("--help")
	for _, cmd := range []string{"topic", "group", "client", "migrate", "user", "acl", "audit", "config"} {
		var line string
		for _, l := range strings.Split(top, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "rmqproxy "+cmd+" ") {
				line = l
				break
			}
		}
		if line == "" {
			t.Errorf("top-level help has no line for %q:\n%s", cmd, top)
			continue
		}
		_, own, _ := runCLI(cmd, "--help")
		for _, l := range strings.Split(own, "\n") {
			f := strings.Fields(l)
			if len(f) < 3 || f[0] != "rmqproxy" || f[1] != cmd || strings.HasPrefix(f[2], "-") || strings.ToUpper(f[2]) == f[2] {
				continue
			}
			verbs := strings.FieldsFunc(strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "rmqproxy "+cmd+" "))[0], func(r rune) bool { return r == '|' })
			if !slices.Contains(verbs, f[2]) {
				t.Errorf("top-level help line %q lacks %q, which \"rmqproxy %s --help\" shows", strings.TrimSpace(line), f[2], cmd)
			}
		}
	}
}

// TestUsageErrors: mistakes exit 2 with a message on stderr that suggests
// the nearest command.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"tpoic", "list"}, `unknown command "tpoic" (did you mean topic?)`},
		{[]string{"sreve"}, `unknown command "sreve" (did you mean serve?)`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"; run "rmqproxy help"`},
		{[]string{"help", "gruop"}, `no help for "gruop" (did you mean group?)`},
		{[]string{"config"}, "rmqproxy config needs a command"},
		{[]string{"config", "prnit"}, `unknown config command "prnit" (did you mean print?)`},
		{[]string{"version", "x"}, "rmqproxy version takes no arguments"},
		{[]string{"topic"}, "rmqproxy topic needs a command"},
		// 0 means "not given" to the admin API: said, not silently 8 (17).
		{[]string{"topic", "create", "t", "--queues", "0", "--wait", "0"}, "--queues 0: a topic needs at least 1 queue"},
		{[]string{"topic", "update", "t", "--queues=0", "--wait", "0"}, "--queues 0: a topic needs at least 1 queue"},
		{[]string{"group", "create", "g", "--maxDeliveryAttempts", "0", "--wait", "0"}, "--maxDeliveryAttempts 0: a message gets at least 1 delivery"},
		// Below 0 is said here too, not sent for the proxy to refuse with
		// exit 1 (or, with no proxy running, a connection error).
		{[]string{"topic", "create", "t", "--queues", "-1", "--wait", "0", "--admin.address", "127.0.0.1:1"}, "--queues -1: a topic needs at least 1 queue"},
		{[]string{"group", "update", "g", "--maxDeliveryAttempts=-3", "--wait", "0", "--admin.address", "127.0.0.1:1"}, "--maxDeliveryAttempts -3: a message gets at least 1 delivery"},
		// A negative N is a number the user got wrong, not an unknown flag.
		{[]string{"migrate", "down", "-1"}, `migrate down takes a number of migrations (1 or more) or --all, not "-1"`},
		{[]string{"audit", "query", "--limit", "0"}, "--limit 0: audit query prints 1 to 10000 events"},
		{[]string{"audit", "query", "--limit=10001"}, "--limit 10001: audit query prints 1 to 10000 events"},
		// A number the flag package cannot parse is said as such, not as a
		// bare "parse error".
		{[]string{"audit", "query", "--limit", "ten"}, `invalid value "ten" for flag --limit: not a whole number`},
		{[]string{"user", "list", "--json=yes"}, `invalid boolean value "yes" for --json: not true or false`},
		{[]string{"client", "stack"}, "client stack needs exactly one client id"},
		{[]string{"client", "verify", "id", "--topic", "t", "--message-id", "m"}, `unknown flag "--message-id" (did you mean --messageId?)`},
		{[]string{"client", "lsit"}, `unknown client command "lsit" (did you mean list?)`},
		{[]string{"--verison"}, `unknown flag "--verison" (did you mean --version?)`},
		{[]string{"--hlep"}, `unknown flag "--hlep" (did you mean --help?)`},
		{[]string{"config", "print", "-hepl"}, `unknown flag "--hepl" (did you mean --help?)`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != 2 || out != "" || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tt.want)
			}
		})
	}
}

// TestConfigErrorsNameFullKeys: a bad setting is reported under its full
// key, as the user wrote it.
func TestConfigErrorsNameFullKeys(t *testing.T) {
	code, _, errOut := runCLI("config", "print", "--local.flushInterval=0s", "--auth.cacheSize=-1", "--shutdown.grpcDrain=0s")
	for _, want := range []string{"local.flushInterval must be > 0, got 0s", "auth.cacheSize must not be negative", "shutdown.grpcDrain must be positive"} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}
}

// TestCommandLineSettingErrorsAreUsageErrors: a mistake on the command line
// itself (a misspelled setting flag, a flag value that does not parse, a
// stray argument) exits 2 like every other usage error, with serve, config
// print and the commands that take settings; a configuration that reads but
// is wrong (a value Validate refuses, a bad file or environment variable)
// exits 1, as a failed start does.
func TestCommandLineSettingErrorsAreUsageErrors(t *testing.T) {
	usage := []struct {
		args []string
		want string
	}{
		{[]string{"--grpc.adress=:1"}, `unknown flag "--grpc.adress" (did you mean --grpc.address?)`},
		{[]string{"serve", "--grpc.maxConnections=lots"}, `flag --grpc.maxConnections: invalid value "lots"`},
		{[]string{"config", "print", "--log.level=loud"}, `flag --log.level: invalid value "loud": must be debug, info, warn or error`},
		{[]string{"config", "print", "--auth.conflictResolution=strict"}, `flag --auth.conflictResolution: invalid value "strict": must be deny_overrides or rocketmq`},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"config", "print", "--confg", "x.yaml"}, `unknown flag "--confg" (did you mean --config?)`},
		{[]string{"migrate", "version", "--postgres.dns=x"}, `unknown flag "--postgres.dns" (did you mean --postgres.dsn?)`},
		{[]string{"user", "list", "--postgres.dns=x"}, `unknown flag "--postgres.dns" (did you mean --postgres.dsn?)`},
	}
	for _, tt := range usage {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != 2 || out != "" || !strings.HasPrefix(errOut, "usage: ") || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tt.want)
			}
		})
	}
	file := filepath.Join(t.TempDir(), "rmqproxy.yaml")
	if err := os.WriteFile(file, []byte("grpc:\n  adress: :1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"config", "print", "--shutdown.grpcDrain=0s"},
		{"config", "print", "--config", file},
	} {
		if code, _, errOut := runCLI(args...); code != 1 || !strings.HasPrefix(errOut, "rmqproxy: invalid configuration:") {
			t.Errorf("%q: exit %d, stderr %q; want 1", args, code, errOut)
		}
	}
	var o, e bytes.Buffer
	if code := run([]string{"config", "print"}, config.Sources{Env: []string{"RMQPROXY_GRPC_MAX_CONNECTIONS=lots"}}, &o, &e); code != 1 {
		t.Errorf("a bad environment variable: exit %d, stderr %q; want 1", code, e.String())
	}
}

// TestConfigErrorsNameTheKeyAtFault: a bad value is reported once, under
// the key that holds it, with the value; not as a rule over a group of
// settings that leaves the operator to find the one at fault.
func TestConfigErrorsNameTheKeyAtFault(t *testing.T) {
	tests := []struct{ arg, want string }{
		{"--messaging.limits.maxUserPropertyCount=-1", "messaging.limits.maxUserPropertyCount must not be negative (0: no limit), not -1"},
		{"--messaging.limits.maxMessageGroupSize=-2", "messaging.limits.maxMessageGroupSize must not be negative (0: no limit), not -2"},
		{"--messaging.limits.maxDelay=-1s", "messaging.limits.maxDelay must not be negative (0: no limit), not -1s"},
		{"--messaging.limits.maxTransactionRecovery=-1h", "messaging.limits.maxTransactionRecovery must not be negative (0: no limit), not -1h0m0s"},
		{"--messaging.consumer.maxBatchSize=0", "messaging.consumer.maxBatchSize must be at least 1, not 0"},
		{"--auth.auditCoalesce.maxKeys=0", "auth.auditCoalesce.maxKeys must be at least 1 (or window 0), not 0"},
		{"--auth.auditCoalesce.window=2h", "auth.auditCoalesce.window must be between 0 and 1h, not 2h0m0s"},
		{"--postgres.reconnectDelay=0s", "postgres.reconnectDelay must be positive, not 0s"},
		{"--postgres.audit.batchSize=0", "postgres.audit.batchSize must be at least 1, not 0"},
		{"--metrics.maxGroups=-1", `metrics.maxGroups must not be negative (0 counts every group under "_other"), not -1`},
		{"--metrics.otlpInterval=-1s", "metrics.otlpInterval must be at least 1s, not -1s"},
		// Rules over two settings name both, in full, with their values,
		// and say what to set.
		{"--messaging.producer.maxAttempts=0", "messaging.producer.maxAttempts must be at least 1, not 0"},
		{"--messaging.producer.backoffInitial=0s", "messaging.producer.backoffInitial must be positive, not 0s"},
		{"--messaging.producer.backoffMax=1ms", "messaging.producer.backoffMax (1ms) must not be shorter than messaging.producer.backoffInitial (10ms): set messaging.producer.backoffMax to 10ms or more, or messaging.producer.backoffInitial to 1ms or less"},
		{"--messaging.producer.backoffMultiplier=0.5", "messaging.producer.backoffMultiplier must be at least 1 (1: the same wait before every attempt), not 0.5"},
		{"--messaging.consumer.minInvisibleTime=-1s", "messaging.consumer.minInvisibleTime must not be negative, not -1s"},
		{"--messaging.consumer.maxInvisibleTime=1s", "messaging.consumer.maxInvisibleTime (1s) must not be shorter than messaging.consumer.minInvisibleTime (10s): set messaging.consumer.maxInvisibleTime to 10s or more, or messaging.consumer.minInvisibleTime to 1s or less"},
		{"--messaging.consumer.minLongPolling=0s", "messaging.consumer.minLongPolling must be positive, not 0s"},
		{"--messaging.consumer.maxLongPolling=1s", "messaging.consumer.maxLongPolling (1s) must not be shorter than messaging.consumer.minLongPolling (5s): set messaging.consumer.maxLongPolling to 5s or more, or messaging.consumer.minLongPolling to 1s or less"},
		{"--messaging.consumer.renewPeriod=0s", "messaging.consumer.renewPeriod must be positive with messaging.consumer.autoRenew on, not 0s"},
		{"--messaging.consumer.renewMaxTime=0s", "messaging.consumer.renewMaxTime must be positive with messaging.consumer.autoRenew on, not 0s"},
		{"--messaging.consumer.renewAhead=2m", "messaging.consumer.defaultInvisibleTime (1m0s) must exceed messaging.consumer.renewAhead (2m0s) with messaging.consumer.autoRenew on, or messages turn visible before they are renewed: set messaging.consumer.defaultInvisibleTime above 2m0s, or messaging.consumer.renewAhead below 1m0s"},
		{"--messaging.consumer.renewAhead=5s", "messaging.consumer.renewAhead (5s) must exceed messaging.consumer.renewPeriod (5s) with messaging.consumer.autoRenew on, or messages turn visible between two renewals and are delivered again: set messaging.consumer.renewAhead above 5s, or messaging.consumer.renewPeriod below 5s"},
		{"--messaging.consumer.invisibleTimeOnClear=-1s", "messaging.consumer.invisibleTimeOnClear must not be negative, not -1s"},
		{"--messaging.clients.expiryTimeout=5s", "messaging.clients.expiryTimeout must be at least 10s (clients heartbeat every 10s), not 5s"},
		{"--messaging.clients.maxClients=0", "messaging.clients.maxClients must be at least 1, not 0"},
		{"--messaging.clients.maxClientsPerUser=-1", "messaging.clients.maxClientsPerUser must not be negative (0: no bound but messaging.clients.maxClients), not -1"},
		{"--messaging.clients.commandTimeout=30s", "messaging.clients.commandTimeout must be more than 0 and at most 25s (the admin CLI waits 30s for an answer), such as 5s, not 30s"},
		{"--traffic.maxInflightPerUser=-1", "traffic.maxInflightPerUser must not be negative (0: no limit), not -1"},
		{"--auth.cacheSize=-1", "auth.cacheSize must not be negative (0: no cache), not -1"},
		{"--postgres.maxConns=1", "postgres.maxConns must be at least 2, not 1"},
		{"--cluster.acl.secretKey=Zq9Xk7", "cluster.acl.secretKey is set but cluster.acl.accessKey is empty: set both (the user the brokers' ACL knows rmqproxy as) or neither"},
		{"--cluster.acl.accessKey=rmqproxy", `cluster.acl.accessKey "rmqproxy" is set but cluster.acl.secretKey is empty: set both (the user the brokers' ACL knows rmqproxy as) or neither`},
		{"--grpc.tls.certFile=main.go", `grpc.tls.certFile "main.go" is set but grpc.tls.keyFile is empty: set both (a PEM certificate chain and its private key) or neither (a self-signed certificate)`},
		{"--metrics.otlp --metrics.otlpInterval=500ms", "metrics.otlpInterval must be at least 1s, not 500ms"},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			code, _, errOut := runCLI(append([]string{"config", "print"}, strings.Fields(tt.arg)...)...)
			if want := "rmqproxy: invalid configuration:\n" + tt.want + "\n"; code != 1 || errOut != want {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and:\n%s", code, errOut, want)
			}
		})
	}
}

// TestConfigErrorsHideUserinfo: a user name and password written into a
// URL or address setting never reach the error that refuses it (which
// config print and serve print, and a supervisor logs): they show as
// user:REDACTED@. otlp.endpoint and cluster.nameServers refuse userinfo,
// which they would not send.
func TestConfigErrorsHideUserinfo(t *testing.T) {
	for _, arg := range []string{
		"--otlp.endpoint=https://user:Zq9Xk7@collector:4317",
		"--otlp.endpoint=https://user:Zq9Xk7@collector:99999",
		"--cluster.nameServers=user:Zq9Xk7@ns:9876",
		"--cluster.nameServers=Zq9Xk7@ns:9876",
		"--admin.allowedHosts=user:Zq9Xk7@proxy.example.com",
		"--grpc.address=user:Zq9Xk7@host:8081",
		"--health.address=user:Zq9Xk7@host:9090",
		"--admin.address=user:Zq9Xk7@host:8082",
		"--admin.address=user:Zq9Xk7@host:x",
	} {
		t.Run(arg, func(t *testing.T) {
			code, out, errOut := runCLI("config", "print", arg)
			if code != 1 || strings.Contains(out+errOut, "Zq9Xk7") || !strings.Contains(errOut, "REDACTED@") {
				t.Errorf("exit %d, stdout has the password: %v, stderr:\n%s\nwant exit 1 and the password shown as REDACTED", code, strings.Contains(out, "Zq9Xk7"), errOut)
			}
		})
	}
	// The admin commands' --admin.address takes a URL too.
	for _, addr := range []string{"https://user:Zq9Xk7@127.0.0.1:1", "ftp://user:Zq9Xk7@127.0.0.1:1"} {
		code, out, errOut := runCLI("topic", "list", "--admin.address", addr)
		if code != 1 || strings.Contains(out+errOut, "Zq9Xk7") || !strings.Contains(errOut, `admin address "`+strings.Split(addr, "//")[0]+`//user:REDACTED@127.0.0.1:1"`) {
			t.Errorf("topic list --admin.address %s: exit %d, stdout %q, stderr %q; want exit 1 and the password shown as REDACTED", addr, code, out, errOut)
		}
	}
	code, _, errOut := runCLI("config", "print", "--otlp.endpoint=https://user:Zq9Xk7@collector:4317")
	if want := `otlp.endpoint "https://user:REDACTED@collector:4317" must not carry a user name or password`; code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "otlp.headers") {
		t.Errorf("exit %d, stderr:\n%s\nwant %q and a pointer to otlp.headers", code, errOut, want)
	}
}

// TestListenAddressWithAUserPartIsRefused: a listen address with a user
// part (user@host:port) passed validation, since net.SplitHostPort takes
// "user@127.0.0.1" for a host, and serve failed only when it listened,
// after opening the broker. It is an invalid configuration naming the key
// and the form expected, the user part (which may be a credential) shown
// redacted.
func TestListenAddressWithAUserPartIsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, key := range []string{"grpc.address", "health.address", "admin.address"} {
		for _, addr := range []string{"Zq9Xk7@127.0.0.1:0", "user:Zq9Xk7@127.0.0.1:0"} {
			serve := []string{"serve", "--local.dataDir=" + filepath.Join(dir, "data"), "--grpc.address=127.0.0.1:0", "--health.address=127.0.0.1:0", "--admin.address=127.0.0.1:0"}
			for _, cmd := range [][]string{{"config", "print"}, serve} {
				t.Run(cmd[0]+" "+key+"="+addr, func(t *testing.T) {
					code, out, errOut := runCLI(append(cmd, "--"+key+"="+addr)...)
					if code != 1 || out != "" || !strings.HasPrefix(errOut, "rmqproxy: invalid configuration:\n"+key+" ") ||
						!strings.Contains(errOut, "user part") || !strings.Contains(errOut, "REDACTED@127.0.0.1:0") || strings.Contains(errOut, "Zq9Xk7") {
						t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1, an invalid configuration naming %s and its user part, shown redacted", code, out, errOut, key)
					}
				})
			}
		}
	}
}

// TestMissingFilesNameTheirKeys: a file setting naming a file that does not
// exist (or a directory) stops config print and serve alike, before
// anything starts, with an error naming the key and the path; files of
// features that are off (cluster.tls.caFile: outside cluster mode or with
// cluster.tls.enabled false) and the other commands are not checked.
func TestMissingFilesNameTheirKeys(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--auth.enabled", "--auth.source=file", "--auth.file=" + missing}, "auth.file %q: no such file or directory"},
		{[]string{"--traffic.rulesFile=" + missing}, "traffic.rulesFile %q: no such file or directory"},
		{[]string{"--traffic.rulesFile=" + dir}, "traffic.rulesFile %q is a directory, not a file"},
		{[]string{"--grpc.tls.certFile=" + missing, "--grpc.tls.keyFile=" + missing}, "grpc.tls.certFile %[1]q: no such file or directory\ngrpc.tls.keyFile %[1]q: no such file or directory"},
		{[]string{"--grpc.tls.mode=enforcing", "--grpc.tls.clientAuth=require", "--grpc.tls.clientCAFile=" + missing}, "grpc.tls.clientCAFile %q: no such file or directory"},
		{[]string{"--admin.tls.enabled", "--admin.tls.certFile=" + missing, "--admin.tls.keyFile=" + missing}, "admin.tls.certFile %[1]q: no such file or directory\nadmin.tls.keyFile %[1]q: no such file or directory"},
		{[]string{"--mode=cluster", "--cluster.tls.enabled", "--cluster.tls.caFile=" + missing}, "cluster.tls.caFile %q: no such file or directory"},
		{[]string{"--mode=cluster", "--cluster.tls.enabled", "--cluster.tls.caFile=" + dir}, "cluster.tls.caFile %q is a directory, not a file"},
	}
	for _, tt := range tests {
		want := "rmqproxy: invalid configuration:\n" + fmt.Sprintf(tt.want, missing) + "\n"
		if strings.Contains(tt.want, "directory, not") {
			want = "rmqproxy: invalid configuration:\n" + fmt.Sprintf(tt.want, dir) + "\n"
		}
		// serve must fail before it starts anything; should it not, it
		// binds loopback only and writes under the test's directory.
		serve := []string{"serve", "--local.dataDir=" + filepath.Join(dir, "data"), "--grpc.address=127.0.0.1:0", "--health.address=127.0.0.1:0", "--admin.address=127.0.0.1:0"}
		for _, cmd := range [][]string{{"config", "print"}, serve} {
			t.Run(cmd[0]+" "+strings.Join(tt.args, " "), func(t *testing.T) {
				code, out, errOut := runCLI(append(cmd, tt.args...)...)
				if code != 1 || out != "" || errOut != want {
					t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s", code, out, errOut, want)
				}
			})
		}
	}
	// Files a setting names but a turned-off feature does not read are
	// not checked.
	if code, _, errOut := runCLI("config", "print", "--grpc.tls.mode=disabled", "--grpc.tls.certFile="+missing, "--grpc.tls.keyFile="+missing,
		"--admin.tls.certFile="+missing, "--admin.tls.keyFile="+missing, "--auth.file="+missing, "--cluster.tls.caFile="+missing); code != 0 {
		t.Errorf("unused file settings: exit %d, stderr %q", code, errOut)
	}
	// cluster.tls.caFile is read only by the cluster adapter, with
	// cluster.tls.enabled, in cluster mode: a leftover cluster section of a
	// local setup, or cluster TLS turned off, does not check it.
	for _, args := range [][]string{
		{"--mode=local", "--cluster.tls.enabled", "--cluster.tls.caFile=" + missing},
		{"--mode=cluster", "--cluster.tls.enabled=false", "--cluster.tls.caFile=" + missing},
	} {
		if code, _, errOut := runCLI(append([]string{"config", "print"}, args...)...); code != 0 {
			t.Errorf("config print %v: exit %d, stderr %q; want the unused caFile not checked", args, code, errOut)
		}
	}
	// The other commands read none of these files: they do not check them
	// (they may run where the proxy's certificates are not).
	code, _, errOut := runCLI("migrate", "version", "--postgres.dsn=postgres://u:p@127.0.0.1:1/x?connect_timeout=5", "--traffic.rulesFile="+missing)
	if code != 1 || strings.Contains(errOut, "traffic.rulesFile") || !strings.Contains(errOut, "connect to PostgreSQL") {
		t.Errorf("migrate version: exit %d, stderr %q; want the connection refused, not the rules file", code, errOut)
	}
	// Nor cluster.tls.caFile, with cluster TLS on in cluster mode: only
	// serve's cluster adapter reads it (the admin commands read the
	// configuration file for the admin API's address and admin.tls.enabled).
	cfgFile := filepath.Join(dir, "rmqproxy.yaml")
	if err := os.WriteFile(cfgFile, []byte("mode: cluster\nadmin:\n  address: 127.0.0.1:1\ncluster:\n  tls:\n    enabled: true\n    caFile: "+missing+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI("migrate", "version", "--config", cfgFile, "--postgres.dsn=postgres://u:p@127.0.0.1:1/x?connect_timeout=5")
	if code != 1 || strings.Contains(errOut, "caFile") || !strings.Contains(errOut, "connect to PostgreSQL") {
		t.Errorf("migrate version: exit %d, stderr %q; want the connection refused, not cluster.tls.caFile", code, errOut)
	}
	code, _, errOut = runCLI("topic", "list", "--config", cfgFile, "--wait=0")
	if code != 1 || strings.Contains(errOut, "caFile") || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("topic list: exit %d, stderr %q; want the admin API unreachable, not cluster.tls.caFile", code, errOut)
	}
}

// TestProductionRefusesInsecureSkipVerify: config print (and so serve)
// with the production profile exits 1 on cluster.tls.insecureSkipVerify,
// naming the setting and the fix; the help says so.
func TestProductionRefusesInsecureSkipVerify(t *testing.T) {
	code, out, errOut := runCLI("config", "print", "--profile=production", "--cluster.tls.insecureSkipVerify")
	if code != 1 || out != "" || !strings.Contains(errOut, "cluster.tls.insecureSkipVerify true accepts any broker certificate (tests only) and is refused by the production profile: remove it and set cluster.tls.caFile") {
		t.Errorf("production: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, errOut := runCLI("config", "print", "--cluster.tls.insecureSkipVerify"); code != 0 || !strings.Contains(out, "insecureSkipVerify: true") {
		t.Errorf("development: exit %d, stderr %q:\n%s", code, errOut, out)
	}
	_, help, _ := runCLI("help", "serve")
	if !strings.Contains(strings.Join(strings.Fields(help), " "), "accept any broker certificate (tests only; refused by the production profile: set caFile instead)") {
		t.Errorf("help serve does not say insecureSkipVerify is refused in production:\n%s", help)
	}
}

// TestTLSSettings: grpc.tls.minVersion, admin.tls.minVersion and
// cluster.tls.minVersion take 1.2 (the default) or 1.3, from flags, the
// environment and a YAML file (where 1.3 unquoted is a number); the
// cipherSuites beside them take forward-secret TLS 1.2 suites by name;
// anything else stops config print (and so serve) with an error naming
// the full key and the allowed values. The help lists the six.
func TestTLSSettings(t *testing.T) {
	code, out, errOut := runCLI("config", "print")
	if code != 0 || strings.Count(out, `minVersion: "1.2"`) != 3 {
		t.Fatalf("defaults: exit %d, stderr %q:\n%s", code, errOut, out)
	}
	code, _, errOut = runCLI("config", "print", "--grpc.tls.minVersion=1.1", "--admin.tls.minVersion=1.0", "--cluster.tls.minVersion=TLS1.3")
	for _, want := range []string{
		`grpc.tls.minVersion "1.1" is not a TLS version rmqproxy accepts as a minimum: use 1.2 or 1.3`,
		`admin.tls.minVersion "1.0" is not a TLS version rmqproxy accepts as a minimum: use 1.2 or 1.3`,
		`cluster.tls.minVersion "TLS1.3" is not a TLS version rmqproxy accepts as a minimum: use 1.2 or 1.3`,
	} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}

	file := filepath.Join(t.TempDir(), "rmqproxy.yaml")
	if err := os.WriteFile(file, []byte("grpc:\n  tls:\n    minVersion: 1.3\nadmin:\n  tls:\n    minVersion: '1.3'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	code = run([]string{"config", "print", "--config", file}, config.Sources{Env: []string{"RMQPROXY_CLUSTER_TLS_MIN_VERSION=1.3"}}, &o, &e)
	if code != 0 || strings.Count(o.String(), `minVersion: "1.3"`) != 3 {
		t.Errorf("1.3 from a file and the environment: exit %d, stderr %q:\n%s", code, e.String(), o.String())
	}

	code, _, errOut = runCLI("config", "print", "--grpc.tls.cipherSuites=TLS_RSA_WITH_AES_128_GCM_SHA256", "--admin.tls.cipherSuites=TLS_AES_128_GCM_SHA256", "--cluster.tls.cipherSuites=AES256-GCM")
	for _, want := range []string{
		`grpc.tls.cipherSuites "TLS_RSA_WITH_AES_128_GCM_SHA256" is not a forward-secret (ECDHE) suite without known weaknesses; use TLS 1.2 suites from: TLS_ECDHE_`,
		`admin.tls.cipherSuites "TLS_AES_128_GCM_SHA256" is a TLS 1.3 cipher suite`,
		`cluster.tls.cipherSuites "AES256-GCM" is not a cipher suite crypto/tls implements`,
	} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}
	if code, out, errOut := runCLI("config", "print", "--grpc.tls.cipherSuites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"); code != 0 ||
		!strings.Contains(out, "cipherSuites:\n      - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n      - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384") {
		t.Errorf("two cipher suites: exit %d, stderr %q:\n%s", code, errOut, out)
	}

	_, help, _ := runCLI("help", "serve")
	for _, key := range []string{"--grpc.tls.minVersion", "--admin.tls.minVersion", "--cluster.tls.minVersion", "--grpc.tls.cipherSuites", "--admin.tls.cipherSuites", "--cluster.tls.cipherSuites"} {
		if !strings.Contains(help, key) {
			t.Errorf("help serve lacks %s", key)
		}
	}
}

func TestVersion(t *testing.T) {
	_, a, _ := runCLI("version")
	code, b, _ := runCLI("--version")
	if code != 0 || a != b || !strings.HasPrefix(a, "rmqproxy ") || !strings.Contains(a, runtime.Version()) {
		t.Fatalf("version %q, --version %q", a, b)
	}
	vcs := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	for _, tt := range []struct {
		ldflags string
		commit  string
		info    *debug.BuildInfo
		want    string
	}{
		{"v1.2.3", "", vcs, "rmqproxy v1.2.3 (commit 0123456789ab-dirty, go1.26.0 " + platform + ")"},
		{"", "", vcs, "rmqproxy dev (commit 0123456789ab-dirty, go1.26.0 " + platform + ")"},
		// -X main.commit wins over what the go command stamped.
		{"v1.2.3", "fedcba9876543210", vcs, "rmqproxy v1.2.3 (commit fedcba987654, go1.26.0 " + platform + ")"},
		// No VCS data (a source archive, -buildvcs=false, go install of a
		// module version): the commit is said to be unknown, not left out.
		{"", "", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v0.4.0"}},
			"rmqproxy v0.4.0 (commit unknown (built without VCS information), go1.26.1 " + platform + ")"},
		{"", "", nil, "rmqproxy dev (commit unknown (built without VCS information), " + runtime.Version() + " " + platform + ")"},
		{"", "0123abc", nil, "rmqproxy dev (commit 0123abc, " + runtime.Version() + " " + platform + ")"},
	} {
		if got := describeBuild(tt.ldflags, tt.commit, tt.info); got != tt.want {
			t.Errorf("describeBuild(%q, %q, %+v) = %q, want %q", tt.ldflags, tt.commit, tt.info, got, tt.want)
		}
	}
}

// TestAdminCommandWaitsForAStartingProxy: run while nothing listens yet
// (a proxy recovering its data), a command says it waits, and succeeds
// once the admin API is up, having sent its request once.
func TestAdminCommandWaitsForAStartingProxy(t *testing.T) {
	addr := closedAddress(t)
	var stdout, stderr logbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"topic", "create", "orders", "--admin.address=" + addr, "--wait=1m"}, config.Sources{}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "waiting up to 1m0s for rmqproxy to start") {
		if time.Now().After(deadline) {
			t.Fatalf("no waiting message; stderr %q", stderr.String())
		}
		select {
		case code := <-done:
			t.Fatalf("exit %d before the API was up: %s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	api := &fakeAPI{}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: api}}
	srv.Start()
	defer srv.Close()
	select {
	case code := <-done:
		if code != 0 || stdout.String() != topicCreated {
			t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout.String(), stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("the command did not finish once the API was up")
	}
	if got := api.requests(); !reflect.DeepEqual(got, []string{`POST /v1/topics {"name":"orders"}`}) {
		t.Fatalf("requests %q", got)
	}
}

// TestAdminCommandWaitIsBounded: with nothing coming up, the command gives
// up after --wait and says how long it waited; --wait=0 does not wait.
func TestAdminCommandWaitIsBounded(t *testing.T) {
	addr := closedAddress(t)
	code, _, errOut := runCLI("group", "list", "--admin.address="+addr, "--wait=300ms")
	if code != 1 || !strings.Contains(errOut, "waiting up to 300ms") || !strings.Contains(errOut, "is rmqproxy running?") || !strings.Contains(errOut, "(waited 300ms)") {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	code, _, errOut = runCLI("group", "list", "--admin.address="+addr, "--wait=0")
	if code != 1 || strings.Contains(errOut, "waiting") || !strings.Contains(errOut, "is rmqproxy running?") {
		t.Fatalf("--wait=0: exit %d:\n%s", code, errOut)
	}
}

// TestConfigPrintRoundTrip: what config print writes, given back with
// --config, gives the same effective configuration, for the development
// and production profiles and cluster mode; secrets given in the
// environment are printed REDACTED and, with the environment again, load
// back to the same configuration.
func TestConfigPrintRoundTrip(t *testing.T) {
	secrets := []string{
		"RMQPROXY_CLUSTER_ACL_SECRET_KEY=broker-secret-1",
		"RMQPROXY_POSTGRES_DSN=postgres://rmq:pg-password-2@127.0.0.1:5432/rmq",
		"RMQPROXY_OTLP_HEADERS=authorization=Bearer token-3",
		"RMQPROXY_ADMIN_SECRET_KEY=admin-secret-4",
		"RMQPROXY_POSTGRES_SECRET_KEYS=k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	}
	for name, c := range map[string]struct {
		args []string
		env  []string
	}{
		"development": {},
		"production":  {args: []string{"--profile=production"}},
		"cluster":     {args: []string{"--profile=production", "--mode=cluster", "--cluster.nameServers=10.0.0.1:9876,10.0.0.2:9876", "--cluster.acl.accessKey=ak"}, env: secrets},
		"secrets":     {args: []string{"--local.dataDir=/var/lib/rmqproxy", "--grpc.address=127.0.0.1:9081", "--cluster.acl.accessKey=ak"}, env: secrets},
	} {
		t.Run(name, func(t *testing.T) {
			var first, errOut bytes.Buffer
			if code := run(append([]string{"config", "print"}, c.args...), config.Sources{Env: c.env}, &first, &errOut); code != 0 {
				t.Fatalf("config print: exit %d: %s", code, errOut.String())
			}
			for _, s := range []string{"broker-secret-1", "pg-password-2", "token-3", "admin-secret-4", "AAAAAAAA"} {
				if strings.Contains(first.String(), s) {
					t.Errorf("config print shows the secret %q", s)
				}
			}
			file := filepath.Join(t.TempDir(), "rmqproxy.yaml")
			if err := os.WriteFile(file, first.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			var second bytes.Buffer
			errOut.Reset()
			if code := run([]string{"config", "print", "--config", file}, config.Sources{Env: c.env}, &second, &errOut); code != 0 {
				t.Fatalf("config print --config (its own output): exit %d: %s", code, errOut.String())
			}
			if first.String() != second.String() {
				t.Errorf("the configuration read back differs:\n%s", lineDiff(first.String(), second.String()))
			}
		})
	}
}

// lineDiff lists the lines of a and b that differ, by line number.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			fmt.Fprintf(&out, "%d: %q != %q\n", i+1, x, y)
		}
	}
	return out.String()
}

// TestConfigPrintKeepsDerivedSettingsFollowing: local.storeHost and
// grpc.tls.selfSignedDir follow grpc.address and local.dataDir when left
// empty. A file written by config print must keep them following: an
// operator who starts from it and moves the data directory or the port
// must not find the certificate still generated under ./data/tls and
// messages still stamped with the old port.
func TestConfigPrintKeepsDerivedSettingsFollowing(t *testing.T) {
	code, printed, errOut := runCLI("config", "print")
	if code != 0 {
		t.Fatalf("config print: exit %d: %s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "rmqproxy.yaml")
	if err := os.WriteFile(file, []byte(printed), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig([]string{"--config", file, "--grpc.address=10.1.2.3:9081", "--local.dataDir=/srv/rmqproxy"}, config.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Local.StoreHost != "10.1.2.3:9081" || cfg.GRPC.TLS.SelfSignedDir != "/srv/rmqproxy/tls" {
		t.Errorf("from the printed file with another address and data directory: local.storeHost %q, grpc.tls.selfSignedDir %q", cfg.Local.StoreHost, cfg.GRPC.TLS.SelfSignedDir)
	}
	// Set explicitly, they stay as set, and are printed.
	code, out, _ := runCLI("config", "print", "--local.storeHost=10.9.9.9:1", "--grpc.tls.selfSignedDir=/etc/rmqproxy/tls", "--grpc.address=:9081")
	if code != 0 || !strings.Contains(out, "storeHost: 10.9.9.9:1\n") || !strings.Contains(out, "selfSignedDir: /etc/rmqproxy/tls\n") {
		t.Errorf("explicit values: exit %d:\n%s", code, out)
	}
}

// TestFlagsBeforeTheCommand: every command takes its flags after its
// command words; flags given before them (rmqproxy migrate --postgres.dsn
// DSN up) are a usage error that shows the line as it should be written,
// the values left out, instead of "unknown migrate command
// "--postgres.dsn"". Nothing runs, and a password in a value is not
// echoed.
func TestFlagsBeforeTheCommand(t *testing.T) {
	const dsn = "postgres://u:hunter2@127.0.0.1:1/x"
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "--postgres.dsn", dsn, "up"}, "flags go after the command, not before it: rmqproxy migrate up --postgres.dsn …  (… for each value)"},
		{[]string{"migrate", "--postgres.dsn=" + dsn, "down", "2"}, "rmqproxy migrate down 2 --postgres.dsn=…"},
		{[]string{"migrate", "--postgres.dsn", dsn}, "rmqproxy migrate needs its command (up, down or version) before the flags: rmqproxy migrate up|down|version --postgres.dsn …"},
		{[]string{"topic", "--json", "list"}, "flags go after the command, not before it: rmqproxy topic list --json\n"},
		{[]string{"topic", "--admin.address", "127.0.0.1:1", "create", "orders"}, "rmqproxy topic create orders --admin.address …"},
		{[]string{"group", "--wait=0", "stats", "billing"}, "rmqproxy group stats billing --wait=…"},
		{[]string{"client", "--json", "list"}, "rmqproxy client list --json"},
		{[]string{"user", "--postgres.dsn", dsn, "list"}, "rmqproxy user list --postgres.dsn …"},
		{[]string{"acl", "--dry-run", "import", "acl.json"}, "rmqproxy acl import acl.json --dry-run"},
		{[]string{"audit", "--since", "1h", "query"}, "rmqproxy audit query --since …"},
		{[]string{"config", "--config", "rmqproxy.yaml", "print"}, "rmqproxy config print --config …"},
		// Before the command itself: not settings of serve.
		{[]string{"--log.level", "debug", "migrate", "up", "--postgres.dsn", dsn}, "rmqproxy migrate up --postgres.dsn … --log.level …"},
	} {
		code, out, errOut := runCLI(tt.args...)
		if code != 2 || !strings.Contains(errOut, tt.want) || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and %q", tt.args, code, out, errOut, tt.want)
		}
		if strings.Contains(errOut, "hunter2") {
			t.Errorf("%q: the password is echoed: %s", tt.args, errOut)
		}
	}
	// A value that is a command word is still a value.
	if code, _, errOut := runCLI("--local.dataDir", "config", "--grpc.adress=x"); code != 2 || !strings.Contains(errOut, "did you mean --grpc.address?") {
		t.Errorf("--local.dataDir config: exit %d, %s", code, errOut)
	}
}

// TestUsageSaysWhatTheFlagsTake: the usage texts describe the flags as
// they are parsed. serve's example of a boolean given alone is a setting
// that is false by default (--admin.enabled, true by default, showed
// nothing); audit's --until takes a duration as --since does; acl get and
// list filter by --policy-type.
func TestUsageSaysWhatTheFlagsTake(t *testing.T) {
	example := regexp.MustCompile(`a boolean alone\s+\((--[a-zA-Z.]+)\) means true`).FindStringSubmatch(serveUsage)
	if example == nil {
		t.Fatalf("serve's usage gives no boolean example:\n%s", serveUsage)
	}
	var found bool
	for _, st := range config.Reference(app.Defaults(app.ProfileDevelopment)) {
		if st.Flag == example[1] {
			found = true
			if st.Type != "bool" || st.Default != "false" {
				t.Errorf("serve's usage shows %s alone as a boolean set to true, but it is a %s that defaults to %s", st.Flag, st.Type, st.Default)
			}
		}
	}
	if !found {
		t.Errorf("serve's usage shows %s, which is no setting", example[1])
	}
	now := time.Now()
	if got, err := parseSince("1h", now); err != nil || !got.Equal(now.Add(-time.Hour)) {
		t.Fatalf("--until 1h: %v %v", got, err)
	}
	for _, want := range []string{"[--until DURATION|TIME]", "acl get User:NAME [--policy-type T]", "acl list [--policy-type T]"} {
		if !strings.Contains(auditUsage+aclUsage, want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}
