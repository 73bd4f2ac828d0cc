package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
)

const topicUsage = `Usage:
  rmqproxy topic create NAME [--type NORMAL|FIFO|DELAY|TRANSACTION|MIXED] [--queues N] [--description TEXT]
  rmqproxy topic update NAME [--type T] [--queues N] [--description TEXT]
  rmqproxy topic delete NAME
  rmqproxy topic list [--json]
  rmqproxy topic describe NAME [--json]

Every topic command takes --admin-address HOST:PORT (default: admin.address of
the configuration, 127.0.0.1:8082) and talks to a running rmqproxy.
`

const groupUsage = `Usage:
  rmqproxy group create NAME [--max-delivery-attempts N] [--retry 1s,5s,...]
                             [--retry-exponential INITIAL,MAX,MULTIPLIER] [--orderly] [--description TEXT]
  rmqproxy group update NAME [same flags]
  rmqproxy group delete NAME
  rmqproxy group list [--json]
  rmqproxy group describe NAME [--json]
  rmqproxy group stats NAME [--json]

--retry sets customized delays (the last repeats); --retry-exponential sets
an exponential backoff, e.g. 1s,2h,2. Every group command takes
--admin-address HOST:PORT (default 127.0.0.1:8082).
`

// adminFlags are the flags shared by topic and group commands.
type adminFlags struct {
	fs      *flag.FlagSet
	address string
	json    bool
}

func newAdminFlags(name string, src config.Sources) (*adminFlags, error) {
	// The admin address defaults to the configured one (file and
	// environment), so the CLI finds a proxy configured the same way.
	cfg, err := loadConfig(nil, src)
	if err != nil {
		return nil, err
	}
	f := &adminFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.Usage = func() {}
	f.fs.StringVar(&f.address, "admin-address", cfg.Admin.Address, "address of a running rmqproxy's admin API")
	f.fs.BoolVar(&f.json, "json", false, "print JSON")
	return f, nil
}

// parse parses flags that may come before or after the positional name.
func (f *adminFlags) parse(args []string, usage string) ([]string, error) {
	var positional []string
	for {
		if err := f.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, fmt.Errorf("%w\n%s", errUsage, usage)
			}
			return nil, fmt.Errorf("%w: %v\n%s", errUsage, err, usage)
		}
		args = f.fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func (f *adminFlags) client() (*admin.Client, error) {
	return admin.NewClient(f.address, nil)
}

func commandContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func topicCommand(args []string, src config.Sources, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w\n%s", errUsage, topicUsage)
	}
	sub := args[0]
	f, err := newAdminFlags("topic "+sub, src)
	if err != nil {
		return err
	}
	typ := f.fs.String("type", "", "message type: NORMAL, FIFO, DELAY, TRANSACTION or MIXED")
	queues := f.fs.Int("queues", 0, "queue count")
	desc := f.fs.String("description", "", "description")
	pos, err := f.parse(args[1:], topicUsage)
	if err != nil {
		return err
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	ctx, cancel := commandContext()
	defer cancel()
	spec := func() (application.TopicSpec, error) {
		s := application.TopicSpec{Name: pos[0], QueueCount: int32(*queues)}
		if *typ != "" {
			t, err := domain.ParseTopicMessageType(*typ)
			if err != nil {
				return s, err
			}
			s.Type = t
		}
		if flagSet(f.fs, "description") {
			s.Description = desc
		}
		return s, nil
	}
	needName := func() error {
		if len(pos) != 1 {
			return fmt.Errorf("%w: topic %s needs exactly one topic name\n%s", errUsage, sub, topicUsage)
		}
		return nil
	}
	switch sub {
	case "list":
		ts, err := c.Topics(ctx)
		if err != nil {
			return err
		}
		return render(stdout, f.json, ts, func() error { return admin.PrintTopics(stdout, ts) })
	case "create", "update", "describe", "delete":
		if err := needName(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown topic command %q\n%s", errUsage, sub, topicUsage)
	}
	var t domain.Topic
	switch sub {
	case "delete":
		if err := c.DeleteTopic(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted topic %s\n", pos[0])
		return nil
	case "describe":
		t, err = c.Topic(ctx, pos[0])
	default:
		s, serr := spec()
		if serr != nil {
			return serr
		}
		if sub == "create" {
			t, err = c.CreateTopic(ctx, s)
		} else {
			t, err = c.UpdateTopic(ctx, s)
		}
	}
	if err != nil {
		return err
	}
	return render(stdout, f.json, t, func() error { return admin.PrintTopic(stdout, t) })
}

func groupCommand(args []string, src config.Sources, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w\n%s", errUsage, groupUsage)
	}
	sub := args[0]
	f, err := newAdminFlags("group "+sub, src)
	if err != nil {
		return err
	}
	attempts := f.fs.Int("max-delivery-attempts", 0, "deliveries before a message goes to the dead-letter queue")
	retry := f.fs.String("retry", "", "customized retry delays, comma separated")
	retryExp := f.fs.String("retry-exponential", "", "exponential retry: INITIAL,MAX,MULTIPLIER")
	orderly := f.fs.Bool("orderly", false, "consume FIFO topics in message-group order")
	desc := f.fs.String("description", "", "description")
	pos, err := f.parse(args[1:], groupUsage)
	if err != nil {
		return err
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	ctx, cancel := commandContext()
	defer cancel()
	if sub == "list" {
		gs, err := c.Groups(ctx)
		if err != nil {
			return err
		}
		return render(stdout, f.json, gs, func() error { return admin.PrintGroups(stdout, gs) })
	}
	switch sub {
	case "create", "update", "describe", "delete", "stats":
		if len(pos) != 1 {
			return fmt.Errorf("%w: group %s needs exactly one group name\n%s", errUsage, sub, groupUsage)
		}
	default:
		return fmt.Errorf("%w: unknown group command %q\n%s", errUsage, sub, groupUsage)
	}
	name := pos[0]
	switch sub {
	case "delete":
		if err := c.DeleteGroup(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted consumer group %s\n", name)
		return nil
	case "stats":
		st, err := c.GroupStats(ctx, name)
		if err != nil {
			return err
		}
		return render(stdout, f.json, st, func() error { return admin.PrintGroupStats(stdout, st) })
	case "describe":
		g, err := c.Group(ctx, name)
		if err != nil {
			return err
		}
		return render(stdout, f.json, g, func() error { return admin.PrintGroup(stdout, g) })
	}
	s := application.GroupSpec{Name: name, MaxDeliveryAttempts: int32(*attempts)}
	if flagSet(f.fs, "orderly") {
		s.Orderly = orderly
	}
	if flagSet(f.fs, "description") {
		s.Description = desc
	}
	if p, err := retryPolicy(*retry, *retryExp); err != nil {
		return err
	} else if p != nil {
		s.RetryPolicy = p
	}
	var g domain.ConsumerGroup
	if sub == "create" {
		g, err = c.CreateGroup(ctx, s)
	} else {
		g, err = c.UpdateGroup(ctx, s)
	}
	if err != nil {
		return err
	}
	return render(stdout, f.json, g, func() error { return admin.PrintGroup(stdout, g) })
}

func retryPolicy(customized, exponential string) (*domain.RetryPolicy, error) {
	switch {
	case customized != "" && exponential != "":
		return nil, fmt.Errorf("%w: give either --retry or --retry-exponential", errUsage)
	case customized != "":
		var p domain.RetryPolicy
		for _, s := range strings.Split(customized, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("%w: --retry: %v", errUsage, err)
			}
			p.Delays = append(p.Delays, d)
		}
		return &p, nil
	case exponential != "":
		parts := strings.Split(exponential, ",")
		if len(parts) != 3 {
			return nil, fmt.Errorf("%w: --retry-exponential takes INITIAL,MAX,MULTIPLIER, e.g. 1s,2h,2", errUsage)
		}
		var p domain.RetryPolicy
		var err1, err2, err3 error
		p.Initial, err1 = time.ParseDuration(strings.TrimSpace(parts[0]))
		p.Max, err2 = time.ParseDuration(strings.TrimSpace(parts[1]))
		_, err3 = fmt.Sscanf(strings.TrimSpace(parts[2]), "%g", &p.Multiplier)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("%w: --retry-exponential: %v", errUsage, err)
		}
		return &p, nil
	}
	return nil, nil
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

func render(w io.Writer, asJSON bool, v any, table func() error) error {
	if asJSON {
		return admin.PrintJSON(w, v)
	}
	return table()
}
