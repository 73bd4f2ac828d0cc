// Command rmqproxy is a RocketMQ 5 proxy: it serves the official RocketMQ
// gRPC clients and, in local mode (the default), stores messages in an
// embedded durable broker engine in the same process.
//
// Run "rmqproxy --help" for the commands and "rmqproxy serve --help" for
// every setting.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"

	"go.uber.org/dig"
	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version from the build information is used.
var version = ""

// commit is the source commit, set at build time with -ldflags
// "-X main.commit=$(git rev-parse HEAD)" where the go command cannot stamp
// it (a build from a source archive, or with -buildvcs=false); otherwise
// vcs.revision from the build information is used.
var commit = ""

const usage = `rmqproxy: a RocketMQ 5 proxy serving the official gRPC clients.

Usage:
  rmqproxy [serve] [--setting=value ...]   run the proxy (local mode: embedded durable broker;
                                           --mode=cluster: in front of Apache RocketMQ NameServers
                                           and brokers, see the cluster.* settings)
  rmqproxy config print [--setting=value ...]
                                           print the effective configuration (secrets redacted)
  rmqproxy topic create|update|delete|list|describe ...
                                           manage the topics of a running proxy
  rmqproxy group create|update|delete|list|describe|stats|reset ...
                                           manage the consumer groups of a running proxy, show
                                           their progress, replay or skip messages (reset)
  rmqproxy client list|stack|verify ...    list the connected clients, print a client's thread
                                           stacks, have a consumer verify a message
  rmqproxy migrate up|down|version         manage the PostgreSQL schema (users, ACLs, audit log)
  rmqproxy user create|update|delete|get|list ...
                                           manage the users clients authenticate as (PostgreSQL)
  rmqproxy acl create|update|delete|get|list|import ...
                                           manage ACL 2.0 entries (PostgreSQL)
  rmqproxy audit query [--principal P] [--since 1h]
                                           read the audit log (PostgreSQL)
  rmqproxy version                         print the version (also --version)
  rmqproxy help [command]                  show help (also --help, or COMMAND --help)

Flags go after the command words: "rmqproxy migrate up --postgres.dsn DSN",
not "rmqproxy migrate --postgres.dsn DSN up".

Settings come from defaults < a YAML file (--config FILE or RMQPROXY_CONFIG)
< environment (RMQPROXY_GRPC_ADDRESS=...) < flags (--grpc.address=...).
"rmqproxy serve --help" lists every setting.

Exit status: 0 on success; 1 on a failure (the start failed or was
cancelled, the configuration is invalid, a command the proxy or PostgreSQL
refused or could not be reached for); 2 on a usage error (an unknown
command or flag, a flag value that does not parse, a missing argument).

Quick start:
  rmqproxy &                               # gRPC on :8081, admin API on 127.0.0.1:8082,
                                           # health and metrics on :9090, data in ./data
  rmqproxy topic create orders --type NORMAL
  rmqproxy --mode=cluster --cluster.nameServers=10.0.0.1:9876 &   # cluster mode instead
`

const serveUsage = `Usage: rmqproxy [serve] [--config FILE] [--setting=value ...]

Runs the proxy until SIGINT or SIGTERM, then stops in stages (see the
shutdown settings); a second signal ends the drain at once, and the storage
engine still flushes and closes. A signal during the start cancels it: what
had started stops and rmqproxy exits 1. Flags are --key=value or --key
value; a boolean alone (--auth.enabled) means true.

`

const configUsage = `Usage: rmqproxy config print [--config FILE] [--setting=value ...]

Prints the effective configuration as YAML that --config reads back, with
each setting's help as a comment and secrets redacted. Settings that follow
others while empty (local.storeHost, grpc.tls.selfSignedDir) are printed
empty while they do, so that a file written from it keeps them following.

`

// stdin is where --secret-stdin reads from (tests replace it).
var stdin io.Reader = os.Stdin

// commands are the first words run knows, for suggestions.
var commands = []string{"serve", "config", "topic", "group", "client", "migrate", "user", "acl", "audit", "version", "help"}

func main() {
	os.Exit(run(os.Args[1:], config.FromOS(""), os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code: 0 on
// success, 1 on a failure (serve: also a start cancelled by SIGTERM or
// SIGINT; an invalid configuration from the file, the environment or
// validation), 2 on a usage error (also a setting flag that is unknown or
// does not parse).
func run(args []string, src config.Sources, stdout, stderr io.Writer) int {
	cmd, rest := "serve", args
	if len(args) > 0 {
		switch a := args[0]; {
		case isHelp(a):
			cmd, rest = "help", args[1:]
		case a == "--version" || a == "-version":
			cmd, rest = "version", args[1:]
		case strings.HasPrefix(a, "-") && config.Closest(strings.TrimLeft(a, "-"), []string{"version"}) != "":
			// --verison: no setting is named anything like it.
			fmt.Fprintf(stderr, "%s: unknown flag %q (did you mean --version?)\n", errUsage, a)
			return 2
		case a != "" && a[0] != '-':
			cmd, rest = a, args[1:]
		}
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(rest, src, stdout, stderr)
		var arg *config.ArgumentError
		if cmd != args0(args) && errors.As(err, &arg) && slices.Contains(commands, arg.Arg) {
			// rmqproxy --log.level debug migrate up
			if hint := flagsFirst("rmqproxy", args, commands); hint != nil {
				err = hint
			}
		}
	case "config":
		err = configCommand(rest, src, stdout)
	case "topic":
		err = topics.run(rest, src, stdout, stderr)
	case "group":
		err = groups.run(rest, src, stdout, stderr)
	case "client":
		err = clients.run(rest, src, stdout, stderr)
	case "migrate":
		err = migrateCommand(rest, src, stdout)
	case "user", "acl", "audit":
		err = securityRun[cmd](rest, src, stdin, stdout, stderr)
	case "version":
		if len(rest) > 0 && isHelp(rest[0]) {
			err = help([]string{"version"}, stdout)
			break
		}
		if len(rest) > 0 {
			err = fmt.Errorf("%w: rmqproxy version takes no arguments", errUsage)
			break
		}
		fmt.Fprintln(stdout, versionString())
	case "help":
		err = help(rest, stdout)
	default:
		err = fmt.Errorf("%w: unknown command %q%s; run \"rmqproxy help\"", errUsage, cmd, didYouMean(cmd, commands, ""))
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errStartCancelled):
		return 1 // logged already
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, err)
		return 2
	default:
		fmt.Fprintln(stderr, "rmqproxy:", err)
		return 1
	}
}

var errUsage = errors.New("usage")

// args0 is args[0], or "".
func args0(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// flagsFirst is the usage error of a command line that gives flags before
// the command word (rmqproxy migrate --postgres.dsn DSN up): every command
// takes its flags after its words, as the usage lines show. The error
// shows how to write it, with the words moved first and the flags' values
// left out ("…", for a DSN or a secret must not reach a terminal log);
// prefix is what precedes args ("rmqproxy migrate") and words are the
// command words that may come first. nil when args does not start with a
// flag.
func flagsFirst(prefix string, args, words []string) error {
	if len(args) == 0 || len(args[0]) < 2 || args[0][0] != '-' || isHelp(args[0]) {
		return nil
	}
	at := slices.IndexFunc(args, func(a string) bool { return slices.Contains(words, a) })
	if at < 0 {
		return fmt.Errorf("%w: %s needs its command (%s) before the flags: %s %s %s",
			errUsage, prefix, orList(words), prefix, strings.Join(words, "|"), strings.Join(elideValues(args), " "))
	}
	fixed := append([]string{prefix, args[at]}, elideValues(args[at+1:])...)
	line := strings.Join(append(fixed, elideValues(args[:at])...), " ")
	if strings.Contains(line, "…") {
		line += "  (… for each value)"
	}
	return fmt.Errorf("%w: flags go after the command, not before it: %s", errUsage, line)
}

// elideValues returns args with the values of flags replaced by "…":
// after "=", and an argument that follows a flag without one.
func elideValues(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "-"):
			if name, _, ok := strings.Cut(a, "="); ok {
				a = name + "=…"
			}
		case i > 0 && strings.HasPrefix(args[i-1], "-") && !strings.Contains(args[i-1], "="):
			a = "…"
		}
		out[i] = a
	}
	return out
}

// orList writes words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// didYouMean returns " (did you mean PREFIX+X?)" for the candidate X
// closest to s, or "".
func didYouMean(s string, candidates []string, prefix string) string {
	if c := config.Closest(s, candidates); c != "" {
		return " (did you mean " + prefix + c + "?)"
	}
	return ""
}

func help(args []string, w io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(w, usage)
		return nil
	}
	switch args[0] {
	case "serve":
		return writeSettingsHelp(w, serveUsage)
	case "config":
		return writeSettingsHelp(w, configUsage)
	case "topic":
		fmt.Fprint(w, topicUsage)
	case "group":
		fmt.Fprint(w, groupUsage)
	case "client":
		fmt.Fprint(w, clientUsage)
	case "migrate":
		fmt.Fprint(w, migrateUsage)
	case "user":
		fmt.Fprint(w, userUsage)
	case "acl":
		fmt.Fprint(w, aclUsage)
	case "audit":
		fmt.Fprint(w, auditUsage)
	case "version":
		fmt.Fprintln(w, "Usage: rmqproxy version (or rmqproxy --version): print the version, commit and Go version of this build")
	default:
		return fmt.Errorf("%w: no help for %q%s; the commands are %s", errUsage, args[0], didYouMean(args[0], commands, ""), strings.Join(commands, ", "))
	}
	return nil
}

func writeSettingsHelp(w io.Writer, intro string) error {
	fmt.Fprint(w, intro)
	fmt.Fprintln(w, "Settings (flag, type, environment variable, default):")
	return config.WriteHelp(w, config.Reference(app.Defaults(app.ProfileDevelopment)))
}

// versionString describes this build: the version set with -ldflags or
// recorded by the go command (a tagged module version), the commit it was
// built from (set with -ldflags, or stamped by the go command; "commit
// unknown" when neither), and the Go version.
func versionString() string {
	info, _ := debug.ReadBuildInfo()
	return describeBuild(version, commit, info)
}

// describeBuild is versionString over given inputs; info may be nil.
func describeBuild(v, c string, info *debug.BuildInfo) string {
	ok := info != nil
	if v == "" && ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	if v == "" {
		v = "dev"
	}
	rev, modified := c, ""
	if rev == "" && ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
	}
	details := []string{"commit unknown (built without VCS information)"}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if modified == "true" {
			rev += "-dirty"
		}
		details = []string{"commit " + rev}
	}
	goVersion := runtime.Version()
	if ok && info.GoVersion != "" {
		goVersion = info.GoVersion
	}
	details = append(details, goVersion+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return "rmqproxy " + v + " (" + strings.Join(details, ", ") + ")"
}

// loadConfig reads and validates the whole configuration, for serve and
// config print. The profile is read first, because it chooses the defaults
// the other settings start from.
func loadConfig(args []string, src config.Sources) (app.Root, error) {
	return readConfig(args, src, config.Load)
}

// loadClientConfig reads the configuration for a client command (topic,
// group, client, migrate, user, acl, audit) that reads only the settings
// uses of a configuration it may share with the server: every value must
// parse, but the server's validation does not run (a client has no use
// for the admin API's certificate files, the gRPC listener, the data
// directory ...); the command checks the settings it uses.
func loadClientConfig(args []string, src config.Sources, uses []string) (app.Root, error) {
	return readConfig(args, src, func(dst any, src config.Sources) error { return config.LoadFor(dst, src, uses...) })
}

func readConfig(args []string, src config.Sources, load func(any, config.Sources) error) (app.Root, error) {
	src.Args = args
	probe := app.Defaults(app.ProfileDevelopment)
	err := load(&probe, src)
	if errors.Is(err, config.ErrHelp) {
		return app.Root{}, err
	}
	profile := probe.Profile
	if profile != app.ProfileProduction {
		profile = app.ProfileDevelopment
	}
	root := app.Defaults(profile)
	if err := load(&root, src); err != nil {
		if errors.Is(err, config.ErrUsage) {
			return app.Root{}, fmt.Errorf("%w: %w\n(\"rmqproxy serve --help\" lists every setting)", errUsage, err)
		}
		return app.Root{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return root, nil
}

// loadConfigAndFiles is loadConfig for serve and config print: the files
// the configuration names must also exist (app.Root.CheckFiles).
func loadConfigAndFiles(args []string, src config.Sources) (app.Root, error) {
	cfg, err := loadConfig(args, src)
	if err != nil {
		return cfg, err
	}
	if err := cfg.CheckFiles(); err != nil {
		return app.Root{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// defaultGCPercent is the garbage collector's growth target when the GOGC
// environment variable is not set. The proxy's live heap is small (tens of
// MB) while every request allocates, so Go's default of 100 runs a
// collection every few MB: 400 spends about a fifth less CPU per durable
// send (docs/benchmarks.md) for a heap up to five times the live one.
// GOGC (and GOMEMLIMIT) still decide when set.
const defaultGCPercent = 400

func serve(args []string, src config.Sources, stdout, stderr io.Writer) error {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	cfg, err := loadConfigAndFiles(args, src)
	if errors.Is(err, config.ErrHelp) {
		return writeSettingsHelp(stdout, serveUsage)
	}
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.Log)
	// SIGHUP (systemctl reload, log rotation) must never end the process:
	// the traffic rules module reloads on it between its start and stop
	// hooks; outside them (while fx builds the graph, after the module
	// stopped, after serve returned and until the process exits) it is
	// dropped here instead of taking the default action.
	holdHangup()
	// SIGTERM and SIGINT are caught from here on: during the start (a
	// long recovery, a cluster waiting for a NameServer) they cancel it
	// and stop in order what had started (see start).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	a := fx.New(app.Options(cfg, log))
	if err := a.Err(); err != nil {
		// The cause a constructor returned, without the dependency
		// injection's chain of "could not build arguments for ...".
		return dig.RootCause(err)
	}
	// A second signal hurries the stop: the drain notice and the gRPC
	// drain end at once; the engine still flushes and closes.
	hurry, hurryNow := context.WithCancel(context.Background())
	defer hurryNow()
	startSignal, err := start(a, log, sig, hurry, hurryNow)
	if startSignal != nil {
		var stopErrs []error
		if err != nil {
			// fx returns the hook's error and then the rollback's.
			errs := []error{err}
			if u, ok := err.(interface{ Unwrap() []error }); ok && len(u.Unwrap()) > 0 {
				errs = u.Unwrap()
			}
			// The signal is the reason: what the cancelled hook
			// returned is for debugging.
			if e := errs[0]; errors.Is(e, context.Canceled) {
				log.Debug("the cancelled start hook returned", "error", e)
			} else {
				log.Error("the start failed", "error", e)
			}
			stopErrs = errs[1:]
		} else if err := stop(a, cfg, log, sig, hurry, hurryNow); err != nil {
			// The start finished as the signal came: stopped as usual.
			stopErrs = []error{err}
		}
		for _, e := range stopErrs {
			log.Error("stopping what had started failed", "error", e)
		}
		log.Info("rmqproxy stopped", "start_cancelled", true)
		return errStartCancelled
	}
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	log.Info("rmqproxy started", "version", versionString(), "mode", cfg.Mode, "profile", cfg.Profile)
	if err := awaitStop(a, cfg, log, sig, hurry, hurryNow); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	log.Info("rmqproxy stopped")
	return nil
}

// awaitStop waits for the SIGTERM or SIGINT on sig that asks for the stop,
// then stops a (see stop: a further signal hurries it). It waits on sig
// only, not on a.Done: fx relays the first SIGTERM or SIGINT there too,
// and a wait woken by that relay left the same signal in sig, where stop
// took it for a second one (now and then, as the two deliveries raced):
// the drain notice and the gRPC drain ended at once.
func awaitStop(a *fx.App, cfg app.Root, log *slog.Logger, sig <-chan os.Signal, hurry context.Context, hurryNow context.CancelFunc) error {
	s := <-sig
	log.Info("stopping", "signal", s.String())
	return stop(a, cfg, log, sig, hurry, hurryNow)
}

// errStartCancelled is serve's error when a SIGTERM or SIGINT came during
// the start: logged already, the process exits 1 without printing it.
var errStartCancelled = errors.New("start cancelled by a signal")

// start starts a. A signal on sig during the start cancels it (logged
// with what the start was doing): the running OnStart hook returns, and
// what had started stops in reverse order within its stop budgets,
// hurried by a second signal. It returns the signal that cancelled the
// start (nil if none came) and Start's error.
func start(a *fx.App, log *slog.Logger, sig <-chan os.Signal, hurry context.Context, hurryNow context.CancelFunc) (os.Signal, error) {
	cancelled, cancelNow := context.WithCancel(context.Background())
	defer cancelNow()
	var progress app.StartProgress
	// No deadline on the start as a whole: each stage's hooks have their
	// own (app.StartTimeout), and a deadline here would leave fx's
	// rollback an expired context, stopping nothing.
	ctx := app.WithStartCancel(app.WithHurry(context.Background(), hurry), cancelled, &progress)
	var (
		got     os.Signal
		watcher sync.WaitGroup
	)
	done := make(chan struct{})
	watcher.Go(func() {
		select {
		case s := <-sig:
			got = s
			log.Warn("start cancelled by a signal; stopping what has started", "signal", s.String(), "in_progress", progress.Doing())
			cancelNow()
		case <-done:
			return
		}
		select {
		case s := <-sig:
			log.Warn("second signal: stopping what has started without waiting for clients; the engine still flushes and closes (kill -9 would not)", "signal", s.String())
			hurryNow()
		case <-done:
		}
	})
	err := a.Start(ctx)
	close(done)
	watcher.Wait()
	return got, err
}

// stop stops a within its stop budgets; a signal on sig hurries it.
func stop(a *fx.App, cfg app.Root, log *slog.Logger, sig <-chan os.Signal, hurry context.Context, hurryNow context.CancelFunc) error {
	stopCtx, cancelStop := context.WithTimeout(context.Background(), app.StopTimeout(cfg))
	defer cancelStop()
	stopped := make(chan struct{})
	var waiter sync.WaitGroup
	waiter.Go(func() {
		select {
		case s := <-sig:
			log.Warn("second signal: ending the drain now; the engine still flushes and closes (kill -9 would not)", "signal", s.String())
			hurryNow()
		case <-stopped:
		}
	})
	err := a.Stop(app.WithHurry(stopCtx, hurry))
	close(stopped)
	waiter.Wait()
	return err
}

// holdHangup catches SIGHUP from its first call until the process exits
// and drops it (a channel nobody reads: the signal package does not block
// on a full one); other handlers of the signal still receive it. There is
// no release: one released as serve returned left a window, before main's
// os.Exit, in which a SIGHUP took its default action and ended the
// process with a signal status instead of serve's exit code.
// (signal.Ignore would not do: a later signal.Notify by the traffic rules
// module would catch it again, and its signal.Stop would restore the
// default action.)
func holdHangup() {
	hangupOnce.Do(func() { signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP) })
}

var hangupOnce sync.Once

func configCommand(args []string, src config.Sources, stdout io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		return writeSettingsHelp(stdout, configUsage)
	}
	if err := flagsFirst("rmqproxy config", args, []string{"print"}); err != nil {
		return fmt.Errorf("%w\nUsage: rmqproxy config print [--config FILE] [--setting=value ...]", err)
	}
	if len(args) == 0 || args[0] != "print" {
		sub := ": rmqproxy config needs a command"
		if len(args) > 0 {
			sub = fmt.Sprintf(": unknown config command %q%s", args[0], didYouMean(args[0], []string{"print"}, ""))
		}
		return fmt.Errorf("%w%s\nUsage: rmqproxy config print [--config FILE] [--setting=value ...]", errUsage, sub)
	}
	cfg, err := loadConfigAndFiles(args[1:], src)
	if errors.Is(err, config.ErrHelp) {
		return writeSettingsHelp(stdout, configUsage)
	}
	if err != nil {
		return err
	}
	return config.Print(stdout, cfg.Underived())
}
