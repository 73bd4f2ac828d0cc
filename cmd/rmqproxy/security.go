package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/adapters/policyfile"
	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

const pgSettingsUsage = `These commands change PostgreSQL directly (auth.source postgres); every
running proxy applies a change within a second. With auth.source file,
edit the policy file (auth.file) instead. Settings:
  --postgres.dsn DSN            (or RMQPROXY_POSTGRES_DSN, or --config FILE)
  --postgres.secretKeys KEYS    to write secrets (RMQPROXY_POSTGRES_SECRET_KEYS)
  --postgres.activeSecretKey ID the key of secretKeys that encrypts new secrets
                                (RMQPROXY_POSTGRES_ACTIVE_SECRET_KEY; default: the only one)
Every change is recorded in the audit log, as done by cli:<OS user>, with
the PostgreSQL role that made it (details dbUser) and the address
PostgreSQL saw.
`

const userUsage = `Usage:
  rmqproxy user create NAME [--type Normal|Super] [--status enable|disable]
                            [--description TEXT] [--secret-stdin]
  rmqproxy user update NAME [--type T] [--status S] [--description TEXT]
                            [--secret-stdin | --secret-generate]
  rmqproxy user delete NAME          (deletes its ACL entries too)
  rmqproxy user get NAME [--json]
  rmqproxy user list [--filter TEXT] [--json]

NAME is the AccessKey clients use. create generates a secret (43
characters) and prints it once, unless --secret-stdin reads one (16 to 1024
printable ASCII characters) from standard input. Secrets are stored
encrypted and never shown again. The last enabled Super user cannot be
disabled, demoted or deleted.

` + pgSettingsUsage

const aclUsage = `Usage:
  rmqproxy acl create User:NAME --resource KEY --actions A[,A...] [--decision Allow|Deny]
                      [--source-ip CIDR[,CIDR...]] [--policy-type Custom|Default]
  rmqproxy acl update User:NAME --resource KEY ... (same flags; the entry must exist)
  rmqproxy acl delete User:NAME [--resource KEY] [--policy-type T]
  rmqproxy acl get User:NAME [--policy-type T] [--json]
  rmqproxy acl list [--policy-type T] [--json]
  rmqproxy acl import FILE [--format acl|plain] [--dry-run]

KEY is an ACL 2.0 resource: * (everything), Topic:* or Group:* (every topic
or group), Topic:orders-* (a prefix), Topic:orders (one). Actions: All, Pub,
Sub, Create, Update, Delete, Get, List. Source addresses restrict the entry
to clients from them. Within a policy type, Deny beats Allow
(auth.conflictResolution deny_overrides), or the most specific entry wins
(rocketmq). Default entries count only when no Custom entry matches.

import reads an ACL 2.0 export (JSON or YAML: users and acls as mqadmin
lists them; --format acl, the default) or a classic plain_acl.yml (--format
plain) and applies it in one transaction; --dry-run changes nothing and
shows, against what PostgreSQL holds, each user it would create (with the
defaults for what the file leaves out) or update (keeping what the file
leaves out), and the entries it would put.

` + pgSettingsUsage

const auditUsage = `Usage:
  rmqproxy audit query [--principal NAME] [--since DURATION|TIME] [--until DURATION|TIME]
                       [--decision ALLOW|DENY|ERROR] [--category authn|authz|admin|system]
                       [--resource TYPE:NAME] [--operation OP] [--request-id ID]
                       [--client-id ID] [--source ADDRESS|PREFIX] [--limit N] [--json]

Prints audit events, newest first: authentication failures, authorization
denials (and allowed requests with auth.auditAllowed), admin changes, and
"audit.dropped" system events that count events lost when the buffer was
full. Repeated refusals are coalesced: COUNT says how many decisions an
event stands for, from its TIME to its LAST. --since and --until take a
duration back from now (1h) or an RFC 3339 time; --since finds events
whose last occurrence is since then, --until those whose first is before
then. --resource (Topic:orders, User:alice for admin changes), --operation
(SendMessage, acl.put), --request-id (a client's, or an admin call's
X-Request-Id) and --client-id select events naming exactly that;
--source those from an address or a CIDR prefix (10.0.0.0/8). --limit
prints at most that many (1 to 10000, default 100).
It reads PostgreSQL directly (auth.source postgres); with auth.source file
the audit events are in the proxy's log (component=audit). Settings:
  --postgres.dsn DSN            (or RMQPROXY_POSTGRES_DSN, or --config FILE)
`

// noPostgresWithPolicyFile is the error of the user, acl and audit commands
// run with a configuration that keeps users and ACL entries in a policy
// file (auth.source file) and names no database: they would act on a
// database the proxy does not read, so the error says where its users,
// entries and audit events are instead.
func noPostgresWithPolicyFile(file string) string {
	where := "the policy file auth.file"
	if file != "" {
		where = fmt.Sprintf("the policy file auth.file (%s)", file)
	}
	return "no PostgreSQL: the configuration has auth.source file, so the proxy reads its users and ACL entries from " + where +
		": edit that file (the proxy reloads it when it changes)," +
		" and its audit events are in the proxy's log (component=audit). The user, acl and audit commands act on PostgreSQL" +
		" (auth.source postgres): set --postgres.dsn, RMQPROXY_POSTGRES_DSN or postgres.dsn in --config FILE"
}

// securityCLI is what the user, acl and audit commands need.
type securityCLI struct {
	admin *application.SecurityAdmin
	actor ports.Actor
	close func()
}

// keyUse is what a command does with postgres.secretKeys.
type keyUse int

const (
	keysUnused keyUse = iota // audit: never read
	keysIfSet                // user and acl commands: read when set
	keysNeeded               // writing a secret: required
)

func openSecurity(settings []string, src config.Sources, keyUse keyUse) (*securityCLI, error) {
	uses := app.SecurityClientKeys
	if keyUse == keysUnused {
		uses = app.AuditClientKeys
	}
	cfg, err := loadClientConfig(settings, src, uses)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckPostgresClient(keyUse != keysUnused); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if cfg.Postgres.DSN == "" {
		if cfg.Auth.Source == application.SourceFile {
			return nil, errors.New(noPostgresWithPolicyFile(cfg.Auth.File))
		}
		return nil, errors.New("no PostgreSQL: set --postgres.dsn, RMQPROXY_POSTGRES_DSN or postgres.dsn in --config FILE")
	}
	var keys *postgres.Keyring
	if keyUse != keysUnused && cfg.Postgres.SecretKeys != "" {
		if keys, err = postgres.ParseKeyring(cfg.Postgres.SecretKeys, cfg.Postgres.ActiveSecretKey); err != nil {
			return nil, err
		}
	} else if keyUse == keysNeeded {
		return nil, errors.New("writing a secret needs the encryption keys: set --postgres.secretKeys or RMQPROXY_POSTGRES_SECRET_KEYS (the proxies' postgres.secretKeys)")
	}
	pc, err := pgxpool.ParseConfig(cfg.Postgres.DSN)
	if err != nil {
		return nil, errors.New("postgres.dsn is not a PostgreSQL connection string")
	}
	pc.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := commandContext()
	defer cancel()
	if _, err := postgres.CheckSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return &securityCLI{
		admin: application.NewSecurityAdmin(postgres.NewStore(pool, keys, postgres.ProxyID())),
		actor: ports.Actor{Principal: "cli:" + name, Protocol: "cli"},
		close: pool.Close,
	}, nil
}

// cliFlags parses a command's own flags, before or after positional
// arguments, and keeps settings apart.
type cliFlags struct {
	fs    *flag.FlagSet
	usage string
}

func newCLIFlags(name, usage string) *cliFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cliFlags{fs: fs, usage: usage}
}

func (c *cliFlags) parse(args []string) (positional, settings []string, err error) {
	own := map[string]bool{}
	c.fs.VisitAll(func(f *flag.Flag) {
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		own[f.Name] = !(ok && b.IsBoolFlag())
	})
	rest, settings, err := splitArgs(args, own)
	if err != nil {
		return nil, nil, fmt.Errorf("%w\n%s", err, c.usage)
	}
	for {
		if err := c.fs.Parse(rest); err != nil {
			return nil, nil, fmt.Errorf("%w: %s\n%s", errUsage, flagError(c.fs, err), c.usage)
		}
		rest = c.fs.Args()
		if len(rest) == 0 {
			return positional, settings, nil
		}
		positional = append(positional, rest[0])
		rest = rest[1:]
	}
}

func (c *cliFlags) set(name string) bool { return flagSet(c.fs, name) }

func readSecret(stdin io.Reader) (domain.Secret, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, domain.MaxSecretLength+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, fmt.Errorf("%w: --secret-stdin read no secret", errUsage)
	}
	return domain.Secret(line), nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type userJSON struct {
	Username    string `json:"username"`
	UserType    string `json:"userType"`
	UserStatus  string `json:"userStatus"`
	Description string `json:"description,omitempty"`
}

func printUsers(w io.Writer, users []domain.User, asJSON bool) error {
	if asJSON {
		out := make([]userJSON, len(users))
		for i, u := range users {
			out[i] = userJSON{u.Name, u.Type.String(), u.Status.String(), u.Description}
		}
		return printJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tSTATUS\tDESCRIPTION")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Type, u.Status, oneLine(u.Description))
	}
	return tw.Flush()
}

// printImportPlan shows what an import would do to what PostgreSQL holds
// now (acl import --dry-run): each user it would create, with the
// defaults for what the file leaves out (Normal, enable), and each it
// would update, keeping what the file leaves out; then the entries it
// would put. An import the store would refuse for a new user without a
// secret is reported as an error after the plan.
func printImportPlan(ctx context.Context, w io.Writer, admin *application.SecurityAdmin, users []ports.ImportUser, entries []domain.ACLEntry) error {
	stored := make([]*domain.User, len(users))
	var creates int
	var noSecret []string
	for i, u := range users {
		got, err := admin.GetUser(ctx, u.Name)
		switch {
		case err == nil:
			stored[i] = &got
		case domain.ReasonOf(err) == domain.ReasonNotFound:
			creates++
			if u.Secret == nil {
				noSecret = append(noSecret, strconv.Quote(u.Name))
			}
		default:
			return err
		}
	}
	fmt.Fprintf(w, "would import %d users (create %d, update %d) and %d ACL entries:\n", len(users), creates, len(users)-creates, len(entries))
	if err := printImportUsers(w, users, stored); err != nil {
		return err
	}
	if err := printEntries(w, entries, false); err != nil {
		return err
	}
	if len(noSecret) > 0 {
		return fmt.Errorf("the import would be refused: new users need a secret (password) in the file, and %s have none", strings.Join(noSecret, ", "))
	}
	return nil
}

// printImportUsers lists the users of an import: ACTION create (stored[i]
// nil), where what the file leaves out shows the default a new user gets,
// or update, where it shows the stored value it keeps and a change shows
// what it was.
func printImportUsers(w io.Writer, users []ports.ImportUser, stored []*domain.User) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tNAME\tTYPE\tSTATUS\tSECRET\tDESCRIPTION")
	for i, u := range users {
		var typ, status, secret, desc string
		if stored[i] == nil {
			var def domain.User // what the store gives a new user
			typ, status, secret, desc = def.Type.String()+" (default)", def.Status.String()+" (default)", "(none)", oneLine(u.DescriptionIfNew)
			if u.Type != nil {
				typ = u.Type.String()
			}
			if u.Status != nil {
				status = u.Status.String()
			}
			if u.Secret != nil {
				secret = "(set)"
			}
			if u.Description != nil {
				desc = oneLine(*u.Description)
			}
			fmt.Fprintf(tw, "create\t%s\t%s\t%s\t%s\t%s\n", u.Name, typ, status, secret, desc)
			continue
		}
		cur := stored[i]
		typ = changed(u.Type, cur.Type)
		status = changed(u.Status, cur.Status)
		secret = "(kept)"
		if u.Secret != nil {
			secret = "(replaced)"
		}
		desc = oneLine(cur.Description) + " (kept)"
		if u.Description != nil {
			desc = oneLine(*u.Description)
			if *u.Description != cur.Description {
				desc += " (changed)"
			}
		}
		fmt.Fprintf(tw, "update\t%s\t%s\t%s\t%s\t%s\n", u.Name, typ, status, secret, strings.TrimSpace(desc))
	}
	return tw.Flush()
}

// changed shows a field an import updates: the stored value with "(kept)"
// when the file leaves it out, the new one with what it was when it
// differs.
func changed[T comparable](given *T, stored T) string {
	switch {
	case given == nil:
		return fmt.Sprint(stored) + " (kept)"
	case *given != stored:
		return fmt.Sprintf("%v (was %v)", *given, stored)
	}
	return fmt.Sprint(*given)
}

// oneLine makes text for a table cell: invalid UTF-8 and every character
// a terminal may act on instead of showing, the C0 and C1 controls (ESC,
// and U+009B, a CSI to terminals that read C1 controls in UTF-8), DEL,
// format characters (bidirectional overrides, which reorder what follows
// on the line) and line and paragraph separators, become spaces; text
// over 60 bytes is cut at a character boundary.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return ' '
		}
		return r
	}, s)
	if len(s) > 60 {
		s = domain.Clip(s, 57)
	}
	return s
}

var securityRun = map[string]func(args []string, src config.Sources, stdin io.Reader, stdout, stderr io.Writer) error{
	"user":  userCommand,
	"acl":   aclCommand,
	"audit": auditCommand,
}

func subcommandOf(args []string, usage, cmd string, subs []string, stdout io.Writer) (string, bool, error) {
	if len(args) == 0 {
		return "", false, fmt.Errorf("%w: rmqproxy %s needs a command\n%s", errUsage, cmd, usage)
	}
	if isHelp(args[0]) || slices.ContainsFunc(args[1:], isHelpFlag) {
		_, err := io.WriteString(stdout, usage)
		return "", true, err
	}
	if err := flagsFirst("rmqproxy "+cmd, args, subs); err != nil {
		return "", false, fmt.Errorf("%w\n%s", err, usage)
	}
	if !slices.Contains(subs, args[0]) {
		return "", false, fmt.Errorf("%w: unknown %s command %q%s\n%s", errUsage, cmd, args[0], didYouMean(args[0], subs, ""), usage)
	}
	return args[0], false, nil
}

func userCommand(args []string, src config.Sources, stdin io.Reader, stdout, _ io.Writer) error {
	sub, done, err := subcommandOf(args, userUsage, "user", []string{"create", "update", "delete", "get", "list"}, stdout)
	if done || err != nil {
		return err
	}
	f := newCLIFlags("user "+sub, userUsage)
	typ := f.fs.String("type", "", "Normal or Super")
	status := f.fs.String("status", "", "enable or disable")
	desc := f.fs.String("description", "", "description")
	fromStdin := f.fs.Bool("secret-stdin", false, "read the secret from standard input")
	generate := f.fs.Bool("secret-generate", false, "generate a new secret")
	filter := f.fs.String("filter", "", "list users whose name contains this")
	asJSON := f.fs.Bool("json", false, "print JSON")
	pos, settings, err := f.parse(args[1:])
	if err != nil {
		return err
	}
	wantName := sub != "list"
	if wantName && len(pos) != 1 || !wantName && len(pos) != 0 {
		return fmt.Errorf("%w: user %s takes %s\n%s", errUsage, sub, map[bool]string{true: "exactly one NAME", false: "no NAME"}[wantName], userUsage)
	}
	var name string
	if wantName {
		name = pos[0]
	}
	var u domain.User
	u.Name = name
	var upd ports.UserUpdate
	if *typ != "" {
		t, err := domain.ParseUserType(*typ)
		if err != nil {
			return err
		}
		u.Type, upd.Type = t, &t
	}
	if *status != "" {
		s, err := domain.ParseUserStatus(*status)
		if err != nil {
			return err
		}
		u.Status, upd.Status = s, &s
	}
	if f.set("description") {
		u.Description, upd.Description = *desc, desc
	}
	var secret domain.Secret
	switch {
	case *fromStdin && *generate:
		return fmt.Errorf("%w: give --secret-stdin or --secret-generate, not both", errUsage)
	case *fromStdin:
		if secret, err = readSecret(stdin); err != nil {
			return err
		}
	case *generate:
		if sub != "update" {
			return fmt.Errorf("%w: --secret-generate is for user update (create generates a secret unless --secret-stdin)", errUsage)
		}
		if secret, err = application.GenerateSecret(); err != nil {
			return err
		}
	}
	keyUse := keysIfSet
	if sub == "create" || secret != nil {
		keyUse = keysNeeded
	}
	cli, err := openSecurity(settings, src, keyUse)
	if err != nil {
		return err
	}
	defer cli.close()
	ctx, cancel := commandContext()
	defer cancel()
	switch sub {
	case "create":
		shown, err := cli.admin.CreateUser(ctx, cli.actor, u, secret)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created %s user %s\n", u.Type, u.Name)
		if shown != nil {
			fmt.Fprintf(stdout, "secret (shown only now): %s\n", string(shown))
		}
	case "update":
		upd.Secret = secret
		got, err := cli.admin.UpdateUser(ctx, cli.actor, name, upd)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "updated user %s (%s, %s)\n", got.Name, got.Type, got.Status)
		if *generate {
			fmt.Fprintf(stdout, "new secret (shown only now): %s\n", string(secret))
		}
	case "delete":
		if err := cli.admin.DeleteUser(ctx, cli.actor, name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted user %s and its ACL entries\n", name)
	case "get":
		got, err := cli.admin.GetUser(ctx, name)
		if err != nil {
			return err
		}
		return printUsers(stdout, []domain.User{got}, *asJSON)
	case "list":
		users, err := cli.admin.ListUsers(ctx, *filter)
		if err != nil {
			return err
		}
		return printUsers(stdout, users, *asJSON)
	}
	return nil
}

// aclJSON is ACL 2.0's AclInfo, as mqadmin prints it.
type aclJSON struct {
	Subject  string       `json:"subject"`
	Policies []policyJSON `json:"policies"`
}

type policyJSON struct {
	PolicyType string      `json:"policyType"`
	Entries    []entryJSON `json:"entries"`
}

type entryJSON struct {
	Resource  string   `json:"resource"`
	Actions   []string `json:"actions"`
	SourceIPs []string `json:"sourceIps,omitempty"`
	Decision  string   `json:"decision"`
	ID        int64    `json:"id,omitempty"`
}

func printEntries(w io.Writer, entries []domain.ACLEntry, asJSON bool) error {
	if asJSON {
		var out []aclJSON
		idx := map[string]int{}
		for _, e := range entries {
			i, ok := idx[e.Subject]
			if !ok {
				i = len(out)
				idx[e.Subject] = i
				out = append(out, aclJSON{Subject: e.Subject})
			}
			a := &out[i]
			j := slices.IndexFunc(a.Policies, func(p policyJSON) bool { return p.PolicyType == e.PolicyType.String() })
			if j < 0 {
				a.Policies = append(a.Policies, policyJSON{PolicyType: e.PolicyType.String()})
				j = len(a.Policies) - 1
			}
			a.Policies[j].Entries = append(a.Policies[j].Entries, entryJSON{Resource: e.Resource.Key(), Actions: e.Actions.Names(),
				SourceIPs: ipStrings(e), Decision: e.Decision.String(), ID: e.ID})
		}
		if out == nil {
			out = []aclJSON{}
		}
		return printJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUBJECT\tPOLICY\tRESOURCE\tACTIONS\tSOURCE IPS\tDECISION")
	for _, e := range entries {
		ips := strings.Join(ipStrings(e), ",")
		if ips == "" {
			ips = "any"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Subject, e.PolicyType, oneLine(e.Resource.Key()), e.Actions, ips, e.Decision)
	}
	return tw.Flush()
}

func ipStrings(e domain.ACLEntry) []string {
	out := make([]string, len(e.SourceIPs))
	for i, p := range e.SourceIPs {
		out[i] = p.String()
	}
	return out
}

func aclCommand(args []string, src config.Sources, _ io.Reader, stdout, stderr io.Writer) error {
	sub, done, err := subcommandOf(args, aclUsage, "acl", []string{"create", "update", "delete", "get", "list", "import"}, stdout)
	if done || err != nil {
		return err
	}
	f := newCLIFlags("acl "+sub, aclUsage)
	resource := f.fs.String("resource", "", "resource key")
	actions := f.fs.String("actions", "", "actions")
	decision := f.fs.String("decision", "Allow", "Allow or Deny")
	sourceIPs := f.fs.String("source-ip", "", "source addresses")
	policyType := f.fs.String("policy-type", "", "Custom or Default")
	format := f.fs.String("format", "acl", "acl or plain")
	dryRun := f.fs.Bool("dry-run", false, "show what import would do")
	asJSON := f.fs.Bool("json", false, "print JSON")
	pos, settings, err := f.parse(args[1:])
	if err != nil {
		return err
	}
	switch {
	case sub == "list" && len(pos) != 0:
		return fmt.Errorf("%w: acl list takes no subject (acl get User:NAME shows one)\n%s", errUsage, aclUsage)
	case sub == "import" && len(pos) != 1:
		return fmt.Errorf("%w: acl import takes one FILE\n%s", errUsage, aclUsage)
	case sub != "list" && sub != "import" && len(pos) != 1:
		return fmt.Errorf("%w: acl %s takes one subject, User:NAME\n%s", errUsage, sub, aclUsage)
	}
	var ptype *domain.PolicyType
	if *policyType != "" {
		pt, err := domain.ParsePolicyType(*policyType)
		if err != nil {
			return err
		}
		ptype = &pt
	}
	var entry domain.ACLEntry
	if sub == "create" || sub == "update" {
		if *resource == "" || *actions == "" {
			return fmt.Errorf("%w: acl %s needs --resource and --actions\n%s", errUsage, sub, aclUsage)
		}
		var ips []string
		for _, s := range strings.Split(*sourceIPs, ",") {
			if strings.TrimSpace(s) != "" {
				ips = append(ips, s)
			}
		}
		if entry, err = domain.ParseACLEntry(pos[0], *resource, *actions, *decision, ips...); err != nil {
			return err
		}
		if ptype != nil {
			entry.PolicyType = *ptype
		}
		if err := entry.Validate(); err != nil {
			return err
		}
	}
	var users []ports.ImportUser
	var entries []domain.ACLEntry
	if sub == "import" {
		data, err := readFileBounded(pos[0])
		if err != nil {
			return err
		}
		switch *format {
		case "acl":
			users, entries, err = policyfile.DecodeImport(data)
		case "plain":
			var warnings []string
			users, entries, warnings, err = policyfile.DecodePlainACL(data)
			for _, w := range warnings {
				fmt.Fprintln(stderr, "warning:", w)
			}
		default:
			return fmt.Errorf("%w: --format must be acl or plain", errUsage)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
	}
	keyUse := keysIfSet
	if sub == "import" && !*dryRun { // a dry run writes no secret
		keyUse = keysNeeded
	}
	cli, err := openSecurity(settings, src, keyUse)
	if err != nil {
		return err
	}
	defer cli.close()
	ctx, cancel := commandContext()
	defer cancel()
	switch sub {
	case "create", "update":
		if err := cli.admin.PutEntries(ctx, cli.actor, []domain.ACLEntry{entry}, sub == "update", sub == "create"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%sd %s entry of %s: %s %s %s\n", sub, entry.PolicyType, entry.Subject, entry.Decision, entry.Actions, entry.Resource.Key())
	case "delete":
		n, err := cli.admin.DeleteEntries(ctx, cli.actor, ports.EntryFilter{Subject: pos[0], Resource: *resource, PolicyType: ptype})
		if err != nil {
			return err
		}
		subject := pos[0]
		if name, err := domain.ParseSubject(subject); err == nil {
			subject = domain.SubjectOf(name)
		}
		fmt.Fprintf(stdout, "deleted %d ACL entries of %s\n", n, subject)
	case "get", "list":
		filter := ports.EntryFilter{PolicyType: ptype}
		if sub == "get" {
			filter.Subject = pos[0]
		}
		es, err := cli.admin.ListEntries(ctx, filter)
		if err != nil {
			return err
		}
		return printEntries(stdout, es, *asJSON)
	case "import":
		if *dryRun {
			return printImportPlan(ctx, stdout, cli.admin, users, entries)
		}
		if err := cli.admin.Import(ctx, cli.actor, users, entries); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported %d users and %d ACL entries\n", len(users), len(entries))
	}
	return nil
}

func readFileBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, policyfile.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > policyfile.MaxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, policyfile.MaxFileSize)
	}
	return data, nil
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q is neither a duration (1h) nor an RFC 3339 time (2025-01-02T15:04:05Z)", errUsage, s)
	}
	return t, nil
}

func auditCommand(args []string, src config.Sources, _ io.Reader, stdout, _ io.Writer) error {
	if _, done, err := subcommandOf(args, auditUsage, "audit", []string{"query"}, stdout); done || err != nil {
		return err
	}
	f := newCLIFlags("audit query", auditUsage)
	principal := f.fs.String("principal", "", "principal")
	since := f.fs.String("since", "", "since")
	until := f.fs.String("until", "", "until")
	decision := f.fs.String("decision", "", "decision")
	category := f.fs.String("category", "", "category")
	resource := f.fs.String("resource", "", "resource")
	operation := f.fs.String("operation", "", "operation")
	requestID := f.fs.String("request-id", "", "request id")
	clientID := f.fs.String("client-id", "", "client id")
	source := f.fs.String("source", "", "source address or prefix")
	limit := f.fs.Int("limit", 100, "most events")
	asJSON := f.fs.Bool("json", false, "print JSON")
	pos, settings, err := f.parse(args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: audit query takes no arguments, got %q\n%s", errUsage, pos[0], auditUsage)
	}
	if *limit < 1 || *limit > domain.MaxAuditQueryLimit {
		return fmt.Errorf("%w: --limit %d: audit query prints 1 to %d events (default 100)", errUsage, *limit, domain.MaxAuditQueryLimit)
	}
	now := time.Now()
	q := domain.AuditQuery{Principal: *principal, Decision: strings.ToUpper(*decision), Category: strings.ToLower(*category), Limit: *limit,
		Resource: *resource, Operation: *operation, RequestID: *requestID, ClientID: *clientID}
	if *resource != "" {
		// As stored: the type as upstream spells it (topic:orders is
		// Topic:orders, user:alice User:alice).
		if r, err := domain.ParseResource(*resource); err == nil {
			q.Resource = r.Key()
		} else if name, err := domain.ParseSubject(*resource); err == nil {
			q.Resource = domain.SubjectOf(name)
		}
	}
	if *source != "" {
		if q.Source, err = domain.ParseSourceIP(*source); err != nil {
			return fmt.Errorf("%w: --source %q is not an IP address or CIDR prefix (10.0.0.1, 10.0.0.0/8, fd00::/8)", errUsage, *source)
		}
	}
	if q.Since, err = parseSince(*since, now); err != nil {
		return err
	}
	if q.Until, err = parseSince(*until, now); err != nil {
		return err
	}
	cli, err := openSecurity(settings, src, keysUnused)
	if err != nil {
		return err
	}
	defer cli.close()
	ctx, cancel := commandContext()
	defer cancel()
	evs, err := cli.admin.QueryAudit(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]map[string]any, len(evs))
		for i, e := range evs {
			ip := ""
			if e.SourceIP.IsValid() {
				ip = e.SourceIP.String()
			}
			out[i] = map[string]any{"id": e.ID, "proxyId": e.ProxyID, "seq": e.Seq,
				"time": e.Time.UTC().Format(time.RFC3339Nano), "category": e.Category, "principal": e.Principal,
				"sourceIp": ip, "protocol": e.Protocol, "operation": e.Operation, "resource": e.Resource, "actions": e.Actions,
				"decision": e.Decision, "reason": e.Reason, "policyRevision": e.Revision, "requestId": e.RequestID,
				"clientId": e.ClientID, "details": json.RawMessage(orNull(e.Details)), "occurrences": e.Count()}
			if !e.LastTime.IsZero() {
				out[i]["lastTime"] = e.LastTime.UTC().Format(time.RFC3339Nano)
			}
		}
		return printJSON(stdout, out)
	}
	return printAuditTable(stdout, evs)
}

// printAuditTable prints events as audit query's table. Their text is
// what clients sent (a claimed AccessKey, a topic name) and goes through
// oneLine.
func printAuditTable(stdout io.Writer, evs []domain.AuditEvent) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCATEGORY\tPRINCIPAL\tSOURCE\tOPERATION\tRESOURCE\tACTIONS\tDECISION\tREASON\tCOUNT\tLAST\tREQUEST-ID\tCLIENT-ID")
	for _, e := range evs {
		ip := "-"
		if e.SourceIP.IsValid() {
			ip = e.SourceIP.String()
		}
		last := "-"
		if !e.LastTime.IsZero() {
			last = e.LastTime.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Category, oneLine(e.Principal), ip,
			oneLine(e.Operation), oneLine(e.Resource), e.Actions, e.Decision, oneLine(e.Reason), e.Count(), last,
			orDash(oneLine(e.RequestID)), orDash(oneLine(e.ClientID)))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNull(s string) string {
	if s == "" {
		return "null"
	}
	return s
}
