// Command rmqproxy is a RocketMQ 5 proxy: it serves the official RocketMQ
// gRPC clients and, in local mode (the default), stores messages in an
// embedded durable broker engine in the same process.
//
// Run "rmqproxy help" for the commands and "rmqproxy serve --help" for every
// setting.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `rmqproxy: a RocketMQ 5 proxy serving the official gRPC clients.

Usage:
  rmqproxy [serve] [--setting=value ...]   run the proxy (local mode: embedded durable broker)
  rmqproxy config print [--setting=value ...]
                                           print the effective configuration (secrets redacted)
  rmqproxy topic create|update|delete|list|describe ...
  rmqproxy group create|update|delete|list|describe|stats ...
                                           manage topics and consumer groups of a running proxy
  rmqproxy version                         print the version
  rmqproxy help [command]                  show help

Settings come from defaults < a YAML file (--config FILE or RMQPROXY_CONFIG)
< environment (RMQPROXY_GRPC_ADDRESS=...) < flags (--grpc.address=...).
"rmqproxy serve --help" lists every setting.

Quick start:
  rmqproxy                                 # gRPC on :8081, data under ./data
  rmqproxy topic create orders --type NORMAL
`

func main() {
	os.Exit(run(os.Args[1:], config.FromOS(""), os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code.
func run(args []string, src config.Sources, stdout, stderr io.Writer) int {
	cmd, rest := "serve", args
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, rest = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(rest, src, stderr)
	case "config":
		err = configCommand(rest, src, stdout)
	case "topic":
		err = topicCommand(rest, src, stdout)
	case "group":
		err = groupCommand(rest, src, stdout)
	case "version":
		fmt.Fprintln(stdout, "rmqproxy", version)
	case "help", "-h", "--help":
		err = help(rest, stdout)
	default:
		err = fmt.Errorf("unknown command %q; run \"rmqproxy help\"", cmd)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, err)
		return 2
	default:
		fmt.Fprintln(stderr, "rmqproxy:", err)
		return 1
	}
}

var errUsage = errors.New("usage")

func help(args []string, w io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(w, usage)
		return nil
	}
	switch args[0] {
	case "serve", "config":
		return writeSettingsHelp(w)
	case "topic":
		fmt.Fprint(w, topicUsage)
	case "group":
		fmt.Fprint(w, groupUsage)
	default:
		return fmt.Errorf("%w: no help for %q", errUsage, args[0])
	}
	return nil
}

func writeSettingsHelp(w io.Writer) error {
	fmt.Fprintln(w, "Settings (flag, type, environment variable, default):")
	return config.WriteHelp(w, config.Reference(app.Defaults(app.ProfileDevelopment)))
}

// loadConfig reads the configuration. The profile is read first, because
// it chooses the defaults the other settings start from.
func loadConfig(args []string, src config.Sources) (app.Root, error) {
	src.Args = args
	probe := app.Defaults(app.ProfileDevelopment)
	err := config.Load(&probe, src)
	if errors.Is(err, config.ErrHelp) {
		return app.Root{}, err
	}
	profile := probe.Profile
	if profile != app.ProfileProduction {
		profile = app.ProfileDevelopment
	}
	root := app.Defaults(profile)
	if err := config.Load(&root, src); err != nil {
		return app.Root{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return root, nil
}

func serve(args []string, src config.Sources, stderr io.Writer) error {
	cfg, err := loadConfig(args, src)
	if errors.Is(err, config.ErrHelp) {
		return writeSettingsHelp(stderr)
	}
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.Log)
	a := fx.New(app.Options(cfg, log))
	if err := a.Err(); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(context.Background(), app.StartTimeout)
	defer cancel()
	if err := a.Start(startCtx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	log.Info("rmqproxy started", "version", version, "mode", cfg.Mode, "profile", cfg.Profile)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case s := <-sig:
		log.Info("stopping", "signal", s.String())
	case <-a.Done():
	}
	stopCtx, cancelStop := context.WithTimeout(context.Background(), app.StopTimeout(cfg))
	defer cancelStop()
	if err := a.Stop(stopCtx); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	log.Info("rmqproxy stopped")
	return nil
}

func configCommand(args []string, src config.Sources, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "print" {
		return fmt.Errorf("%w: rmqproxy config print [--setting=value ...]", errUsage)
	}
	cfg, err := loadConfig(args[1:], src)
	if errors.Is(err, config.ErrHelp) {
		return writeSettingsHelp(stdout)
	}
	if err != nil {
		return err
	}
	return config.Print(stdout, cfg)
}
