package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/domain"
)

const topicUsage = `Usage:
  rmqproxy topic create NAME [--type NORMAL|FIFO|DELAY|TRANSACTION|MIXED] [--queues N] [--description TEXT]
  rmqproxy topic update NAME [--type T] [--queues N] [--description TEXT]
  rmqproxy topic delete NAME
  rmqproxy topic list
  rmqproxy topic describe NAME

create makes a NORMAL topic with 8 queues unless --type and --queues say
otherwise; update changes only what its flags give, and a queue count can
only grow.

` + adminFlagsUsage

const groupUsage = `Usage:
  rmqproxy group create NAME [--maxDeliveryAttempts N] [--retry 1s,5s,...]
                             [--retryExponential INITIAL,MAX,MULTIPLIER] [--orderly] [--description TEXT]
  rmqproxy group update NAME [same flags]
  rmqproxy group delete NAME
  rmqproxy group list
  rmqproxy group describe NAME
  rmqproxy group stats NAME
  rmqproxy group reset NAME --topic TOPIC --to TIME [--queue N]

stats shows the group's progress per queue: in local mode every queue the
group has received from and every queue of the topics its connected
consumers subscribe to (one not received from yet has all its messages as
backlog, as rocketmq_consumer_lag_messages counts them); in cluster mode
the queues the brokers report. CONSUMED-UP-TO is the store time of the
last message below ACK-OFFSET (mqadmin consumerProgress's #LastTime): a
group that stopped consuming shows how far back it stopped.

reset moves the group's position on the topic's queues (or on queue N),
as mqadmin resetOffsetByTime does: its consumers next receive, on each
queue, from the first message stored at or after TIME, which is an
RFC 3339 time (2026-01-02T15:04:05Z), a duration ago by the proxy's clock
(1h, 90m), earliest (every message stored) or latest (skip the backlog).
Moving back delivers messages again, acked or not; moving forward skips
them. Messages in flight are dropped from the group's state: their
consumers' acks and renewals fail (INVALID_RECEIPT_HANDLE) and they are
delivered again if the new position is before them. It prints each queue's
old and new offset. In cluster mode the brokers apply it (see
docs/cluster.md).

delete removes the group with its consumption state (offsets, messages in
flight or waiting to be delivered again: in cluster mode its retry topics)
and keeps its dead-letter topic %DLQ%NAME, which holds the messages the
group gave up on: delete that with rmqproxy topic delete once they are no
longer needed.

--retry sets customized delays (the last repeats); --retryExponential sets
an exponential backoff, e.g. 1s,2h,2. create takes RocketMQ's defaults for
what its flags do not give (17 delivery attempts, the delays 1s, 5s, 10s,
30s, 1m ... 2h); update changes only what its flags give.

` + adminFlagsUsage

const clientUsage = `Usage:
  rmqproxy client list [--group GROUP] [--topic TOPIC]
  rmqproxy client stack CLIENT_ID
  rmqproxy client verify CLIENT_ID --topic TOPIC --messageId ID

list shows the clients connected to the proxy (client id, kind, language,
version, group, topics, remote address, since when); --group and --topic
filter it. stack asks a client for its thread (goroutine) stacks and prints
them; verify asks a consumer to consume a stored message as a check and
prints its verdict (the Java push consumer runs its listener; other clients
answer NOT_IMPLEMENTED). Both go through the client's Telemetry stream to
this proxy and wait messaging.clients.commandTimeout (5s) for its answer;
they exit 1 when the client does not answer or answers other than OK.

` + adminFlagsUsage

const adminFlagsUsage = `These commands talk to the admin API of a running rmqproxy. Flags go before
or after NAME, as --flag=value or --flag value; every command takes:
  --admin.address HOST:PORT  the admin API (default: admin.address of the
                             configuration, 127.0.0.1:8082)
  --config FILE              read admin.address, admin.tls.enabled,
                             admin.accessKey and admin.secretKey (and nothing
                             else: a proxy's own file works) from this file
                             (else RMQPROXY_CONFIG, RMQPROXY_ADMIN_...)
  --wait DURATION            wait this long for a proxy that is still starting
                             (default 10s; 0 fails at once)
  --json                     print JSON (every command but delete)
  --admin.accessKey NAME     Super user to sign calls as, for a proxy with
                             auth.enabled; its secret comes from
                             RMQPROXY_ADMIN_SECRET_KEY or admin.secretKey in the
                             configuration file, never from the command line
  --admin.caFile FILE        PEM CA bundle that signs the admin API's HTTPS
                             certificate (else the system's roots)
  --admin.insecureSkipVerify do not verify the admin API's certificate (tests
                             only: anyone in between can read the signed calls)
  --admin.tls.enabled        HTTPS to a bare HOST:PORT (default: admin.tls.enabled
                             of the configuration, RMQPROXY_ADMIN_TLS_ENABLED)
HTTPS is used for an https:// address, or for a bare HOST:PORT with
admin.tls.enabled (--admin.tls.enabled=false turns it off).
`

// defaultWait is how long the admin commands wait for a proxy that is
// starting (recovering its data) before its admin API listens.
const defaultWait = 10 * time.Second

// adminFlags are the flags shared by topic and group commands.
type adminFlags struct {
	fs      *flag.FlagSet
	address string
	config  string
	wait    time.Duration
	json    bool
	// accessKey and secretKey sign calls to a proxy with auth.enabled.
	accessKey string
	secretKey string
	// HTTPS: tls is --admin.tls.enabled, else admin.tls.enabled of the
	// configuration.
	tls                bool
	caFile             string
	insecureSkipVerify bool
}

func newAdminFlags(name string) *adminFlags {
	f := &adminFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.Usage = func() {}
	f.fs.StringVar(&f.address, "admin.address", "", "address of a running rmqproxy's admin API")
	f.fs.StringVar(&f.config, "config", "", "configuration file to read the admin.* client settings from")
	f.fs.DurationVar(&f.wait, "wait", defaultWait, "how long to wait for a starting proxy")
	f.fs.BoolVar(&f.json, "json", false, "print JSON")
	f.fs.StringVar(&f.accessKey, "admin.accessKey", "", "Super user to sign calls as")
	f.fs.StringVar(&f.caFile, "admin.caFile", "", "PEM CA bundle of the admin API's certificate")
	f.fs.BoolVar(&f.insecureSkipVerify, "admin.insecureSkipVerify", false, "do not verify the admin API's certificate")
	f.fs.BoolVar(&f.tls, "admin.tls.enabled", false, "HTTPS to a bare HOST:PORT")
	return f
}

// parse parses flags that may come before or after the positional name.
// An unknown flag gets the same "did you mean" as a setting does.
func (f *adminFlags) parse(args []string, usage string) ([]string, error) {
	if err := f.checkNames(args); err != nil {
		return nil, fmt.Errorf("%w: %v\n%s", errUsage, err, usage)
	}
	var positional []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %s\n%s", errUsage, flagError(f.fs, err), usage)
		}
		args = f.fs.Args()
		if len(args) == 0 {
			if f.wait < 0 {
				return nil, fmt.Errorf("%w: --wait %v: give how long to wait for a starting proxy, 0 or more (0 fails at once)\n%s", errUsage, f.wait, usage)
			}
			if f.given("admin.address") && strings.TrimSpace(f.address) == "" {
				// A script's unset variable (--admin.address=$ADDR) fell
				// back to the configuration's address without a word.
				return nil, fmt.Errorf("%w: --admin.address is empty: give the admin API's HOST:PORT or URL, or leave the flag out to use admin.address of --config FILE or RMQPROXY_ADMIN_ADDRESS (default %s)\n%s", errUsage, admin.DefaultAddress, usage)
			}
			if f.given("config") && strings.TrimSpace(f.config) == "" {
				return nil, fmt.Errorf("%w: --config is empty: give the YAML file to read admin.* from, or leave the flag out (RMQPROXY_CONFIG names a file when set)\n%s", errUsage, usage)
			}
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// flagPackageDash matches a flag name as the flag package's errors write
// it, with a single dash ("for flag -queues", "for -orderly", "flag needs an
// argument: -queues").
var flagPackageDash = regexp.MustCompile(`(flag |for |argument: )-(\w)`)

// doubleDash returns a flag package error as the CLI writes flags: --name.
func doubleDash(err error) string {
	return flagPackageDash.ReplaceAllString(err.Error(), "${1}--${2}")
}

// flagValueError matches the flag package's error for a value its own
// types (bool, int, duration) cannot parse: the flag's name and the bare
// reason ("parse error", "value out of range").
var flagValueError = regexp.MustCompile(`for (?:flag )?-([\w.-]+): (parse error|value out of range)$`)

// flagError returns a flag package error as the CLI writes it (see
// doubleDash) and, for a value of one of the flag package's own types,
// says what the flag takes instead of a bare "parse error": "--wait 5"
// did not say that a duration needs its unit.
func flagError(fs *flag.FlagSet, err error) string {
	msg := doubleDash(err)
	m := flagValueError.FindStringSubmatch(err.Error())
	if m == nil {
		return msg
	}
	fl := fs.Lookup(m[1])
	if fl == nil {
		return msg
	}
	g, ok := fl.Value.(flag.Getter)
	if !ok {
		return msg
	}
	var takes string
	switch g.Get().(type) {
	case time.Duration:
		takes = "not a duration: give its unit, such as 10s, 1m30s or 0"
	case int, int64, uint, uint64:
		takes = "not a whole number"
		if m[2] == "value out of range" {
			takes = "out of range"
		}
	case bool:
		takes = "not true or false"
	default:
		return msg
	}
	return strings.TrimSuffix(msg, m[2]) + takes
}

// checkNames reports the first flag in args that is not defined.
func (f *adminFlags) checkNames(args []string) error {
	var names []string
	f.fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return nil
		}
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		fl := f.fs.Lookup(name)
		if fl == nil {
			return fmt.Errorf("unknown flag %q%s", "--"+name, didYouMean(name, names, "--"))
		}
		if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && b.IsBoolFlag()) {
			i++ // its value
		}
	}
	return nil
}

// resolveAddress fills the admin address from the configuration (a file
// named by --config or RMQPROXY_CONFIG, then RMQPROXY_ADMIN_ADDRESS) when
// --admin.address was not given, so the CLI finds a proxy configured the
// same way; likewise admin.tls.enabled, admin.accessKey and
// admin.secretKey. Only these settings are read (app.AdminClientKeys): the
// server's validation (admin.tls.certFile and keyFile with
// admin.tls.enabled, an address beyond loopback, the other sections) is
// not the client's, so the proxy's own file works here.
func (f *adminFlags) resolveAddress(src config.Sources) error {
	var args []string
	if f.config != "" {
		args = []string{"--config", f.config}
	}
	cfg, err := loadClientConfig(args, src, app.AdminClientKeys)
	if err != nil {
		return err
	}
	if f.address == "" {
		// Checked here as what the client dials, naming the setting;
		// the server's rules for a listen address are not the client's.
		if _, err := admin.NewClient(cfg.Admin.Address, nil); err != nil {
			return fmt.Errorf("invalid configuration:\nadmin.address: %w", err)
		}
		f.address = cfg.Admin.Address
	}
	if f.accessKey == "" {
		f.accessKey = cfg.Admin.AccessKey
	}
	f.secretKey = cfg.Admin.SecretKey
	if !f.given("admin.tls.enabled") {
		f.tls = cfg.Admin.TLS.Enabled
	}
	return nil
}

// given reports whether the flag name was on the command line.
func (f *adminFlags) given(name string) bool {
	set := false
	f.fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

func (f *adminFlags) client() (*admin.Client, error) {
	address := strings.TrimSpace(f.address)
	if f.tls && !strings.Contains(address, "://") {
		address = "https://" + address
	}
	hc, err := f.httpClient()
	if err != nil {
		return nil, err
	}
	c, err := admin.NewClient(address, hc)
	if err != nil || f.accessKey == "" {
		return c, err
	}
	if f.secretKey == "" {
		return nil, fmt.Errorf("%w: --admin.accessKey %s needs its secret in RMQPROXY_ADMIN_SECRET_KEY or admin.secretKey of --config FILE", errUsage, f.accessKey)
	}
	return c.WithCredentials(f.accessKey, []byte(f.secretKey)), nil
}

// httpClient is the HTTP client of the admin commands: the system's roots,
// or --admin.caFile's, or no verification with --admin.insecureSkipVerify.
func (f *adminFlags) httpClient() (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: f.insecureSkipVerify} //nolint:gosec // an explicit, documented flag
	if f.caFile != "" {
		pemData, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --admin.caFile: %v", errUsage, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("%w: --admin.caFile %s holds no PEM certificate", errUsage, f.caFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Timeout: admin.DefaultClientTimeout, Transport: tr}, nil
}

func commandContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// adminCommand is one command over the admin API (topic, group): its
// flags, shared by all its subcommands, and a table of subcommands.
type adminCommand struct {
	name  string // "topic": the command word, and what NAME names in errors
	usage string
	// arg is what the positional argument is, when not "<name> name".
	arg string
	// setup registers the command's flags on fs and returns its
	// subcommands, whose handlers read those flags.
	setup func(fs *flag.FlagSet) map[string]subcommand
}

// subcommand is one action of an adminCommand.
type subcommand struct {
	named bool // takes exactly one NAME; the others take none
	run   func(ctx context.Context, c *admin.Client, name string) (output, error)
}

// output is what a subcommand prints on success: text, or with --json the
// API's JSON form of value when it has one.
type output struct {
	value any                   // for admin.PrintJSON; nil prints text even with --json
	text  func(io.Writer) error // the table or the message
	// failure, when set, is returned after printing (the command exits 1).
	failure error
}

func (o output) print(w io.Writer, asJSON bool) error {
	var err error
	if asJSON && o.value != nil {
		err = admin.PrintJSON(w, o.value)
	} else {
		err = o.text(w)
	}
	if err != nil {
		return err
	}
	return o.failure
}

func show[T any](v T, table func(io.Writer, T) error) output {
	return output{value: v, text: func(w io.Writer) error { return table(w, v) }}
}

// list fetches every object and shows them.
func list[T any](get func(*admin.Client, context.Context) (T, error), table func(io.Writer, T) error) subcommand {
	return subcommand{run: func(ctx context.Context, c *admin.Client, _ string) (output, error) {
		v, err := get(c, ctx)
		return show(v, table), err
	}}
}

// describe fetches the named object (or its stats) and shows it.
func describe[T any](get func(*admin.Client, context.Context, string) (T, error), table func(io.Writer, T) error) subcommand {
	return subcommand{named: true, run: func(ctx context.Context, c *admin.Client, name string) (output, error) {
		v, err := get(c, ctx, name)
		return show(v, table), err
	}}
}

// save builds a spec for the named object from the flags, sends it (create
// or update) and shows the object the server answers with.
func save[S, T any](spec func(name string) (S, error), send func(*admin.Client, context.Context, S) (T, error), table func(io.Writer, T) error) subcommand {
	return subcommand{named: true, run: func(ctx context.Context, c *admin.Client, name string) (output, error) {
		s, err := spec(name)
		if err != nil {
			return output{}, err
		}
		v, err := send(c, ctx, s)
		return show(v, table), err
	}}
}

// remove deletes the named object and says so, as text even with --json.
func remove(del func(*admin.Client, context.Context, string) error, what string) subcommand {
	return subcommand{named: true, run: func(ctx context.Context, c *admin.Client, name string) (output, error) {
		return output{text: func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "deleted %s %s\n", what, name)
			return err
		}}, del(c, ctx, name)
	}}
}

// removeGroup deletes the named consumer group and says so, and says that
// its dead-letter topic, when it has one, was kept: it holds the messages
// the group gave up on, which deleting it silently (as upstream's mqadmin
// deleteSubGroup does) would lose.
var removeGroup = subcommand{named: true, run: func(ctx context.Context, c *admin.Client, name string) (output, error) {
	if err := c.DeleteGroup(ctx, name); err != nil {
		return output{}, err
	}
	dlq := domain.DeadLetterTopic(name)
	_, err := c.Topic(ctx, dlq)
	kept := err == nil
	return output{text: func(w io.Writer) error {
		if _, err := fmt.Fprintf(w, "deleted consumer group %s\n", name); err != nil || !kept {
			return err
		}
		_, err := fmt.Fprintf(w, "kept its dead-letter topic %s (the messages the group gave up on); delete it with `rmqproxy topic delete %s` once they are no longer needed\n", dlq, dlq)
		return err
	}}, nil
}}

// run parses args (the subcommand, then flags and positional arguments in
// any order) and runs the subcommand against the admin API.
func (cmd adminCommand) run(args []string, src config.Sources, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: rmqproxy %s needs a command\n%s", errUsage, cmd.name, cmd.usage)
	}
	sub := args[0]
	if isHelp(sub) || slices.ContainsFunc(args[1:], isHelpFlag) {
		_, err := io.WriteString(stdout, cmd.usage)
		return err
	}
	f := newAdminFlags(cmd.name + " " + sub)
	subs := cmd.setup(f.fs)
	if err := flagsFirst("rmqproxy "+cmd.name, args, slices.Sorted(maps.Keys(subs))); err != nil {
		return fmt.Errorf("%w\n%s", err, cmd.usage)
	}
	s, ok := subs[sub]
	if !ok {
		return fmt.Errorf("%w: unknown %s command %q%s\n%s", errUsage, cmd.name, sub, didYouMean(sub, slices.Sorted(maps.Keys(subs)), ""), cmd.usage)
	}
	pos, err := f.parse(args[1:], cmd.usage)
	if err != nil {
		return err
	}
	name := ""
	arg := cmd.arg
	if arg == "" {
		arg = cmd.name + " name"
	}
	if !s.named && len(pos) > 0 {
		// A list filters by flags, never by a name: printing every
		// object for "topic list orders" looked like an answer.
		hint := fmt.Sprintf("%s describe %s shows one", cmd.name, pos[0])
		if cmd.name == "client" {
			hint = "--group GROUP and --topic TOPIC filter the list"
		}
		return fmt.Errorf("%w: %s %s takes no %s, got %q (%s)\n%s", errUsage, cmd.name, sub, arg, pos[0], hint, cmd.usage)
	}
	if s.named {
		if len(pos) != 1 {
			return fmt.Errorf("%w: %s %s needs exactly one %s\n%s", errUsage, cmd.name, sub, arg, cmd.usage)
		}
		name = pos[0]
	}
	if err := f.resolveAddress(src); err != nil {
		return err
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	out, err := runWaiting(f, stderr, func() (output, error) {
		ctx, cancel := commandContext()
		defer cancel()
		return s.run(ctx, c, name)
	})
	if err != nil {
		return err
	}
	return out.print(stdout, f.json)
}

func isHelpFlag(arg string) bool { return arg != "help" && isHelp(arg) }

// runWaiting runs call, and while the admin API refuses connections (a
// proxy still starting: it listens once its data is recovered) calls it
// again, for up to --wait. Nothing was sent when a connection is refused,
// so a retried create cannot apply twice. It says once on stderr that it
// waits.
func runWaiting(f *adminFlags, stderr io.Writer, call func() (output, error)) (output, error) {
	out, err := call()
	if !errors.Is(err, syscall.ECONNREFUSED) || f.wait <= 0 {
		return out, err
	}
	fmt.Fprintf(stderr, "rmqproxy: no admin API at %s yet; waiting up to %v for rmqproxy to start (--wait changes this)\n", f.address, f.wait)
	deadline := time.NewTimer(f.wait)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			return out, fmt.Errorf("%w (waited %v)", err, f.wait)
		case <-tick.C:
		}
		if out, err = call(); !errors.Is(err, syscall.ECONNREFUSED) {
			return out, err
		}
	}
}

var topics = adminCommand{name: "topic", usage: topicUsage, setup: func(fs *flag.FlagSet) map[string]subcommand {
	typ := fs.String("type", "", "message type: NORMAL, FIFO, DELAY, TRANSACTION or MIXED")
	queues := int32Flag(fs, "queues", "queue count")
	desc := fs.String("description", "", "description")
	spec := func(name string) (application.TopicSpec, error) {
		s := application.TopicSpec{Name: name, QueueCount: *queues}
		if flagSet(fs, "queues") && *queues < 1 { // 0 is "not given" to the API
			return s, fmt.Errorf("%w: --queues %d: a topic needs at least 1 queue (without --queues, create makes %d and update keeps the count)",
				errUsage, *queues, application.DefaultTopicQueueCount)
		}
		if *typ != "" {
			t, err := domain.ParseTopicMessageType(*typ)
			if err != nil {
				return s, err
			}
			s.Type = t
		}
		if flagSet(fs, "description") {
			s.Description = desc
		}
		return s, nil
	}
	return map[string]subcommand{
		"list":     list((*admin.Client).Topics, admin.PrintTopics),
		"describe": describe((*admin.Client).Topic, admin.PrintTopic),
		"create":   save(spec, (*admin.Client).CreateTopic, admin.PrintTopic),
		"update":   save(spec, (*admin.Client).UpdateTopic, admin.PrintTopic),
		"delete":   remove((*admin.Client).DeleteTopic, "topic"),
	}
}}

var groups = adminCommand{name: "group", usage: groupUsage, setup: func(fs *flag.FlagSet) map[string]subcommand {
	attempts := int32Flag(fs, "maxDeliveryAttempts", "deliveries before a message goes to the dead-letter queue")
	retry := fs.String("retry", "", "customized retry delays, comma separated")
	retryExp := fs.String("retryExponential", "", "exponential retry: INITIAL,MAX,MULTIPLIER")
	orderly := fs.Bool("orderly", false, "consume FIFO topics in message-group order")
	desc := fs.String("description", "", "description")
	topic := fs.String("topic", "", "reset: the topic whose offsets to reset")
	to := fs.String("to", "", "reset: earliest, latest, an RFC 3339 time or a duration ago")
	queue := int32Flag(fs, "queue", "reset: only this queue")
	reset := subcommand{named: true, run: func(ctx context.Context, c *admin.Client, name string) (output, error) {
		if *topic == "" || *to == "" {
			return output{}, fmt.Errorf("%w: group reset needs --topic TOPIC and --to TIME\n%s", errUsage, groupUsage)
		}
		if _, err := application.ParseResetTarget(*to, time.Now()); err != nil {
			return output{}, fmt.Errorf("%w: --to: %s", errUsage, strings.TrimPrefix(err.Error(), domain.ReasonBadRequest.String()+": "))
		}
		qid := int32(-1)
		if flagSet(fs, "queue") {
			if *queue < 0 {
				return output{}, fmt.Errorf("%w: --queue %d: a queue id is 0 or more (without --queue every queue of the topic is reset)", errUsage, *queue)
			}
			qid = *queue
		}
		r, err := c.ResetOffset(ctx, name, *topic, qid, *to)
		return show(r, admin.PrintReset), err
	}}
	spec := func(name string) (application.GroupSpec, error) {
		s := application.GroupSpec{Name: name, MaxDeliveryAttempts: *attempts}
		if flagSet(fs, "maxDeliveryAttempts") && *attempts < 1 { // 0 is "not given" to the API
			return s, fmt.Errorf("%w: --maxDeliveryAttempts %d: a message gets at least 1 delivery (without the flag, create takes %d and update keeps the value)",
				errUsage, *attempts, domain.DefaultMaxDeliveryAttempts)
		}
		if flagSet(fs, "orderly") {
			s.Orderly = orderly
		}
		if flagSet(fs, "description") {
			s.Description = desc
		}
		p, err := retryPolicy(*retry, *retryExp)
		if err != nil {
			return s, err
		}
		s.RetryPolicy = p
		return s, nil
	}
	return map[string]subcommand{
		"list":     list((*admin.Client).Groups, admin.PrintGroups),
		"describe": describe((*admin.Client).Group, admin.PrintGroup),
		"stats":    describe((*admin.Client).GroupStats, admin.PrintGroupStats),
		"reset":    reset,
		"create":   save(spec, (*admin.Client).CreateGroup, admin.PrintGroup),
		"update":   save(spec, (*admin.Client).UpdateGroup, admin.PrintGroup),
		"delete":   removeGroup,
	}
}}

var clients = adminCommand{name: "client", usage: clientUsage, arg: "client id", setup: func(fs *flag.FlagSet) map[string]subcommand {
	group := fs.String("group", "", "list: consumers of this group only")
	topic := fs.String("topic", "", "list: clients of this topic only; verify: the message's topic")
	messageID := fs.String("messageId", "", "verify: the message's id")
	// answered shows a client's answer; one other than OK fails the command.
	answered := func(a admin.ClientAnswer, err error) (output, error) {
		out := show(a, admin.PrintClientAnswer)
		if err == nil && a.Code != "OK" {
			out.failure = fmt.Errorf("client %s answered %s", a.ClientID, a.Code)
			if a.Message != "" {
				out.failure = fmt.Errorf("%w: %s", out.failure, a.Message)
			}
		}
		return out, err
	}
	return map[string]subcommand{
		"list": {run: func(ctx context.Context, c *admin.Client, _ string) (output, error) {
			l, err := c.Clients(ctx, application.ClientFilter{Group: *group, Topic: *topic})
			return show(l, admin.PrintClients), err
		}},
		"stack": {named: true, run: func(ctx context.Context, c *admin.Client, id string) (output, error) {
			return answered(c.ClientStack(ctx, id))
		}},
		"verify": {named: true, run: func(ctx context.Context, c *admin.Client, id string) (output, error) {
			if *topic == "" || *messageID == "" {
				return output{}, fmt.Errorf("%w: client verify needs --topic and --messageId\n%s", errUsage, clientUsage)
			}
			return answered(c.VerifyMessage(ctx, id, *topic, *messageID))
		}},
	}
}}

func retryPolicy(customized, exponential string) (*domain.RetryPolicy, error) {
	switch {
	case customized != "" && exponential != "":
		return nil, fmt.Errorf("%w: give either --retry or --retryExponential", errUsage)
	case customized != "":
		var p domain.RetryPolicy
		for _, s := range strings.Split(customized, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("%w: --retry: %q is not a duration: give each delay with its unit, separated by commas, such as 1s,5s,30s", errUsage, strings.TrimSpace(s))
			}
			p.Delays = append(p.Delays, d)
		}
		return &p, nil
	case exponential != "":
		parts := strings.Split(exponential, ",")
		if len(parts) != 3 {
			return nil, fmt.Errorf("%w: --retryExponential takes INITIAL,MAX,MULTIPLIER, e.g. 1s,2h,2", errUsage)
		}
		var p domain.RetryPolicy
		var err1, err2, err3 error
		duration := func(what, s string) (time.Duration, error) {
			d, err := time.ParseDuration(s)
			if err != nil {
				return 0, fmt.Errorf("%s %q is not a duration: give it with its unit, such as 1s,2h,2", what, s)
			}
			return d, nil
		}
		p.Initial, err1 = duration("initial delay", strings.TrimSpace(parts[0]))
		p.Max, err2 = duration("maximum delay", strings.TrimSpace(parts[1]))
		// ParseFloat, not Sscanf, which ignores text after the number.
		m := strings.TrimSpace(parts[2])
		if p.Multiplier, err3 = strconv.ParseFloat(m, 64); err3 != nil || math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0) {
			err3 = fmt.Errorf("multiplier %q is not a number", m)
		}
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("%w: --retryExponential: %v", errUsage, err)
		}
		return &p, nil
	}
	return nil, nil
}

// int32Value is a flag for a count that is an int32 on the wire: a value
// out of its range is refused rather than wrapped.
type int32Value int32

func (v *int32Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 32)
	if errors.Is(err, strconv.ErrRange) {
		if strings.HasPrefix(strings.TrimSpace(s), "-") {
			return errors.New("out of range: at least -2147483648")
		}
		return errors.New("out of range: at most 2147483647")
	}
	if err != nil {
		return errors.New("not a whole number, such as 8")
	}
	*v = int32Value(n)
	return nil
}

func (v *int32Value) String() string { return strconv.FormatInt(int64(*v), 10) }

// int32Flag defines an int32 flag with default 0.
func int32Flag(fs *flag.FlagSet, name, usage string) *int32 {
	var v int32
	fs.Var((*int32Value)(&v), name, usage)
	return &v
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
