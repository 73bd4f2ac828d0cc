package filter

import (
	"strings"

	"github.com/rmqproxy/rmqproxy/domain"
)

// Type is the language of a filter expression.
type Type uint8

// Expression languages, as apache.rocketmq.v2.FilterType.
const (
	TypeTag Type = iota
	TypeSQL92
)

func (t Type) String() string {
	if t == TypeSQL92 {
		return "SQL92"
	}
	return "TAG"
}

// Expression is a filter as a consumer subscribes with it.
type Expression struct {
	Type Type
	Text string
}

// Filter decides whether a consumer receives a message.
type Filter interface {
	// Match reports whether m passes the filter.
	Match(m *domain.Message) bool
	// Expression returns what the filter was compiled from.
	Expression() Expression
}

// DefaultMaxExpressionLength is the default bound on the length of filter
// expressions a proxy accepts. Upstream has none of its own (only the gRPC
// message size); compiling is linear in the length and evaluating a SQL92
// expression is linear in its size per message, so a proxy bounds it (see
// the application's limits).
const DefaultMaxExpressionLength = 64 << 10

// Compile parses e into a Filter. Its cost is linear in the length of the
// expression; callers bound the length.
func Compile(e Expression) (Filter, error) {
	switch e.Type {
	case TypeTag:
		return compileTag(e.Text)
	case TypeSQL92:
		return compileSQL92(e.Text)
	default:
		return nil, domain.Errorf(domain.ReasonIllegalFilterExpression, "unknown filter type %d", e.Type)
	}
}

// All is the filter that matches every message ("*").
var All Filter = &tagFilter{all: true, expr: "*"}

type tagFilter struct {
	all  bool
	tags map[string]struct{}
	expr string
}

// TrimTag trims a tag of a tag expression as Java's String.trim does, and
// so the Apache proxy and broker: only characters up to U+0020 go. Other
// white space (U+00A0, U+3000, ...) may end a message's tag and stays: a
// tag trimmed of it would match other messages than those subscribed to.
func TrimTag(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
}

func compileTag(text string) (Filter, error) {
	// Upstream subscribes to every message for "" and "*" only; padded
	// with white space, or white space only, they are "*" here too
	// (docs/compatibility.md).
	t := TrimTag(text)
	if t == "" || t == "*" {
		return All, nil
	}
	parts := strings.Split(text, "||")
	// Java's String.split drops trailing empty strings; an expression made of
	// separators only leaves nothing and is rejected upstream.
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	if len(parts) == 0 {
		return nil, domain.Errorf(domain.ReasonIllegalFilterExpression, "tag expression %q has no tag; use \"*\" or tags joined by \"||\"", text)
	}
	f := &tagFilter{tags: make(map[string]struct{}, len(parts)), expr: text}
	for _, p := range parts {
		if p = TrimTag(p); p != "" {
			f.tags[p] = struct{}{}
		}
	}
	if len(f.tags) == 0 {
		// Upstream takes " || ", which names no tag, and matches no
		// message with it: a pop consumes every message it skips, so the
		// group's messages would all be consumed unseen
		// (docs/compatibility.md).
		return nil, domain.Errorf(domain.ReasonIllegalFilterExpression, "tag expression %q has no tag; use \"*\" or tags joined by \"||\"", text)
	}
	return f, nil
}

func (f *tagFilter) Match(m *domain.Message) bool {
	if f.all {
		return true
	}
	_, ok := f.tags[m.Tag]
	return ok && m.Tag != ""
}

func (f *tagFilter) Expression() Expression { return Expression{Type: TypeTag, Text: f.expr} }
