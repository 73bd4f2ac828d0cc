package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/domain"
)

// fakeAPI stands in for a running proxy's admin API: it records each request
// ("METHOD /escaped/path body") and answers with canned JSON. A name
// containing "missing" is not found.
type fakeAPI struct {
	mu   sync.Mutex
	reqs []string
}

func (f *fakeAPI) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs
}

const (
	cannedTopic = `{"name":"NAME","type":"FIFO","queueCount":4,"permission":"READ_WRITE","description":"d","createdAt":"2026-01-02T03:04:05Z"}`
	cannedGroup = `{"name":"NAME","maxDeliveryAttempts":5,"retryPolicy":{"customized":["1s","5s"]},"orderly":true}`
	cannedStats = `{"group":"g","queues":[{"topic":"t","queueId":0,"maxOffset":5,"ackOffset":2,"inFlight":1,"consumable":2,"consumedUpTo":"2026-12-07T21:03:05.123Z"},{"topic":"t","queueId":1,"maxOffset":0,"ackOffset":0}]}`
	cannedReset = `{"group":"g","topic":"t","queues":[{"queueId":0,"oldOffset":10,"newOffset":4},{"queueId":1,"oldOffset":3,"newOffset":3}]}`
)

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, strings.TrimSpace(r.Method+" "+r.URL.EscapedPath()+" "+string(body)))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	p := r.URL.Path
	name := p[strings.LastIndex(p, "/")+1:]
	switch {
	case strings.Contains(p, "missing") || p == "/v1/topics/%DLQ%nodlq":
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"code":"TOPIC_NOT_FOUND","message":"topic missing does not exist"}`)
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case p == "/v1/topics" && r.Method == http.MethodGet:
		_, _ = io.WriteString(w, `{"topics":[`+strings.ReplaceAll(cannedTopic, "NAME", "a")+`]}`)
	case p == "/v1/groups" && r.Method == http.MethodGet:
		_, _ = io.WriteString(w, `{"groups":[`+strings.ReplaceAll(cannedGroup, "NAME", "g")+`]}`)
	case strings.HasSuffix(p, "/stats"):
		_, _ = io.WriteString(w, cannedStats)
	case strings.HasSuffix(p, "/reset"):
		_, _ = io.WriteString(w, cannedReset)
	case strings.HasPrefix(p, "/v1/topics/"):
		_, _ = io.WriteString(w, strings.ReplaceAll(cannedTopic, "NAME", name))
	case strings.HasPrefix(p, "/v1/groups/"):
		_, _ = io.WriteString(w, strings.ReplaceAll(cannedGroup, "NAME", name))
	case p == "/v1/topics":
		_, _ = io.WriteString(w, strings.ReplaceAll(cannedTopic, "NAME", "created"))
	default:
		_, _ = io.WriteString(w, strings.ReplaceAll(cannedGroup, "NAME", "created"))
	}
}

// startFakeAPI serves a fakeAPI on 127.0.0.1:0 until the test ends.
func startFakeAPI(t *testing.T) (*fakeAPI, string) {
	t.Helper()
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return api, srv.Listener.Addr().String()
}

// closedAddress returns an address nothing listens on.
func closedAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

const topicCreated = "Name:         created\nType:         FIFO\nQueues:       4\nPermission:   READ_WRITE\n" +
	"Description:  d\nCreated:      2026-01-02T03:04:05Z\nUpdated:      -\n"

func TestAdminCommands(t *testing.T) {
	tests := []struct {
		name     string
		args     []string // --admin.address of the fake API is appended unless given
		code     int
		stdout   string   // exact, when not empty
		stderr   []string // substrings
		requests []string // exactly these were sent; nil for none
	}{
		// Usage errors: exit 2, the usage on stderr, nothing sent.
		{name: "topic alone", args: []string{"topic"}, code: 2, stderr: []string{"usage", "rmqproxy topic create NAME"}},
		{name: "group alone", args: []string{"group"}, code: 2, stderr: []string{"usage", "rmqproxy group stats NAME"}},
		{name: "unknown topic command", args: []string{"topic", "frobnicate", "x"}, code: 2,
			stderr: []string{`usage: unknown topic command "frobnicate"`, "Usage:\n  rmqproxy topic create"}},
		{name: "unknown group command", args: []string{"group", "stat", "g"}, code: 2,
			stderr: []string{`usage: unknown group command "stat"`, "Usage:\n  rmqproxy group create"}},
		{name: "topic without name", args: []string{"topic", "describe"}, code: 2,
			stderr: []string{"usage: topic describe needs exactly one topic name\nUsage:"}},
		{name: "group with two names", args: []string{"group", "create", "a", "b"}, code: 2,
			stderr: []string{"usage: group create needs exactly one group name\nUsage:"}},
		{name: "stats without name", args: []string{"group", "stats", "--json"}, code: 2,
			stderr: []string{"group stats needs exactly one group name"}},
		{name: "delete without name", args: []string{"topic", "delete"}, code: 2,
			stderr: []string{"topic delete needs exactly one topic name"}},
		// A list does not filter by a name: it printed every object and
		// exited 0 (user list and acl list refuse one).
		{name: "topic list with a name", args: []string{"topic", "list", "orders"}, code: 2,
			stderr: []string{`usage: topic list takes no topic name, got "orders" (topic describe orders shows one)`}},
		{name: "group list with a name", args: []string{"group", "list", "--json", "g1"}, code: 2,
			stderr: []string{`usage: group list takes no group name, got "g1" (group describe g1 shows one)`}},
		{name: "client list with a name", args: []string{"client", "list", "g1"}, code: 2,
			stderr: []string{`usage: client list takes no client id, got "g1" (--group GROUP and --topic TOPIC filter the list)`}},
		{name: "unknown flag", args: []string{"topic", "list", "--bogus"}, code: 2,
			stderr: []string{"usage: unknown flag \"--bogus\"\nUsage:"}},
		{name: "misspelled flag", args: []string{"topic", "create", "t", "--tpye", "FIFO"}, code: 2,
			stderr: []string{"usage: unknown flag \"--tpye\" (did you mean --type?)\nUsage:"}},
		{name: "old flag style", args: []string{"group", "create", "g", "--max-delivery-attempts=3"}, code: 2,
			stderr: []string{"unknown flag \"--max-delivery-attempts\" (did you mean --maxDeliveryAttempts?)"}},
		{name: "old address flag", args: []string{"group", "list", "--admin-address", "x"}, code: 2,
			stderr: []string{"unknown flag \"--admin-address\" (did you mean --admin.address?)"}},
		{name: "flag value looks like a flag name", args: []string{"topic", "create", "t", "--description", "--tpye"},
			stdout: topicCreated, requests: []string{`POST /v1/topics {"name":"t","description":"--tpye"}`}},
		{name: "misspelled subcommand", args: []string{"group", "craete", "g"}, code: 2,
			stderr: []string{"unknown group command \"craete\" (did you mean create?)"}},
		{name: "group flag on topic", args: []string{"topic", "create", "t", "--orderly"}, code: 2,
			stderr: []string{"unknown flag \"--orderly\""}},
		{name: "bad number", args: []string{"group", "create", "g", "--maxDeliveryAttempts", "many"}, code: 2,
			stderr: []string{`invalid value "many" for flag --maxDeliveryAttempts`}},
		// Counts are int32 on the wire: a larger number must not wrap
		// (4294967300 would become 4 queues).
		{name: "queue count out of range", args: []string{"topic", "create", "t", "--queues", "4294967300"}, code: 2,
			stderr: []string{`invalid value "4294967300" for flag --queues`}},
		{name: "delivery attempts out of range", args: []string{"group", "create", "g", "--maxDeliveryAttempts=4294967301"}, code: 2,
			stderr: []string{`invalid value "4294967301" for flag --maxDeliveryAttempts`}},
		// The flag package names flags with one dash; the CLI's are --name.
		{name: "bad boolean", args: []string{"group", "create", "g", "--orderly=maybe"}, code: 2,
			stderr: []string{`invalid boolean value "maybe" for --orderly: not true or false`}},
		// A value of the flag package's own types was refused with a bare
		// "parse error" that did not say what the flag takes.
		{name: "wait without a unit", args: []string{"topic", "list", "--wait", "5"}, code: 2,
			stderr: []string{`usage: invalid value "5" for flag --wait: not a duration: give its unit, such as 10s, 1m30s or 0` + "\nUsage:"}},
		{name: "negative wait", args: []string{"topic", "list", "--wait=-1s"}, code: 2,
			stderr: []string{"usage: --wait -1s: give how long to wait for a starting proxy, 0 or more (0 fails at once)\nUsage:"}},
		{name: "help flag", args: []string{"group", "create", "--help"}, stdout: groupUsage},
		{name: "help after a name", args: []string{"topic", "create", "t", "-h"}, stdout: topicUsage},
		{name: "help as a subcommand", args: []string{"topic", "help"}, stdout: topicUsage},
		{name: "help flag alone", args: []string{"group", "--help"}, stdout: groupUsage},
		{name: "both retry strategies", args: []string{"group", "create", "g", "--retry", "1s", "--retryExponential", "1s,2h,2"}, code: 2,
			stderr: []string{"usage: give either --retry or --retryExponential"}},
		{name: "bad retry delay", args: []string{"group", "update", "g", "--retry", "1s,soon"}, code: 2,
			stderr: []string{`usage: --retry: "soon" is not a duration: give each delay with its unit, separated by commas, such as 1s,5s,30s`}},
		{name: "retry delay without a unit", args: []string{"group", "create", "g", "--retry", "1,5"}, code: 2,
			stderr: []string{`usage: --retry: "1" is not a duration: give each delay with its unit, separated by commas, such as 1s,5s,30s`}},
		{name: "exponential delay without a unit", args: []string{"group", "create", "g", "--retryExponential", "1,2h,2"}, code: 2,
			stderr: []string{`usage: --retryExponential: initial delay "1" is not a duration: give it with its unit, such as 1s,2h,2`}},
		{name: "queue count in words", args: []string{"topic", "create", "t", "--queues", "eight"}, code: 2,
			stderr: []string{`usage: invalid value "eight" for flag --queues: not a whole number, such as 8` + "\nUsage:"}},
		{name: "queue count below the 32-bit range", args: []string{"topic", "create", "t", "--queues", "-3000000000"}, code: 2,
			stderr: []string{`usage: invalid value "-3000000000" for flag --queues: out of range: at least -2147483648`}},
		{name: "queue count above the 32-bit range", args: []string{"topic", "create", "t", "--queues", "3000000000"}, code: 2,
			stderr: []string{`usage: invalid value "3000000000" for flag --queues: out of range: at most 2147483647`}},
		{name: "exponential multiplier with trailing text", args: []string{"group", "create", "g", "--retryExponential", "1s,2h,2x"}, code: 2,
			stderr: []string{`usage: --retryExponential: multiplier "2x" is not a number`}},
		{name: "exponential needs three parts", args: []string{"group", "create", "g", "--retryExponential", "1s,2h"}, code: 2,
			stderr: []string{"usage: --retryExponential takes INITIAL,MAX,MULTIPLIER, e.g. 1s,2h,2"}},

		// An explicit empty value (a script's unset variable) fell back to
		// the configuration's address without a word.
		{name: "empty admin address", args: []string{"topic", "list", "--admin.address", "", "--wait=0"}, code: 2,
			stderr: []string{"usage: --admin.address is empty: give the admin API's HOST:PORT or URL, or leave the flag out"}},
		// So did an empty --config: the default address was used.
		{name: "empty config", args: []string{"topic", "list", "--config=", "--wait=0"}, code: 2,
			stderr: []string{"usage: --config is empty: give the YAML file"}},
		{name: "empty admin address with =", args: []string{"group", "list", "--admin.address= ", "--admin.address", " "}, code: 2,
			stderr: []string{"usage: --admin.address is empty"}},

		// Failures: exit 1, the reason on stderr.
		{name: "bad admin address", args: []string{"topic", "list", "--admin.address", "ftp://x"}, code: 1,
			stderr: []string{`rmqproxy: admin address "ftp://x" is not host:port or an http(s) URL`}},
		{name: "bad message type", args: []string{"topic", "create", "t", "--type", "BATCH"}, code: 1, stderr: []string{"rmqproxy: ", "BATCH"}},
		{name: "not found", args: []string{"topic", "describe", "missing"}, code: 1,
			stderr: []string{"rmqproxy: ", "topic missing does not exist"}, requests: []string{"GET /v1/topics/missing"}},

		// Successes: the request the flags make and what is printed.
		{name: "topic create, flags around the name", args: []string{"topic", "create", "--type", "FIFO", "t1", "--queues", "4", "--description", "made"},
			stdout: topicCreated, requests: []string{`POST /v1/topics {"name":"t1","type":"FIFO","queueCount":4,"description":"made"}`}},
		{name: "topic create, defaults", args: []string{"topic", "create", "t1"},
			stdout: topicCreated, requests: []string{`POST /v1/topics {"name":"t1"}`}},
		{name: "topic update, empty description is sent", args: []string{"topic", "update", "t1", "--description", ""},
			requests: []string{`PUT /v1/topics/t1 {"description":""}`}},
		{name: "topic describe escapes the name", args: []string{"topic", "describe", "a%b|c"}, requests: []string{"GET /v1/topics/a%25b%7Cc"}},
		{name: "topic delete prints text even with --json", args: []string{"topic", "delete", "t1", "--json"},
			stdout: "deleted topic t1\n", requests: []string{"DELETE /v1/topics/t1"}},
		{name: "topic flags are accepted by every topic command", args: []string{"topic", "delete", "t1", "--queues", "3"},
			stdout: "deleted topic t1\n", requests: []string{"DELETE /v1/topics/t1"}},
		{name: "group create", args: []string{"group", "create", "g1", "--maxDeliveryAttempts", "5", "--retry", "1s, 5s", "--orderly"},
			requests: []string{`POST /v1/groups {"name":"g1","maxDeliveryAttempts":5,"retryPolicy":{"customized":["1s","5s"]},"orderly":true}`}},
		{name: "group create, exponential", args: []string{"group", "create", "g1", "--retryExponential", "1s,2h,2", "--description", "x"},
			requests: []string{`POST /v1/groups {"name":"g1","retryPolicy":{"exponential":{"initial":"1s","max":"2h","multiplier":2}},"description":"x"}`}},
		{name: "group update, orderly off", args: []string{"group", "update", "g1", "--orderly=false"},
			stdout: "Name:                   g1\nMax delivery attempts:  5\nRetry policy:           customized 1s,5s\nOrderly:                true\n" +
				"Description:            -\nCreated:                -\nUpdated:                -\n",
			requests: []string{`PUT /v1/groups/g1 {"orderly":false}`}},
		{name: "group list", args: []string{"group", "list"}, requests: []string{"GET /v1/groups"},
			stdout: "NAME  MAX-ATTEMPTS  RETRY             ORDERLY  DESCRIPTION\ng     5             customized 1s,5s  true     -\n"},
		{name: "group stats", args: []string{"group", "stats", "g"}, requests: []string{"GET /v1/groups/g/stats"},
			stdout: "TOPIC  QUEUE  MAX-OFFSET  ACK-OFFSET  IN-FLIGHT  CONSUMABLE  BACKLOG  CONSUMED-UP-TO\n" +
				"t      0      5           2           1          2           3        2026-12-07T21:03:05Z\n" +
				"t      1      0           0           0          0           0        -\n" +
				"TOTAL                                 1          2           3\n"},
		{name: "group reset", args: []string{"group", "reset", "g", "--topic", "t", "--to", "1h"},
			requests: []string{`POST /v1/groups/g/reset {"topic":"t","to":"1h"}`},
			stdout:   "TOPIC  QUEUE  OLD-OFFSET  NEW-OFFSET\nt      0      10          4\nt      1      3           3\n"},
		{name: "group reset of one queue", args: []string{"group", "reset", "--queue", "2", "g", "--topic=t", "--to", "2026-01-02T03:04:05Z"},
			requests: []string{`POST /v1/groups/g/reset {"topic":"t","queueId":2,"to":"2026-01-02T03:04:05Z"}`}},
		{name: "group reset of queue 0", args: []string{"group", "reset", "g", "--topic", "t", "--to", "latest", "--queue", "0"},
			requests: []string{`POST /v1/groups/g/reset {"topic":"t","queueId":0,"to":"latest"}`}},
		{name: "group reset without --to", args: []string{"group", "reset", "g", "--topic", "t"}, code: 2,
			stderr: []string{"group reset needs --topic TOPIC and --to TIME"}},
		{name: "group reset without --topic", args: []string{"group", "reset", "g", "--to", "earliest"}, code: 2,
			stderr: []string{"group reset needs --topic TOPIC and --to TIME"}},
		{name: "group reset to an unreadable time", args: []string{"group", "reset", "g", "--topic", "t", "--to", "yesterday"}, code: 2,
			stderr: []string{`--to: cannot read reset target "yesterday"`}},
		{name: "group reset of a negative queue", args: []string{"group", "reset", "g", "--topic", "t", "--to", "1h", "--queue", "-1"}, code: 2,
			stderr: []string{"--queue -1"}},
		{name: "group reset of a missing group", args: []string{"group", "reset", "missing", "--topic", "t", "--to", "1h"}, code: 1,
			stderr: []string{"rmqproxy: ", "does not exist"}, requests: []string{`POST /v1/groups/missing/reset {"topic":"t","to":"1h"}`}},
		{name: "group delete says it kept the dead-letter topic", args: []string{"group", "delete", "g"},
			stdout:   "deleted consumer group g\nkept its dead-letter topic %DLQ%g (the messages the group gave up on); delete it with `rmqproxy topic delete %DLQ%g` once they are no longer needed\n",
			requests: []string{"DELETE /v1/groups/g", "GET /v1/topics/%25DLQ%25g"}},
		{name: "group delete without a dead-letter topic", args: []string{"group", "delete", "nodlq"}, stdout: "deleted consumer group nodlq\n",
			requests: []string{"DELETE /v1/groups/nodlq", "GET /v1/topics/%25DLQ%25nodlq"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, addr := startFakeAPI(t)
			var stdout, stderr bytes.Buffer
			args := tt.args
			if !slices.Contains(args, "--admin.address") {
				args = append(args[:len(args):len(args)], "--admin.address="+addr)
			}
			code := run(args, config.Sources{}, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			if tt.stdout != "" && stdout.String() != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tt.stdout)
			}
			if tt.code != 0 && stdout.Len() != 0 {
				t.Errorf("stdout of a failed command: %s", stdout.String())
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if tt.code == 0 && stderr.Len() != 0 {
				t.Errorf("stderr of a successful command: %s", stderr.String())
			}
			if got := api.requests(); !reflect.DeepEqual(got, tt.requests) {
				t.Errorf("requests %q, want %q", got, tt.requests)
			}
		})
	}
}

// TestAdminCommandsJSON checks that --json prints the API's form of what
// each command shows.
func TestAdminCommandsJSON(t *testing.T) {
	tests := []struct {
		args []string
		want string // a JSON value
	}{
		{[]string{"topic", "list"}, `{"topics":[` + strings.ReplaceAll(cannedTopic, "NAME", "a") + `]}`},
		{[]string{"topic", "describe", "t1"}, strings.ReplaceAll(cannedTopic, "NAME", "t1")},
		{[]string{"topic", "create", "t1"}, strings.ReplaceAll(cannedTopic, "NAME", "created")},
		{[]string{"group", "list"}, `{"groups":[` + strings.ReplaceAll(cannedGroup, "NAME", "g") + `]}`},
		{[]string{"group", "describe", "g1"}, strings.ReplaceAll(cannedGroup, "NAME", "g1")},
		{[]string{"group", "update", "g1"}, strings.ReplaceAll(cannedGroup, "NAME", "g1")},
		{[]string{"group", "stats", "g"}, `[{"topic":"t","queueId":0,"maxOffset":5,"ackOffset":2,"inFlight":1,"consumable":2,"backlog":3,"consumedUpTo":"2026-12-07T21:03:05.123Z"},{"topic":"t","queueId":1,"maxOffset":0,"ackOffset":0,"inFlight":0,"consumable":0,"backlog":0}]`},
		{[]string{"group", "reset", "g", "--topic", "t", "--to", "earliest"}, cannedReset},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, addr := startFakeAPI(t)
			var stdout, stderr bytes.Buffer
			if code := run(append(tt.args, "--json", "--admin.address="+addr), config.Sources{}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			var got, want any
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, stdout.String())
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %s\nwant %s", stdout.String(), tt.want)
			}
		})
	}
}

func TestAdminAddressFromConfiguration(t *testing.T) {
	api, addr := startFakeAPI(t)
	var stdout, stderr bytes.Buffer
	src := config.Sources{Env: []string{"RMQPROXY_ADMIN_ADDRESS=" + addr}}
	if code := run([]string{"topic", "list"}, src, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := api.requests(); !reflect.DeepEqual(got, []string{"GET /v1/topics"}) {
		t.Fatalf("requests %q", got)
	}
}

// TestAdminAddressFromConfigFile: --config names the file admin.address
// is read from.
func TestAdminAddressFromConfigFile(t *testing.T) {
	api, addr := startFakeAPI(t)
	file := filepath.Join(t.TempDir(), "rmqproxy.yaml")
	if err := os.WriteFile(file, []byte("admin:\n  address: "+addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"group", "list", "--config", file}, config.Sources{}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := api.requests(); !reflect.DeepEqual(got, []string{"GET /v1/groups"}) {
		t.Fatalf("requests %q", got)
	}
}

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name                    string
		customized, exponential string
		want                    *domain.RetryPolicy
		usage                   bool
	}{
		{name: "none"},
		{name: "customized", customized: "1s, 5s,1m", want: &domain.RetryPolicy{Delays: []time.Duration{time.Second, 5 * time.Second, time.Minute}}},
		{name: "exponential", exponential: "1s, 2h, 1.5", want: &domain.RetryPolicy{Initial: time.Second, Max: 2 * time.Hour, Multiplier: 1.5}},
		{name: "both", customized: "1s", exponential: "1s,2h,2", usage: true},
		{name: "bad delay", customized: "1s,", usage: true},
		{name: "two parts", exponential: "1s,2h", usage: true},
		{name: "bad multiplier", exponential: "1s,2h,x", usage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := retryPolicy(tt.customized, tt.exponential)
			if tt.usage {
				if !errors.Is(err, errUsage) {
					t.Fatalf("error %v, want a usage error", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestAdminCommandsSpeakTLS13: the topic, group and client commands accept
// what the admin API asks for: an API that takes TLS 1.3 only
// (admin.tls.minVersion 1.3) is reached like one that takes 1.2.
func TestAdminCommandsSpeakTLS13(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		srv := httptest.NewUnstartedServer(&fakeAPI{})
		srv.TLS = &tls.Config{MinVersion: v, MaxVersion: v}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI("topic", "list", "--admin.address="+srv.URL, "--admin.caFile="+caFile)
		if code != 0 || !strings.Contains(out, "FIFO") {
			t.Errorf("topic list against an API that takes TLS %s only: exit %d, stdout %q, stderr %q", tls.VersionName(v), code, out, errOut)
		}
	}
}

// TestAdminTLSEnabledFlag: --admin.tls.enabled is taken like the other
// admin.* client settings (it was refused as an unknown flag, so only the
// configuration file or RMQPROXY_ADMIN_TLS_ENABLED could give it): a bare
// HOST:PORT is then reached over HTTPS, and with =false over plain HTTP.
func TestAdminTLSEnabledFlag(t *testing.T) {
	srv := httptest.NewUnstartedServer(&fakeAPI{})
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the plain-HTTP call below
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	bare := strings.TrimPrefix(srv.URL, "https://")
	code, out, errOut := runCLI("topic", "list", "--admin.address="+bare, "--admin.caFile="+caFile, "--admin.tls.enabled", "--wait=0")
	if code != 0 || !strings.Contains(out, "FIFO") {
		t.Errorf("topic list --admin.tls.enabled to %s: exit %d, stdout %q, stderr %q", bare, code, out, errOut)
	}
	code, _, errOut = runCLI("topic", "list", "--admin.address="+bare, "--admin.tls.enabled=false", "--wait=0")
	if code == 0 {
		t.Errorf("topic list --admin.tls.enabled=false spoke HTTPS (stderr %q)", errOut)
	}
	// The hint says what to set (it named only an https:// address and
	// --config, not the flag).
	if !strings.Contains(errOut, "serves HTTPS only") || !strings.Contains(errOut, "pass --admin.tls.enabled") {
		t.Errorf("plain HTTP to an HTTPS admin API: stderr %q does not say to pass --admin.tls.enabled", errOut)
	}
	// And the other way round: a plain HTTP API asked over HTTPS.
	plain := httptest.NewServer(&fakeAPI{})
	t.Cleanup(plain.Close)
	code, _, errOut = runCLI("topic", "list", "--admin.address="+strings.TrimPrefix(plain.URL, "http://"), "--admin.tls.enabled", "--wait=0")
	if code == 0 || !strings.Contains(errOut, "serves plain HTTP") || !strings.Contains(errOut, "without --admin.tls.enabled") {
		t.Errorf("HTTPS to a plain HTTP admin API: exit %d, stderr %q does not say to drop --admin.tls.enabled", code, errOut)
	}
}

// TestAdminClientIgnoresServerOnlySettings: the topic, group and client
// commands read admin.address, admin.tls.enabled, admin.accessKey and
// admin.secretKey from the configuration, and the rest of it (the server's
// certificate files, gRPC TLS, authentication's database, a listen address
// beyond loopback, secrets left REDACTED by config print) is no error for
// them: RMQPROXY_ADMIN_TLS_ENABLED=true, or a configuration file shared with
// an HTTPS admin API, reaches the API without the server's certFile and
// keyFile. A bad value of a setting they use is still named.
func TestAdminClientIgnoresServerOnlySettings(t *testing.T) {
	srv := httptest.NewTLSServer(&fakeAPI{})
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	bare := strings.TrimPrefix(srv.URL, "https://")
	runWith := func(env []string, args ...string) (int, string, string) {
		var o, e bytes.Buffer
		code := run(append(args, "--admin.caFile="+caFile, "--wait=0"), config.Sources{Env: env}, &o, &e)
		return code, o.String(), e.String()
	}

	// The environment of a host whose proxy serves HTTPS with
	// authentication in PostgreSQL: the certificate, the key and the
	// database are the server's business.
	env := []string{"RMQPROXY_ADMIN_ADDRESS=" + bare, "RMQPROXY_ADMIN_TLS_ENABLED=true", "RMQPROXY_AUTH_ENABLED=true",
		"RMQPROXY_GRPC_TLS_CLIENT_AUTH=require"}
	if code, out, errOut := runWith(env, "topic", "list"); code != 0 || !strings.Contains(out, "FIFO") {
		t.Errorf("topic list with RMQPROXY_ADMIN_TLS_ENABLED=true: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The proxy itself (config print checks what serve checks) still
	// needs them.
	var o, e bytes.Buffer
	if code := run([]string{"config", "print"}, config.Sources{Env: env}, &o, &e); code != 1 ||
		!strings.Contains(e.String(), "admin.tls.enabled needs admin.tls.certFile") || !strings.Contains(e.String(), "grpc.tls.clientCAFile") {
		t.Errorf("config print with the same environment: exit %d, stderr %q; want the server's requirements", code, e.String())
	}

	// The server's file, as config print writes it (secrets REDACTED,
	// given to the server through its environment).
	file := filepath.Join(t.TempDir(), "rmqproxy.yaml")
	yaml := "profile: production\n" +
		"admin:\n  address: " + bare + "\n  tls:\n    enabled: true\n    certFile: /etc/rmqproxy/absent/admin.pem\n" +
		"grpc:\n  tls:\n    mode: enforcing\n    clientAuth: require\n" +
		"auth:\n  enabled: true\n" +
		"postgres:\n  dsn: REDACTED\n  secretKeys: REDACTED\n" +
		"local:\n  dataDir: \" \"\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runWith(nil, "group", "list", "--config", file); code != 0 || !strings.Contains(out, "g") {
		t.Errorf("group list --config (a server's file with admin.tls.enabled): exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, errOut := runWith([]string{"RMQPROXY_CONFIG=" + file}, "topic", "describe", "t1"); code != 0 || !strings.Contains(out, "t1") {
		t.Errorf("topic describe with RMQPROXY_CONFIG: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// An admin.address beyond loopback is the server's concern: the
	// client dials it (nothing listens: the error is the connection's).
	closed := closedAddress(t)
	_, port, _ := net.SplitHostPort(closed)
	code, _, errOut := runWith([]string{"RMQPROXY_ADMIN_ADDRESS=0.0.0.0:" + port}, "topic", "list")
	if code != 1 || strings.Contains(errOut, "invalid configuration") || strings.Contains(errOut, "loopback") {
		t.Errorf("topic list with RMQPROXY_ADMIN_ADDRESS beyond loopback: exit %d, stderr %q; want the connection's error", code, errOut)
	}

	// What the client uses is still checked, naming the setting.
	for _, tt := range []struct {
		env  []string
		want string
	}{
		{[]string{"RMQPROXY_ADMIN_ADDRESS=ftp://x"}, `admin.address: admin address "ftp://x" is not host:port`},
		{[]string{"RMQPROXY_ADMIN_TLS_ENABLED=maybe"}, "RMQPROXY_ADMIN_TLS_ENABLED"},
		{[]string{"RMQPROXY_ADMIN_ACCESS_KEY=admin", "RMQPROXY_ADMIN_SECRET_KEY=REDACTED"}, "admin.secretKey"},
		{[]string{"RMQPROXY_GRPC_MAX_RECV_MESSAGE_SIZE=lots"}, "grpc.maxRecvMessageSize"}, // a value that does not parse, whoever reads it
	} {
		code, _, errOut := runWith(tt.env, "topic", "list")
		if code != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("topic list with %q: exit %d, stderr %q; want exit 1 naming %q", tt.env, code, errOut, tt.want)
		}
	}
}
