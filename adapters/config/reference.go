package config

import (
	"fmt"
	"io"
	"strings"
)

// Setting describes one setting for --help and the README; [Reference]
// derives it from the Config structs so that the documentation cannot
// drift from the code.
type Setting struct {
	Key     string // grpc.tls.certFile
	Env     string // RMQPROXY_GRPC_TLS_CERT_FILE
	Flag    string // --grpc.tls.certFile
	Type    string // string, secret, bool, int, int32, int64, bytes, float, duration, list, or a Go type name
	Default string // as Print writes it; secrets REDACTED
	Help    string
}

// Reference lists every setting of cfg (a struct holding the defaults, or a
// pointer to one) in declaration order. It panics when cfg's type is not a
// valid configuration struct: that is a bug in a Config, which any test that
// calls Reference catches.
func Reference(cfg any) []Setting {
	v, s, err := inspect(cfg)
	if err != nil {
		panic(err)
	}
	out := make([]Setting, 0, len(s.leaves))
	for _, f := range s.leaves {
		def, err := formatLeaf(f, v.FieldByIndex(f.index))
		if err != nil {
			panic(err)
		}
		out = append(out, Setting{
			Key:     f.key,
			Env:     f.env,
			Flag:    "--" + f.key,
			Type:    typeName(f),
			Default: def,
			Help:    f.help,
		})
	}
	return out
}

// MarkdownTable renders settings as a GitHub Markdown table for the README.
func MarkdownTable(settings []Setting) string {
	var b strings.Builder
	b.WriteString("| Key | Environment | Flag | Type | Default | Description |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, s := range settings {
		def := ""
		if s.Default != "" {
			def = code(s.Default)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n",
			code(s.Key), code(s.Env), code(s.Flag), s.Type, def, cell(s.Help))
	}
	return b.String()
}

func code(s string) string { return "`" + cell(strings.ReplaceAll(s, "`", "'")) + "`" }

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// WriteHelp writes settings as the settings part of --help: one entry per
// setting, a line with its flag, type, environment variable and default,
// then its help wrapped and indented. Nothing is padded: a help line (a
// long URL) must not widen the flag lines.
func WriteHelp(w io.Writer, settings []Setting) error {
	var b strings.Builder
	for _, s := range settings {
		def := s.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(&b, "  %s %s  %s (default %s)\n", s.Flag, s.Type, s.Env, def)
		if s.Help != "" {
			for line := range strings.SplitSeq(wrap(s.Help, 72), "\n") {
				fmt.Fprintf(&b, "      %s\n", line)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
